"""`pausectl reconcile --watch` against the session's real Airflow (3.3.2, REST v2; the window
test on 2.11.2 too):

- a window (a dag entry's `from`..`until`, read at once on SIGHUP) a few seconds ahead is
  applied within 2 s of its start and undone within 2 s of its end: the controller sleeps
  until the next transition, not a whole --interval (60 s here, so only the transition can
  explain the timing);
- SIGTERM while a batch's health gate waits: the batch finishes, the apply stops before the
  next one, exit 0, the journal halted and complete (it matches Airflow DAG by DAG);
- two controllers on one environment: the second stands by, never applies while the first
  leads, and takes over when the first stops; /metrics parses with prometheus_client's parser
  and says who leads.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone

import httpx
from controller_support import ControllerProc, live_state
from helpers import db_states, set_states
from prometheus_client.parser import text_string_to_metric_families


def _env(server, journal_dir) -> dict:
    return {"AF_USER": server.username, "AF_PASS": server.password,
            "PAUSECTL_JOURNAL_DIR": str(journal_dir)}


def _iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _watch_flip(server, dag_id: str, paused: bool, timeout: float, proc=None) -> float:
    """time.time() when Airflow's DB first shows dag_id at `paused`."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if db_states(server)[dag_id] is paused:
            return time.time()
        time.sleep(0.05)
    raise AssertionError(f"{dag_id} never became paused={paused}:\n"
                         + (proc.output() if proc is not None else ""))


def _journals(d) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(d.glob("live-*.json"))]


def report(capsys, text: str) -> None:
    """A measured number for the log (-s)."""
    with capsys.disabled():
        print(f"\n[controller] {text}", flush=True)


def test_a_window_opens_and_closes_on_time(airflow_server, tmp_path, capsys):
    server = airflow_server
    server.reset()
    set_states(server, {"etl_003": False})
    state = live_state(tmp_path / "state", server.url,
                       "environment: live\ndefaults: {unmanaged: ignore}\n")
    c = ControllerProc(tmp_path, ["live", "--watch", "--interval", "60", "--no-gates",
                                  "--listen", "127.0.0.1:0"],
                       _env(server, tmp_path / "journal"))
    try:
        c.wait_for("live: in sync", 60)          # started, however long that took
        # a window from 10 s ahead, for 8 s; SIGHUP makes the controller read it now, then it
        # sleeps (interval 60 s) until the window's transitions: only they explain the timing
        start = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(seconds=10)
        end = start + timedelta(seconds=8)
        (state / "live.yaml").write_text(
            (state / "live.yaml").read_text() + "dags:\n"
            f"  etl_003: {{paused: true, reason: 'load test window', owner: data-eng,\n"
            f"            from: '{_iso(start)}', until: '{_iso(end)}'}}\n")
        seen = len(c.lines)
        c.proc.send_signal(1)
        c.wait_for("live: in sync", 30, after=seen)
        assert db_states(server)["etl_003"] is False
        paused_at = _watch_flip(server, "etl_003", True, 40, c)
        unpaused_at = _watch_flip(server, "etl_003", False, 30, c)
        timeline = "\n".join(f"{t - start.timestamp():+.2f} {line}" for t, line in c.lines)
        assert 0 <= paused_at - start.timestamp() <= 2.0, (paused_at - start.timestamp(),
                                                            timeline)
        assert 0 <= unpaused_at - end.timestamp() <= 2.0, (unpaused_at - end.timestamp(),
                                                           timeline)
        report(capsys, f"Airflow {server.version}: window applied "
                       f"{paused_at - start.timestamp():.2f}s after its start, undone "
                       f"{unpaused_at - end.timestamp():.2f}s after its end")
        # the tick records its outcome just after its writes: poll until the second is in
        address, deadline = c.address(), time.monotonic() + 20
        while True:
            metrics = httpx.get(f"http://{address}/metrics", timeout=10).text
            if "pausectl_controller_changed_dags_total{env=\"live\"} 2.0" in metrics \
                    or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert c.terminate() == 0, c.output()
    finally:
        c.kill()
    families = {f.name: f for f in text_string_to_metric_families(metrics)}
    leader = [s for s in families["pausectl_controller_leader"].samples]
    assert [(s.labels, s.value) for s in leader] == [({"env": "live"}, 1.0)]
    changed = families["pausectl_controller_changed_dags"].samples
    assert [s.value for s in changed if s.name.endswith("_total")] == [2.0]
    assert "pausectl_plan_changes" in families and "pausectl_paused_dags" in families
    # four ticks in all: start, SIGHUP, the window's start, its end (no polling meanwhile)
    assert c.count("live: done: 1 DAG(s) changed") == 2
    assert c.count("live: in sync") == 2, c.output()


def test_sigterm_during_a_batch_finishes_it_and_exits_0(pausectl_airflow, tmp_path):
    # the testing kit's fixture (reset already; tests/conftest.py puts it on airflow3)
    server = pausectl_airflow
    dags = ["etl_000", "etl_001", "etl_002"]
    set_states(server, {d: True for d in dags})
    live_state(tmp_path / "state", server.url, (
        "environment: live\n"
        "defaults: {unmanaged: ignore}\n"
        "groups:\n"
        "  - {name: canaries, match: {dag_id: 'etl_00[0-2]'}, paused: false, owner: data-eng,\n"
        "     reason: 'back in service'}\n"),
        rollout="{batches: [1, 2, 3], gate: {wait_seconds: 3, max_failed_runs: 0}, "
                "on_gate_failure: halt}")
    journal_dir = tmp_path / "journal"
    c = ControllerProc(tmp_path, ["live", "--watch", "--listen", "off"],
                       _env(server, journal_dir))
    try:
        c.wait_for("gate: waiting 3s", 40)       # batch 1 is set, its gate waits
        c.proc.send_signal(15)
        code = c.terminate()
    finally:
        c.kill()
    assert code == 0, c.output()
    assert "SIGTERM: finishing the batch in progress" in c.output()
    [j] = _journals(journal_dir)
    assert j["status"] == "halted"
    statuses = [b["status"] for b in j["batches"]]
    assert statuses[0] == "applied" and set(statuses[1:]) == {"pending"}, statuses
    assert j["batches"][0]["gate"]["passed"] is True
    assert "stopped before batch 1: SIGTERM" in [e["event"] for e in j["events"]]
    # the journal is the truth: batch 1's DAG runs, the others were never touched
    live = db_states(server)
    for d, v in j["dags"].items():
        assert live[d] is (v["after"] if v["batch"] == 0 else v["before"]), (d, v)
    assert sum(live[d] is False for d in dags) == len(j["batches"][0]["dag_ids"]) < len(dags)
    # the lease was released on the way out
    r = httpx.get(f"{server.api_url}/variables/pausectl.controller.live",
                  headers=server.auth_headers(), timeout=30)
    assert r.status_code == 404


def _metric(address: str, name: str) -> float:
    text = httpx.get(f"http://{address}/metrics", timeout=10).text
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name == name:
                return s.value
    raise AssertionError(f"{name} not in /metrics")


def _metric_becomes(address: str, name: str, want: float, timeout: float = 20) -> float:
    """The gauge once it reads `want` (a replica's role is set when its tick ends, which
    on a loaded box can come after the log line a test waited for), else its last value."""
    deadline = time.monotonic() + timeout
    while (value := _metric(address, name)) != want and time.monotonic() < deadline:
        time.sleep(0.2)
    return value


def test_two_controllers_one_leads_the_other_stands_by_then_takes_over(airflow3, tmp_path,
                                                                        capsys):
    server = airflow3
    server.reset()
    set_states(server, {"etl_004": False, "etl_005": False})
    state = live_state(tmp_path / "state", server.url,
                       "environment: live\ndefaults: {unmanaged: ignore}\n")
    dag = ("dags:\n  {d}: {{paused: true, reason: 'standby test', owner: data-eng}}\n")
    args = ["live", "--watch", "--interval", "1", "--standby-poll", "0.5", "--no-gates",
            "--listen", "127.0.0.1:0"]
    a = ControllerProc(tmp_path, args, _env(server, tmp_path / "ja"))
    b = None
    try:
        a.wait_for("live: leading", 40)
        b = ControllerProc(tmp_path, args, _env(server, tmp_path / "jb"))
        b.wait_for("live: standing by, the lease is held by", 40)
        addr_a, addr_b = a.address(), b.address()
        assert _metric_becomes(addr_a, "pausectl_controller_leader", 1.0) == 1.0
        assert _metric(addr_b, "pausectl_controller_leader") == 0.0
        assert httpx.get(f"http://{addr_b}/readyz", timeout=10).json()["environments"][
            "live"]["role"] == "standby"
        # a change while A leads: A applies it, B never does
        (state / "live.yaml").write_text((state / "live.yaml").read_text()
                                         + dag.format(d="etl_004"))
        _watch_flip(server, "etl_004", True, 30)
        time.sleep(1.5)                          # B polls three times meanwhile
        assert len(_journals(tmp_path / "ja")) == 1 and not _journals(tmp_path / "jb")
        assert a.terminate() == 0, a.output()
        stopped = time.time()
        took, _ = b.wait_for("live: leading", 30)
        report(capsys, f"standby took over {took - stopped:.2f}s after the leader exited")
        # B leads now: the next change is B's
        (state / "live.yaml").write_text((state / "live.yaml").read_text()
                                         .replace("etl_004", "etl_005"))
        _watch_flip(server, "etl_005", True, 30)
        time.sleep(0.5)
        assert _metric_becomes(addr_b, "pausectl_controller_leader", 1.0) == 1.0
        assert b.terminate() == 0, b.output()
    finally:
        a.kill()
        if b is not None:
            b.kill()
    ja, jb = _journals(tmp_path / "ja"), _journals(tmp_path / "jb")
    assert len(ja) == 1 and len(jb) == 1, (a.output(), b.output())
    # never both: every apply of B began after A's last one finished
    assert ja[0]["finished"] < jb[0]["started"]
    assert {d for j in ja for d in j["dags"]} == {"etl_004"}
    # etl_004 lost its rule: unmanaged (ignore), it stays as A left it
    assert jb[0]["dags"] == {"etl_005": {"before": False, "after": True, "batch": 0}}
    assert db_states(server)["etl_004"] is True


