"""Emergency pause: the marker that makes every later plan/apply/drift respect the emergency.

The marker is an Airflow Variable `pausectl.emergency.<env>` holding JSON:
`{reason, owner, started, except: [selector...], prior: {dag_id: is_paused}}`.
"""

from __future__ import annotations

import json

from .errors import PausectlError
from .resolve import Emergency
from .selectors import Selector, SelectorIndex


def marker_key(env: str) -> str:
    return f"pausectl.emergency.{env}"


def load_marker(backend, env: str) -> Emergency | None:
    raw = backend.get_variable(marker_key(env))
    if raw is None:
        return None
    try:
        data = json.loads(raw)
        selectors = [Selector.from_spec(s) for s in data.get("except") or []]
    except (ValueError, TypeError, AttributeError) as e:
        raise PausectlError(f"emergency marker {marker_key(env)} in {env} is corrupt ({e}); "
                            "inspect it, then fix or delete the Variable") from None
    index = SelectorIndex((s, s) for s in selectors) if selectors else None
    return Emergency(reason=data.get("reason", "?"), owner=data.get("owner", "?"),
                     started=data.get("started", "?"),
                     where=f"Variable {marker_key(env)}", except_index=index)
