"""The impact preview as a pure function (plan/impact.py): catch-up counts per timetable kind,
what a pause touches, the coordinated unpause levels and their batches, the guard line, and
the renderers adding nothing when there is nothing to say."""

from __future__ import annotations

import io
from datetime import datetime, timezone
from types import SimpleNamespace

import pytest

from reconciler.live.base import AssetEdge, DagEdge, ImpactEvidence
from reconciler.plan import impact_render
from reconciler.plan.impact import Impact, catchup_runs, compute, detail_order, unpause_levels
from reconciler.plan.model import Change, Plan
from reconciler.plan.records import Action
from reconciler.plan.render import plan_markdown, plan_text
from reconciler.plan.rollout import cut_batches

AT = datetime(2026, 12, 1, 18, 30, tzinfo=timezone.utc)


def ev(schedule="0 0 * * *", next_run="2026-11-01T00:00:00Z", catchup=True, **kw):
    return ImpactEvidence("d", schedule=schedule, next_run_after=next_run, catchup=catchup, **kw)


def change(dag_id, action):
    return SimpleNamespace(dag_id=dag_id, action=Action(action))


@pytest.mark.parametrize("evidence, runs, first, last", [
    # AF3 CronTriggerTimetable: Nov 1 .. Dec 1 00:00 inclusive
    (ev(), 31, "2026-11-01T00:00:00Z", "2026-12-01T00:00:00Z"),
    # AF2 CronDataIntervalTimetable: the first run is created at its interval's end (Nov 2)
    (ev(next_run="2026-11-02T00:00:00Z"), 30, "2026-11-02T00:00:00Z", "2026-12-01T00:00:00Z"),
    (ev(schedule="@daily"), 31, "2026-11-01T00:00:00Z", "2026-12-01T00:00:00Z"),
    (ev(schedule="@hourly", next_run="2026-12-01T10:00:00Z"), 9, "2026-12-01T10:00:00Z",
     "2026-12-01T18:00:00Z"),
    (ev(schedule="1 day, 0:00:00", next_run="2026-11-25T06:00:00Z"), 7,
     "2026-11-25T06:00:00Z", "2026-12-01T06:00:00Z"),
    (ev(end_date="2026-11-10T12:00:00Z"), 10, "2026-11-01T00:00:00Z", "2026-11-10T00:00:00Z"),
    # in Berlin, midnight is 23:00 UTC in winter
    (ev(next_run="2026-11-28T23:00:00Z", timezone="Europe/Berlin"), 3,
     "2026-11-28T23:00:00Z", "2026-11-30T23:00:00Z"),
    (ev(catchup=False), 1, "2026-12-01T00:00:00Z", "2026-12-01T00:00:00Z"),
    (ev(next_run="2026-12-02T00:00:00Z"), 0, None, None),
    (ev(next_run=None), 0, None, None),
    (ev(schedule="Asset"), 0, None, None),
    (ev(schedule="@once", next_run="2026-01-01T00:00:00Z"), 1, "2026-01-01T00:00:00Z",
     "2026-01-01T00:00:00Z"),
])
def test_catchup_runs_are_counted_by_the_timetable(evidence, runs, first, last):
    c = catchup_runs(evidence, AT)
    assert (c.runs, c.first, c.last) == (runs, first, last)


def test_long_and_hostile_schedules_stay_bounded():
    minutely = catchup_runs(ev(schedule="* * * * *", next_run="2026-01-01T00:00:00Z"), AT)
    assert (minutely.runs, minutely.exact) == (10_000, False)      # "more than 10000"
    never = catchup_runs(ev(schedule="0 0 31 2 *"), AT)           # Feb 31: croniter gives up
    assert never.runs is None and "not counted" in never.basis
    for bad in ({"timezone": "../../etc/passwd"}, {"timezone": "x" * 5000},
                {"next_run": "not a time"}, {"end_date": "9999-99-99"}):
        catchup_runs(ev(**bad), AT)                                  # no exception


def test_a_custom_timetable_is_not_counted_and_says_so():
    c = catchup_runs(ev(schedule="MyTimetable(days=3)"), AT)
    assert c.runs is None and "not a cron or interval schedule" in c.basis
    d = compute([change("d", "unpause")], {"d": ev(schedule="MyTimetable")}, [], AT)
    assert d.dags[0].phrases() == ["catch-up runs not counted: timetable 'MyTimetable' is "
                                   "not a cron or interval schedule"]
    assert Impact(d.dags).catchup_over(0) == []      # the guard refuses only what it counted


def test_a_pause_names_what_stalls_waits_and_starves():
    edges = [DagEdge("up", "s", "sensor", "wait_up", 600.0), DagEdge("up", "t", "trigger", "go"),
             AssetEdge("up", "c", "orders"), AssetEdge("p", "up", "raw"),
             AssetEdge("up", "w", None)]       # a declared `sensors:` entry
    evidence = {"up": ImpactEvidence("up", running=1, queued=2,
                                     backfills=({"id": 4, "from_date": "a", "to_date": "b",
                                                 "is_paused": False},))}
    (d,) = compute([change("up", "pause")], evidence, edges, AT).dags
    assert d.phrases() == [
        "1 running, 2 queued run(s) will stall until unpaused", "backfill #4 (a..b) stops",
        "sensors will wait: s.wait_up (timeout 600s), w.sensor", "no longer triggers: t",
        "asset consumers get no events: c (orders)",
        "asset events for it are lost while paused: raw"]
    assert d.to_json()["sensors"][0] == {"dag_id": "s", "task_id": "wait_up", "timeout": 600.0}


def test_a_drained_pause_says_apply_waits_instead_of_stall():
    c = SimpleNamespace(dag_id="d", action=Action("pause"), drain={"deadline_seconds": 60})
    (d,) = compute([c], {"d": ImpactEvidence("d", running=1, queued=0)}, [], AT).dags
    assert d.phrases() == ["1 running, 0 queued run(s): the drain waits for them, up to its "
                           "deadline"]


def test_an_unpause_resumes_runs_and_backfills():
    evidence = {"d": ev(next_run="2026-12-02T00:00:00Z", queued=3, running=0,
                        backfills=({"id": 1, "from_date": "a", "to_date": "b", "is_paused": True},))}
    (d,) = compute([change("d", "unpause")], evidence, [], AT).dags
    assert d.phrases() == ["0 running, 3 queued run(s) resume",
                           "backfill #1 (a..b) stays paused (the backfill itself is paused)"]


def test_levels_put_upstream_first_and_survive_cycles():
    edges = [AssetEdge("a", "b", "x"), DagEdge("b", "c", "sensor", "w"), AssetEdge("a", "c", "y"),
             AssetEdge("z", "a", "q")]            # z is not unpaused: no level of its own
    assert unpause_levels(["c", "b", "a", "lone"], edges) == (("a", "lone"), ("b",), ("c",))
    assert unpause_levels(["a", "b"], [AssetEdge("a", "b", "x"), AssetEdge("b", "a", "y")]) \
        == (("a", "b"),)


def test_batches_follow_the_levels_with_the_pauses_first():
    changes = [change(d, "unpause") for d in ("c", "b", "a")] + [change("p", "pause")]
    batches = cut_batches(changes, {"batches": ["100%"]}, [], (("a",), ("b",), ("c",)))
    assert [b["dag_ids"] for b in batches] == [["p", "a"], ["b"], ["c"]]
    assert [b["dag_ids"] for b in cut_batches(changes, {"batches": ["100%"]}, [])] == \
        [["p", "a", "b", "c"]]


def _plan(impact) -> Plan:
    plan = Plan(environment="prod", generated_at="2026-12-01T00:00:00Z", at="2026-12-01T00:00:00Z",
                desired_ref=None)
    plan.changes = [Change("d", "unpause", True, False, "prod.yaml:3", None, None)]
    plan.impact = impact
    return plan.freeze({"batches": ["100%"]})


def test_renderers_add_nothing_without_impact_and_neutralise_airflow_strings():
    quiet = compute([change("d", "unpause")], {"d": ev(next_run="2027-01-01T00:00:00Z")}, [], AT)
    assert not quiet
    a, b = io.StringIO(), io.StringIO()
    plan_text(_plan(None), a)
    plan_text(_plan(quiet or None), b)
    assert a.getvalue() == b.getvalue() and "impact" not in a.getvalue()
    hostile = compute([change("d", "pause")], {},
                      [DagEdge("d", "x\x1b[31m::error::`|", "sensor", "t\n")], AT)
    text = "\n".join(impact_render.text_lines(_plan(hostile)))
    assert "\x1b" not in text and "\n" not in text.strip("\n") and "::error::" not in text
    md = plan_markdown(_plan(hostile))
    assert "Impact (1)" in md and "`|" not in md.split("Impact (1)")[1].split("</details>")[0]


def test_the_guard_line_names_each_dag_and_its_count_and_the_plan_json_round_trips():
    impact = compute([change("d", "unpause")], {"d": ev()}, [], AT)
    plan = _plan(impact)
    assert impact_render.guard_line(plan, 31) is None
    assert impact_render.guard_line(plan, 10) == (
        "d would create 31 catch-up runs, more than safety.max_catchup_runs (10); nothing "
        "changed. Re-run with --allow-catchup if that is intended")
    again = Plan.from_json(plan.to_json())
    assert again.impact.catchup_over(10) == [("d", 31)]
    assert "impact" not in _plan(None).to_json()


def test_unpauses_over_the_detail_cap_are_named_once_and_refused_by_the_guard():
    # 2 read, 3 over impact.max_detail_reads: no line each, one note naming them, and the guard
    # (any limit) refuses them until --allow-catchup; the saved plan keeps them
    evidence = {"a": ev(), "b": ev(catchup=False)}
    evidence.update({d: ImpactEvidence(d, unread=True) for d in ("c", "d", "e")})
    impact = compute([change(d, "unpause") for d in "abcde"], evidence, [], AT)
    assert impact.unread() == ["c", "d", "e"] and impact.uncounted() == ["c", "d", "e"]
    assert [d.dag_id for d in impact.shown()] == ["a", "b"]
    assert impact.notes == ("not previewed: 3 DAG(s) (c, d, e): their catch-up runs were not "
                            "counted; raise impact.max_detail_reads in pausectl.yaml to count "
                            "them",)
    plan = _plan(impact)
    text = "\n".join(impact_render.text_lines(plan))
    assert "note     impact: not previewed: 3 DAG(s)" in text and "impact   c" not in text
    assert impact_render.guard_line(plan, None) is None           # no limit: no guard
    assert impact_render.guard_line(plan, 100) == (
        "3 unpause(s) would create catch-up runs that were not counted: c, d, e (not "
        "previewed: raise impact.max_detail_reads to count them); safety.max_catchup_runs is "
        "100; nothing changed. Re-run with --allow-catchup if that is intended")
    assert impact_render.guard_line(plan, 10).startswith(
        "a would create 31 catch-up runs, more than safety.max_catchup_runs (10); 3 unpause(s)")
    again = Plan.from_json(plan.to_json())
    assert plan.to_json()["impact"]["not_previewed"] == ["c", "d", "e"]
    assert again.impact.uncounted() == ["c", "d", "e"] and again.impact.unread() == ["c", "d", "e"]


def test_an_uncounted_timetable_is_refused_unless_catchup_is_known_off():
    on = compute([change("d", "unpause")], {"d": ev(schedule="MyTimetable")}, [], AT)
    off = compute([change("d", "unpause")], {"d": ev(schedule="MyTimetable", catchup=False)},
                  [], AT)
    assert on.uncounted() == ["d"] and off.uncounted() == []
    assert impact_render.guard_line(_plan(on), 10).startswith(
        "1 unpause(s) would create catch-up runs that were not counted: d; ")
    assert impact_render.guard_line(_plan(off), 10) is None
    assert Plan.from_json(_plan(on).to_json()).impact.uncounted() == ["d"]


def test_details_are_read_only_where_the_listing_cannot_tell_most_runs_behind_first():
    def dag(dag_id, summary="0 * * * *", nxt="2026-12-01T10:00:00Z", paused=True):
        return SimpleNamespace(dag_id=dag_id, timetable_summary=summary,
                               next_dagrun_run_after=nxt, is_paused=paused)
    dags = [dag("new"), dag("old", nxt="2026-11-01T00:00:00Z"), dag("none", summary=None),
            dag("asset", summary="Asset"), dag("future", nxt="2027-01-01T00:00:00Z"),
            dag("never", nxt=None), dag("running", paused=False), dag("odd", nxt="garbage")]
    assert detail_order(dags, AT) == ["odd", "old", "new"]
