"""The harness gives tests a real Airflow 3 and 2 that answer like production ones."""

from __future__ import annotations

import httpx
import pytest

from testkit import harness
from testkit.harness import STANDARD_DAGS, DagSpec

SPECS = {s.dag_id: s for s in STANDARD_DAGS}
STALE = {s.dag_id for s in STANDARD_DAGS if s.stale}
BROKEN = {s.dag_id for s in STANDARD_DAGS if s.import_error}


# ------------------------------------------------------------------ no Airflow needed

def test_standard_dags_shape():
    assert len(SPECS) == len(STANDARD_DAGS) >= 150          # no duplicate ids
    assert len(SPECS) - len(STALE) - len(BROKEN) > 100      # paging is exercised
    assert len(BROKEN) == 2 and len(STALE) == 1
    assert all(s.initially_paused for s in STANDARD_DAGS)
    prefixes = {d.split("_")[0] for d in SPECS}
    assert {"etl", "report", "ml", "critical"} <= prefixes
    tags = {t for s in STANDARD_DAGS for t in s.tags}
    assert {"etl", "reporting", "canary", "critical", "ml"} <= tags
    assert {s.owner for s in STANDARD_DAGS} >= {"data-eng", "analytics", "ml-team"}


def test_dagspec_validation_and_json():
    with pytest.raises(ValueError):
        DagSpec("bad id")
    with pytest.raises(ValueError):
        DagSpec("x", stale=True, import_error=True)
    spec = DagSpec("a", tags=["t"], schedule=["asset_a"])
    assert spec.tags == ("t",) and spec.schedule == ("asset_a",)
    assert spec.to_json()["schedule"] == ["asset_a"]
    assert len({d.dag_id for d in harness.make_dags(1000)}) == 1000


def test_a_failed_start_starts_over_with_every_dag_once_and_an_install_failure_does_not(
        tmp_path, monkeypatch):
    """start(attempts=2): the second try registers the same DAGs in a new home (the first
    try's half-done registration must not count them as duplicates or lose them)."""
    server = harness.AirflowServer(major=3, dags=[DagSpec("a"), DagSpec("b")], root=tmp_path)
    seen: list[list[str]] = []

    def prepare():
        seen.append([s.dag_id for s in server._pending])
        server.specs.update({s.dag_id: s for s in server._pending})
        server._pending = []
    tries = iter([harness.HarnessError("parser stalled"), None])

    def launch():
        exc = next(tries)
        if exc:
            raise exc
    monkeypatch.setattr(server, "prepare", prepare)
    monkeypatch.setattr(server, "launch", launch)
    monkeypatch.setattr(server, "wait_ready", lambda: None)
    assert server.start(attempts=2) is server
    assert seen == [["a", "b"], ["a", "b"]] and set(server.specs) == {"a", "b"}

    other = harness.AirflowServer(major=3, root=tmp_path)
    calls = []

    def failing_install():
        calls.append(1)
        raise OSError("pip failed")
    monkeypatch.setattr(other, "prepare", failing_install)
    with pytest.raises(OSError):
        other.start(attempts=2)
    assert calls == [1]


# ------------------------------------------------------------------ helpers

def _list_all(server, client, **params) -> tuple[list[dict], int, int]:
    """Every DAG via offset paging; returns (dags, total_entries, pages)."""
    dags: list[dict] = []
    pages = 0
    while True:
        resp = client.get(f"{server.api_url}/dags",
                          params={"limit": 100, "offset": len(dags), **params})
        assert resp.status_code == 200, resp.text
        body = resp.json()
        pages += 1
        dags += body["dags"]
        if not body["dags"] or len(dags) >= body["total_entries"]:
            return dags, body["total_entries"], pages


def _client(server) -> httpx.Client:
    return httpx.Client(headers=server.auth_headers(), timeout=30)


def _pause_roundtrip(server, client, dag_id: str) -> None:
    url = f"{server.api_url}/dags/{dag_id}"
    assert client.get(url).json()["is_paused"] is True
    resp = client.patch(url, json={"is_paused": False})
    assert resp.status_code == 200, resp.text
    assert resp.json()["is_paused"] is False
    assert client.get(url).json()["is_paused"] is False
    assert server.query("SELECT is_paused FROM dag WHERE dag_id = ?", (dag_id,)) == [(0,)]
    resp = client.patch(url, json={"is_paused": True})
    assert resp.status_code == 200 and resp.json()["is_paused"] is True
    assert client.patch(f"{server.api_url}/dags/no_such_dag",
                        json={"is_paused": True}).status_code == 404


# ------------------------------------------------------------------ Airflow 3 (v2)

def test_af3_lists_every_dag_with_paging(airflow3):
    assert airflow3.api_version == "v2" and airflow3.url.startswith("http://127.0.0.1:")
    with _client(airflow3) as client:
        dags, total, pages = _list_all(airflow3, client, exclude_stale="false")
        assert total == len(SPECS) and pages >= 2
        assert {d["dag_id"] for d in dags} == set(SPECS)
        # maximum_page_limit: a larger limit silently returns 100 rows
        assert len(client.get(f"{airflow3.api_url}/dags",
                              params={"limit": 1000}).json()["dags"]) == 100
        by_id = {d["dag_id"]: d for d in dags}
        for dag_id in ("etl_000", "report_009", "ml_000", "critical_billing", "misc_orphan"):
            spec = SPECS[dag_id]
            assert {t["name"] for t in by_id[dag_id]["tags"]} == set(spec.tags)
            assert by_id[dag_id]["owners"] == [spec.owner]
        assert by_id["etl_000"]["timetable_summary"] is None
        # AF3 expands presets: "@daily" is summarised as "0 0 * * *"
        assert by_id["etl_001"]["timetable_summary"] in ("@daily", "0 0 * * *")


def test_af3_stale_and_import_errors(airflow3):
    with _client(airflow3) as client:
        dags, _, _ = _list_all(airflow3, client, exclude_stale="false")
        by_id = {d["dag_id"]: d for d in dags}
        assert by_id["ml_stale_old"]["is_stale"] is True
        assert by_id["ml_stale_old"]["has_import_errors"] is False
        assert by_id["etl_000"]["is_stale"] is False
        for dag_id in BROKEN:
            # AF3 also marks the DAGs of a file that fails to import as stale (measured)
            assert by_id[dag_id]["has_import_errors"] is True
        assert sum(d["has_import_errors"] for d in dags) == len(BROKEN)
        # the default listing hides stale DAGs (exclude_stale defaults to true)
        default, total, _ = _list_all(airflow3, client)
        assert "ml_stale_old" not in {d["dag_id"] for d in default}
        errors = client.get(f"{airflow3.api_url}/importErrors").json()
        files = {e["filename"].rsplit("/", 1)[-1] for e in errors["import_errors"]}
        assert files == {f"{d}.py" for d in BROKEN}
        assert all("pausectl_missing_module" in e["stack_trace"]
                   for e in errors["import_errors"])


def test_af3_token_auth(airflow3):
    resp = httpx.get(f"{airflow3.api_url}/dags", params={"limit": 1})
    assert resp.status_code == 401
    bad = httpx.get(f"{airflow3.api_url}/dags", headers={"Authorization": "Bearer nonsense"})
    assert bad.status_code == 403      # measured: a malformed token is 403, a missing one 401
    resp = httpx.post(f"{airflow3.url}/auth/token",
                      json={"username": airflow3.username, "password": airflow3.password})
    assert resp.status_code in (200, 201), resp.text
    token = resp.json()["access_token"]
    ok = httpx.get(f"{airflow3.api_url}/dags", params={"limit": 1},
                   headers={"Authorization": f"Bearer {token}"})
    assert ok.status_code == 200 and ok.json()["total_entries"] > 100
    wrong = httpx.post(f"{airflow3.url}/auth/token",
                       json={"username": airflow3.username, "password": "wrong"})
    assert wrong.status_code == 401


def test_af3_patch_pause_unpause(airflow3):
    airflow3.reset()
    with _client(airflow3) as client:
        _pause_roundtrip(airflow3, client, "etl_010")


# ------------------------------------------------------------------ Airflow 2 (v1)

def test_af2_lists_every_dag_with_paging(airflow2):
    assert airflow2.api_version == "v1"
    with _client(airflow2) as client:
        dags, total, pages = _list_all(airflow2, client, only_active="false")
        assert total == len(SPECS) and pages >= 2
        assert {d["dag_id"] for d in dags} == set(SPECS)
        by_id = {d["dag_id"]: d for d in dags}
        for dag_id in ("etl_000", "report_009", "ml_000", "critical_billing", "misc_orphan"):
            spec = SPECS[dag_id]
            assert {t["name"] for t in by_id[dag_id]["tags"]} == set(spec.tags)
            assert by_id[dag_id]["owners"] == [spec.owner]


def test_af2_stale_and_import_errors(airflow2):
    with _client(airflow2) as client:
        dags, _, _ = _list_all(airflow2, client, only_active="false")
        by_id = {d["dag_id"]: d for d in dags}
        assert by_id["ml_stale_old"]["is_active"] is False
        assert by_id["etl_000"]["is_active"] is True
        for dag_id in BROKEN:
            # AF2 keeps a broken file's DAGs active (unlike AF3)
            assert by_id[dag_id]["has_import_errors"] is True
            assert by_id[dag_id]["is_active"] is True
        # the default listing hides inactive DAGs (only_active defaults to true)
        default, _, _ = _list_all(airflow2, client)
        assert "ml_stale_old" not in {d["dag_id"] for d in default}
        errors = client.get(f"{airflow2.api_url}/importErrors").json()
        files = {e["filename"].rsplit("/", 1)[-1] for e in errors["import_errors"]}
        assert files == {f"{d}.py" for d in BROKEN}


def test_af2_basic_auth(airflow2):
    url = f"{airflow2.api_url}/dags"
    # AF2 answers 403 (not 401) both without credentials and with a wrong password
    assert httpx.get(url, params={"limit": 1}).status_code == 403
    assert httpx.get(url, auth=(airflow2.username, "wrong")).status_code == 403
    ok = httpx.get(url, params={"limit": 1}, auth=(airflow2.username, airflow2.password))
    assert ok.status_code == 200 and ok.json()["total_entries"] == len(SPECS) - len(STALE)


def test_af2_patch_pause_unpause(airflow2):
    airflow2.reset()
    with _client(airflow2) as client:
        _pause_roundtrip(airflow2, client, "etl_010")


# ------------------------------------------------------------------ both

def test_cli_and_reset(airflow_server):
    """The `airflow` CLI helper runs against the same home; reset() restores pause state."""
    airflow_server.reset()
    airflow_server.airflow("dags", "unpause", "report_000", *(
        ["-y"] if airflow_server.major == 3 else []))
    assert airflow_server.query(
        "SELECT is_paused FROM dag WHERE dag_id = 'report_000'") == [(0,)]
    airflow_server.reset()
    assert airflow_server.query("SELECT COUNT(*) FROM dag WHERE NOT is_paused") == [(0,)]


# ------------------------------------------------------------------ the version matrix

def test_matrix_versions_defaults_and_server_version():
    assert harness.MATRIX == ("2.9.3", "2.10.5", "2.11.2", "3.0.6", "3.1.8", "3.2.1", "3.2.2",
                              "3.3.2")
    assert harness.resolve_version(3) == "3.3.2" and harness.resolve_version(2) == "2.11.2"
    assert harness.resolve_version("3.1.8") == "3.1.8"
    for bad in ("3.4.0", "2.8.4", 4, "latest"):
        with pytest.raises(ValueError):
            harness.resolve_version(bad)
    assert set(harness.EXTRA_PINS) == set(harness.MATRIX)
    for version in harness.MATRIX:
        s = harness.AirflowServer(version=version)
        assert (s.version, s.major) == (version, int(version[0]))
        assert s.api_version == ("v2" if s.major == 3 else "v1")
    assert harness.AirflowServer().version == "3.3.2"             # the old default holds
    assert harness.AirflowServer(major=2).version == "2.11.2"
    assert harness.AirflowServer(major=3, version="3.0.6").version == "3.0.6"
    with pytest.raises(ValueError, match="not major version 2"):
        harness.AirflowServer(major=2, version="3.1.8")


def test_matrix_dags_hold_more_than_three_pages_and_auto_pause_dags():
    dags = harness.matrix_dags()
    ids = [d.dag_id for d in dags]
    assert len(ids) == len(set(ids)) >= 350
    auto = [d for d in dags if d.max_consecutive_failed_dag_runs]
    assert [d.dag_id for d in auto] == ["etl_autopause_a", "etl_autopause_b", "etl_autopause_c"]
    assert all(d.fail and d.max_consecutive_failed_dag_runs == 3 for d in auto)
    assert auto[0].to_json()["max_consecutive_failed_dag_runs"] == 3


def _fake_venv(root, version: str, prints: str):
    bin_dir = root / ".airflow" / f"venv-{version}" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "airflow").write_text(f"#!/bin/sh\necho {prints}\n")
    (bin_dir / "airflow").chmod(0o755)
    return bin_dir.parent


def test_ensure_venv_adopts_a_venv_without_marker(tmp_path, monkeypatch):
    """A venv someone else installed (a probe script, by hand) whose `airflow version` is
    right is kept and marked, not deleted and installed again."""
    monkeypatch.setitem(harness.EXTRA_PINS, "2.10.5", ())
    venv = _fake_venv(tmp_path, "2.10.5", "2.10.5")
    assert harness.ensure_venv("2.10.5", tmp_path) == venv.resolve()
    assert (venv / harness.MARKER).read_text().split() == ["apache-airflow==2.10.5"]
    assert (venv / "bin" / "airflow").exists()                    # adopted, not replaced
    assert harness.ensure_venv("2.10.5", tmp_path) == venv.resolve()  # marked: reused


def test_background_install_skips_marked_venvs_and_never_adopts_a_half_install(tmp_path,
                                                                               monkeypatch):
    """`make test` runs testkit.install from its start: the standard versions first, only the
    venvs without a marker; a venv whose pip run was killed (INSTALLING left) is never taken
    for installed, even when its `airflow version` answers."""
    from testkit import install
    assert install.install_order()[:2] == ["3.3.2", "2.11.2"]
    assert sorted(install.install_order()) == sorted(harness.MATRIX)
    assert install.missing(tmp_path) == install.install_order()
    monkeypatch.setitem(harness.EXTRA_PINS, "2.10.5", ())
    venv = _fake_venv(tmp_path, "2.10.5", "2.10.5")
    (venv / harness.MARKER).write_text("apache-airflow==2.10.5\n")
    assert "2.10.5" not in install.missing(tmp_path)
    (venv / harness.MARKER).unlink()
    (venv / ".pausectl-installing").touch()
    removed = []

    def rmtree(path, *a, **k):          # the rebuild's first step: stop there
        removed.append(path)
        raise RuntimeError("rebuild")
    monkeypatch.setattr("testkit.versions.shutil.rmtree", rmtree)
    with pytest.raises(RuntimeError, match="rebuild"):
        harness.ensure_venv("2.10.5", tmp_path)
    assert removed == [venv.resolve()] and not (venv / harness.MARKER).exists()


def test_kill_trees_waits_once_for_all_processes_and_their_children():
    """A server's processes stop together: one grace for all of them (not one each), and
    children that ignore SIGTERM, in their own session, are SIGKILLed after it."""
    import subprocess
    import sys
    import time

    from testkit.procs import _alive, _descendants, kill_trees
    stubborn = ("import signal, subprocess, sys, time; signal.signal(signal.SIGTERM, "
                "signal.SIG_IGN); subprocess.Popen([sys.executable, '-c', 'import signal, "
                "time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)'], "
                "start_new_session=True); time.sleep(60)")
    procs = [subprocess.Popen([sys.executable, "-c", stubborn], start_new_session=True)
             for _ in range(3)]
    deadline = time.monotonic() + 20
    while any(not _descendants(p.pid) for p in procs) and time.monotonic() < deadline:
        time.sleep(0.05)
    pids = [pid for p in procs for pid in (p.pid, *_descendants(p.pid))]
    assert len(pids) == 6
    t = time.monotonic()
    kill_trees(procs, grace=2.0)
    took = time.monotonic() - t
    assert not [pid for pid in pids if _alive(pid)]
    # one grace for the three (2 s), not one each (6 s); the margin absorbs a loaded CI box
    assert 2.0 <= took < 5.5, took


def test_harness_cli_rejects_a_version_of_the_other_major(tmp_path):
    import subprocess
    import sys
    out = subprocess.run([sys.executable, "-m", "testkit.harness", "up", "--major", "2",
                          "--version", "3.1.8", "--root", str(tmp_path)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "Airflow 3.1.8 is not major version 2" in out.stderr.splitlines()[-1]
    out = subprocess.run([sys.executable, "-m", "testkit.harness", "up", "--version", "9.9.9"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "invalid choice" in out.stderr


# ------------------------------------------------------------------ the wheel

def test_the_wheel_ships_testkit_and_only_the_testing_kit_imports_it():
    """testkit ships beside reconciler (issue 17: the harness behind reconciler.testing's
    pausectl_airflow fixture is a supported API); the product itself never imports it, only
    reconciler/testing/ does. Checked from pyproject rather than by building: `pip wheel`
    takes ~20 s here (hatchling in an isolated build env), too slow for every run."""
    import ast
    import tomllib
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    build = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["hatch"]["build"]
    assert build["targets"]["wheel"]["packages"] == ["reconciler", "testkit"]
    assert not [k for k in build["targets"]["wheel"].get("force-include", {})
                if k.split("/")[0] in ("testkit", "tests")]
    assert "tests" not in build["targets"]["sdist"]["include"]
    assert "testkit" in build["targets"]["sdist"]["include"]     # the wheel builds from it
    importers = []
    testing = root / "reconciler" / "testing"
    for path in sorted((root / "reconciler").rglob("*.py")):
        if testing in path.parents:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if any(n == "testkit" or n.startswith("testkit.") for n in names):
                importers.append(f"{path.relative_to(root)}:{node.lineno}")
    assert not importers, f"product code imports the test kit: {importers}"
