"""The CLI invocations whose output must stay byte-identical across refactors (issue 13).

Each case is (name, argv). Run from a copy of the example state in a git repo whose HEAD~1
is the example state and HEAD changes one rule, so `diff` has something to show.
"""

from __future__ import annotations

AT = "2026-06-03T10:00:00Z"
ENVS = ("dev", "staging", "prod")


def cases():
    out = []
    for env in ENVS:
        for fmt in ("text", "json", "markdown"):
            out.append((f"plan-{env}.{fmt}", ["plan", env, "--at", AT, "--format", fmt]))
        for fmt in ("text", "json", "github"):
            out.append((f"lint-{env}.{fmt}", ["lint", env, "--at", AT, "--format", fmt]))
        for fmt in ("text", "json"):
            out.append((f"schedule-{env}.{fmt}", ["schedule", env, "--at", AT, "--next", "14d", "--format", fmt]))
    for dag in ("billing_daily", "etl_orders", "report_daily_sales", "no_such_dag"):
        for fmt in ("text", "json"):
            out.append((f"explain-prod-{dag}.{fmt}", ["explain", "prod", dag, "--at", AT, "--format", fmt]))
    for fmt in ("text", "json", "markdown"):
        out.append((f"diff.{fmt}", ["diff", "HEAD~1", "HEAD", "--at", AT, "--format", fmt]))
    return out
