"""Ratio 1: `pausectl apply` of 1,000 flips with the default rollout and gate (batches
[1, "25%", "100%"], canary tag, gate after each batch: failed runs, import errors, staleness;
the gate's `wait_seconds` set to 0, so gate waits are excluded) against, on the same server
in the same run, from the same live state:
  - a sequential single-PATCH loop (httpx, one request per DAG);
  - one bulk PATCH matching exactly the 1,000 DAGs (what no verification costs);
  - one bulk PATCH + the listing that verifies it (what DESIGN.md requires of any bulk change);
  - the official `apache-airflow-client`: list with the same filter + one patch_dag per DAG;
  - `airflow dags unpause` per DAG: a sample, extrapolated to 1,000.
The 1,000 flips are every `ml_*` DAG of make_dags(5000) (20% of them): all start paused.
"""

from __future__ import annotations

import contextlib
import io
import json
import statistics
import subprocess
import time
from pathlib import Path

import inside
from common import ROOT, client, counted, impact, measure, write_state

WITH_IMPACT = True           # bench/run.py --no-impact turns the impact-preview runs off
CLIENT_VENV = ROOT / ".airflow" / "venv-bench-client"
ROLLOUT = ("rollout: {batches: [1, \"25%\", \"100%\"], canary: {tags: [canary]},\n"
           "          gate: {wait_seconds: 0, max_failed_runs: 0, import_errors: fail},\n"
           "          on_gate_failure: rollback}\n")
PATTERN = "ml_b"                # ILIKE substring: exactly the ml_b00002, ml_b00006, ... DAGs

CLIENT_SCRIPT = r"""
import json, sys, time
import airflow_client.client as ac
from airflow_client.client.api.dag_api import DAGApi
from airflow_client.client.models.dag_patch_body import DAGPatchBody
host, token, pattern = sys.argv[1:4]
t0 = time.perf_counter()
with ac.ApiClient(ac.Configuration(host=host, access_token=token)) as api:
    dags, ids, offset, n = DAGApi(api), [], 0, 0
    while True:
        page = dags.get_dags(limit=100, offset=offset, dag_id_pattern=pattern, paused=True)
        n += 1
        ids += [d.dag_id for d in page.dags]
        offset += len(page.dags)
        if not page.dags or offset >= page.total_entries:
            break
    for d in ids:
        dags.patch_dag(d, DAGPatchBody(is_paused=False))
print(json.dumps({"seconds": time.perf_counter() - t0, "dags": len(ids),
                  "requests": n + len(ids)}))
"""


def flip_ids(server) -> list[str]:
    return sorted(d for d in server.specs if d.startswith("ml_b"))


def _apply_cli(state: Path) -> None:
    from reconciler.cli.main import main
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        try:
            main(["--state", str(state), "apply", "flips", "--yes"])
        except SystemExit as e:
            if e.code:
                raise RuntimeError(f"pausectl apply exited {e.code}") from None


def run(server, tmp: Path, trials: int = 2, cli_sample: int = 20) -> dict:
    ids = flip_ids(server)
    body = "defaults: {unmanaged: ignore}\ndags:\n" + "".join(
        f"  {d}: {{paused: false}}\n" for d in ids)
    state = write_state(tmp / "flips", {"flips": (server, body)}, extra=ROLLOUT)
    reset = lambda: server.reset(paused=True, variables=True)   # noqa: E731
    out: dict = {"flips": len(ids), "dags": len(server.specs)}
    if WITH_IMPACT:
        out["apply"] = measure(lambda: _apply_cli(state), trials, reset)
    with impact(False):
        out["apply_core"] = measure(lambda: _apply_cli(state), trials, reset)
        with counted() as c:
            reset()
            _apply_cli(state)
    out["apply_paths"] = c["paths"]
    out["inside"] = inside.run(server, tmp, ids, ROLLOUT, trials)   # the dagmodel backend
    assert all(not p for d, p in server.query("SELECT dag_id, is_paused FROM dag")
               if d in set(ids)), "apply did not unpause every DAG"

    def seq() -> None:
        with client(server) as http:
            for d in ids:
                http.patch(f"/dags/{d}", json={"is_paused": False}).raise_for_status()

    def bulk(verify: bool) -> None:
        with client(server) as http:
            r = http.patch("/dags", params={"dag_id_pattern": PATTERN, "limit": 100},
                           json={"is_paused": False})
            r.raise_for_status()
            if verify:          # the listing that proves it: every match, page by page
                offset, total = 0, 1
                while offset < total:
                    data = http.get("/dags", params={"dag_id_pattern": PATTERN,
                                                     "limit": 100, "offset": offset}).json()
                    offset += len(data["dags"]) or total
                    total = data["total_entries"]

    out["sequential"] = measure(seq, 1, reset)
    out["bulk"] = measure(lambda: bulk(False), trials, reset)
    out["bulk_verified"] = measure(lambda: bulk(True), trials, reset)
    out["client"] = _official_client(server, reset)
    out["cli_per_dag"] = _airflow_cli(server, ids[:cli_sample])
    reset()
    return out


def _official_client(server, reset) -> dict:
    py = CLIENT_VENV / "bin" / "python"
    if not py.exists():
        return {"error": f"no {CLIENT_VENV} (make bench installs apache-airflow-client there)"}
    reset()
    p = subprocess.run([str(py), "-c", CLIENT_SCRIPT, server.url, server.token(), PATTERN],
                       capture_output=True, text=True, timeout=900)
    if p.returncode:
        return {"error": p.stderr.strip().splitlines()[-1] if p.stderr.strip() else "failed"}
    version = subprocess.run([str(py), "-c", "import importlib.metadata as m; "
                              "print(m.version('apache-airflow-client'))"],
                             capture_output=True, text=True).stdout.strip()
    return {**json.loads(p.stdout.strip().splitlines()[-1]), "version": version}


def _airflow_cli(server, sample: list[str]) -> dict:
    times = []
    for d in sample:
        t0 = time.perf_counter()
        server.airflow("dags", "unpause", d, "-y")
        times.append(time.perf_counter() - t0)
    return {"median": statistics.median(times), "sample": len(sample)}
