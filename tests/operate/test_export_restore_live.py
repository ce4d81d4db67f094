"""`pausectl export` / `pausectl restore` against real Airflow 3 (REST v2) and 2 (REST v1).

Export, change live state, restore: every DAG reads back exactly as exported (in Airflow's
database and through the API). restore runs like apply (lock, journal, canary batch, gate)
and takes apply's rollout flags; an export of another environment needs --from-env and is
refused, with nothing changed, when it names DAGs this environment does not have.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import yaml
from compat.matrix_support import Cli
from helpers import api_states, db_states, set_states, write_files

ENV = "live"
# a gate that would wait two minutes: the tests pass --wait-seconds 0 (the override works)
ROLLOUT = '{batches: [1, "100%"], canary: {tags: [canary]}, gate: {wait_seconds: 120}}'


def stale_ids(server) -> set[str]:
    where = "is_stale" if server.major == 3 else "NOT is_active"
    return {r[0] for r in server.query(f"SELECT dag_id FROM dag WHERE {where}")}


def lock_vars(server) -> list:
    return server.query("SELECT key FROM variable WHERE key LIKE 'pausectl.%'")


@pytest.fixture
def cli(tmp_path, monkeypatch, capsys):
    """`pausectl ARGS` in this process; returns (exit code, stdout, stderr)."""
    monkeypatch.chdir(tmp_path)
    return Cli(monkeypatch, capsys, tmp_path / "state", tmp_path / "journal")


def state_repo(tmp_path: Path, server, other_dags: list[dict] | None = None) -> Path:
    root = tmp_path / "state"
    files = {
        "pausectl.yaml": (
            "environments:\n"
            f"  {ENV}:\n"
            f"    backend: {{type: airflow-api, url: '{server.url}', auth: password-token,\n"
            "              username_env: AF_USER, password_env: AF_PASS}\n"
            "  other:\n"
            "    backend: {type: snapshot, path: snapshots/other.json}\n"
            f"rollout: {ROLLOUT}\n"
            "safety: {max_changes: 5}\n"),
        f"{ENV}.yaml": f"environment: {ENV}\ndefaults: {{unmanaged: ignore}}\n",
        "other.yaml": "environment: other\ndefaults: {unmanaged: ignore}\n",
        "snapshots/other.json": json.dumps({"environment": "other",
                                            "dags": other_dags or []}) + "\n",
    }
    write_files(root, files)
    return root


@pytest.mark.airflow
def test_export_change_restore_is_exact(airflow_server, tmp_path, cli):
    server = airflow_server
    server.reset()
    stale = stale_ids(server)
    ids = sorted(db_states(server))
    # the exported state: a third of the DAGs running, among them report_001 (hourly)
    exported = {d: not (i % 3 == 0 or d == "report_001") for i, d in enumerate(ids)}
    set_states(server, exported)
    state_repo(tmp_path, server)
    code, _, err = cli("export", ENV, "--out", "snap.json")
    assert code == 0, err
    snap = json.loads((tmp_path / "snap.json").read_text())
    assert snap["environment"] == ENV
    assert {d["dag_id"]: d["is_paused"] for d in snap["dags"]} == exported
    assert {d["dag_id"] for d in snap["dags"] if d["is_stale"]} == stale
    code, out, err = cli("export", ENV, "--format", "yaml")
    assert code == 0, err
    doc = yaml.safe_load(out)
    assert {d: v["paused"] for d, v in doc["dags"].items()} == exported

    # live moves on: 20-odd DAGs flip, the stale ones (on AF3 also those with import errors)
    flipped = sorted({*[d for d in ids if d not in stale][::7][:20], *stale, "report_001"})
    set_states(server, {d: not exported[d] for d in flipped})
    changed = db_states(server)

    # report_001 is the canary (--canary) and must show a finished run at once (--min-runs 1
    # --gate-timeout 0): without a scheduler it cannot, so the gate stops the restore and
    # rolls it back; --wait-seconds 0 overrides the configured two minutes
    t0 = time.monotonic()
    code, out, err = cli("restore", ENV, "snap.json", "--yes", "--allow-mass-change",
                         "--wait-seconds", "0", "--canary", "dag_id:report_001",
                         "--min-runs", "1", "--gate-timeout", "0")
    assert code == 3, (out, err)
    assert time.monotonic() - t0 < 60
    assert "batch 1/2: " in err and "gate after batch 1: FAILED (no 1 finished run(s) within " \
        "0s for report_001)" in err, err
    assert db_states(server) == changed
    assert lock_vars(server) == []

    # --no-gates puts every DAG back; the stale one is reported, not flipped
    code, out, err = cli("restore", ENV, "snap.json", "--yes", "--allow-mass-change",
                         "--no-gates", "--batches", "1,50%,100%")
    assert code == 0, (out, err)
    assert f"Restore complete: {len(flipped) - len(stale)} DAG(s) of {ENV} put back to their " \
           "state in snap.json." in out, out
    for d in stale:
        assert f"skipped  {d}  stale: its DAG file is gone; not flipped" in out, out
    want = {**exported, **{d: changed[d] for d in stale}}
    assert db_states(server) == want
    assert api_states(server) == want
    assert lock_vars(server) == []
    journals = sorted((tmp_path / "journal").glob(f"{ENV}-*.json"))
    last = json.loads(journals[-1].read_text())
    assert last["kind"] == "restore" and last["status"] == "done"
    assert [len(b["dag_ids"]) for b in last["batches"]][0] >= 1 and len(last["batches"]) == 3

    # again: nothing to do, and it says so in terms of the export file
    code, out, err = cli("restore", ENV, "snap.json", "--yes")
    assert code == 0, err
    assert out.startswith(f"Nothing to restore: live {ENV} already matches the export snap.json"
                          f" ({len(ids) - len(stale)} DAG(s) in their saved state, "
                          f"{len(stale)} stale (not flipped))"), out

    # a restore is undone like an apply
    code, out, err = cli("rollback", ENV, "--yes")
    assert code == 0, err
    assert db_states(server) == changed


@pytest.mark.airflow
def test_restore_of_another_environments_export_changes_nothing_it_cannot(airflow_server,
                                                                          tmp_path, cli):
    server = airflow_server
    server.reset()
    ids = sorted(d for d in db_states(server) if d not in stale_ids(server))
    # `other` has 20 of these DAGs (all running) and three this environment lacks
    other = [{"dag_id": d, "is_paused": False} for d in ids[:20]] + [
        {"dag_id": f"other_only_{i}", "is_paused": False} for i in range(3)]
    state_repo(tmp_path, server, other)
    code, _, err = cli("export", "other", "--out", "other-export.json")
    assert code == 0, err
    before = db_states(server)
    since = server.query("SELECT max(id) FROM log")[0][0] or 0

    code, out, err = cli("restore", ENV, "other-export.json", "--yes")
    assert code == 1 and out == ""
    assert err.strip() == ("error: other-export.json:2: snapshot is of environment 'other', not "
                           f"'{ENV}'; nothing was changed (pass --from-env other to restore it "
                           f"into {ENV})"), err
    code, out, err = cli("restore", ENV, "other-export.json", "--yes", "--from-env", "other")
    assert code == 1 and out == ""
    line = next(i for i, t in enumerate(
        (tmp_path / "other-export.json").read_text().splitlines(), 1) if "other_only_0" in t)
    assert err.strip() == (f"error: other-export.json:{line}: 3 DAG(s) of this snapshot do not "
                           f"exist in {ENV} (other_only_0, other_only_1, other_only_2): is it "
                           "from another environment? nothing was changed (--skip-missing "
                           "restores the others)"), err
    assert db_states(server) == before
    assert lock_vars(server) == []
    assert not (tmp_path / "journal").exists() or not list((tmp_path / "journal").iterdir())
    # not one write reached Airflow (its event log records even refused requests)
    writes = server.query("SELECT event, dag_id FROM log WHERE id > ? AND event LIKE '%patch%'",
                          (since,))
    assert writes == []

    code, out, err = cli("restore", ENV, "other-export.json", "--yes", "--from-env", "other",
                         "--skip-missing", "--allow-mass-change", "--no-gates")
    assert code == 0, (out, err)
    for i in range(3):
        assert f"missing  other_only_{i}  in other-export.json but not in Airflow" in out
    assert db_states(server) == {**before, **{d: False for d in ids[:20]}}
