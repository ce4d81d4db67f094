"""`pausectl lint ENV`: pause anti-patterns, each with an id, a severity, a message and a fix.

| id | default | finds |
|---|---|---|
| forgotten-pause | warning | a permanent pause (no `until`, no windows/budget) older than `forgotten_pause_days` (30) |
| missing-reason | warning | a pause whose reason or owner is a placeholder (TODO, tbd, n/a, -, ...) |
| missing-ticket | info | a permanent pause without a `ticket` |
| delete-candidate | warning | a permanent pause of a DAG with no run for `no_runs_days` (90): delete the DAG |
| unknown-live-pause | warning | a DAG paused in Airflow that no rule in git knows (with `defaults.unmanaged: report`) |
| pause-after-failure | warning | a DAG paused by hand within `failure_window_hours` (24) after a failed run |
| expired-until | warning | a rule whose `until` has passed, still in the file |
| matches-nothing | warning | a rule that matches no DAG in Airflow |
| auto-paused | warning | a DAG Airflow paused by itself after failed runs (max_consecutive_failed_dag_runs) |

A rule's age is how long its `paused: true` line has been in git (`git blame` of that line,
committer time; lines not committed yet are new). Outside git, the newest pause event in
Airflow's audit log stands in. Without either the rule is not judged. `delete-candidate` and
`pause-after-failure` need run history and the audit log, which snapshot backends do not have:
they are listed as skipped there.

Configuration: `lint:` in pausectl.yaml (`disable: [ids]`, `severity: {id: error|warning|info}`,
`forgotten_pause_days`, `no_runs_days`, `failure_window_hours`), and `lint: {disable: [ids]}` in
any state file, which silences those ids for the rules in that file (and, in the environment's
own file, for findings about no rule).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from reconciler.live.base import AuditEvent, LiveDag
from reconciler.core.errors import PausectlError
from reconciler.policy.resolve import Resolution
from reconciler.state.loader import CONFIG_FILE, Config, EnvState, Rule
from reconciler.core.timeutil import iso

SEVERITIES = ("error", "warning", "info")
RULES = {
    # id: (default severity, fix hint)
    "forgotten-pause": ("warning", "add `until:` (when should it end?) or remove the pause; "
                                   "a permanent pause deserves a ticket and a review date"),
    "missing-reason": ("warning", "write down why (`reason:`) and who decides (`owner:`)"),
    "missing-ticket": ("info", "link the pause to a ticket (`ticket: ABC-123`)"),
    "delete-candidate": ("warning", "the DAG does nothing: delete its file (and the rule) "
                                    "instead of keeping it paused"),
    "unknown-live-pause": ("warning", "add a dag entry with paused, reason and owner to git, "
                                      "or unpause it (`pausectl plan` reverts unknown changes "
                                      "only for managed DAGs)"),
    "pause-after-failure": ("warning", "pausing hides failures: fix the DAG (or its retries and "
                                       "alerts); if it must stay paused, put it in git with a "
                                       "reason and a ticket"),
    "expired-until": ("warning", "remove the expired rule, or extend `until`"),
    "matches-nothing": ("warning", "remove the rule, or fix its dag_id/match"),
    "auto-paused": ("warning", "fix the failing task, then unpause the DAG in Airflow; if it "
                               "should stay off, pause it in git with a reason and a ticket"),
}
DEFAULTS = {"forgotten_pause_days": 30, "no_runs_days": 90, "failure_window_hours": 24}
_PLACEHOLDER = re.compile(r"^\s*(todo|tbd|tbc|n/?a|none|null|unknown|nobody|wip|temp|tmp|test|"
                          r"fixme|xxx|asdf|\?+|-+|\.+)\s*[.!]*\s*$", re.I)


@dataclass
class Finding:
    id: str
    severity: str
    message: str
    fix: str
    file: str | None = None
    line: int | None = None
    dag_ids: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"id": self.id, "severity": self.severity, "message": self.message,
                "fix": self.fix, "file": self.file, "line": self.line, "dag_ids": self.dag_ids}


@dataclass
class LintResult:
    environment: str
    at: datetime
    findings: list[Finding] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def counts(self) -> dict:
        return {s: sum(f.severity == s for f in self.findings) for s in SEVERITIES}

    def to_json(self) -> dict:
        return {"environment": self.environment, "at": iso(self.at),
                "summary": self.counts(), "findings": [f.to_json() for f in self.findings],
                "skipped": self.skipped}


# ---- configuration -------------------------------------------------------------------------

def _split_where(where: str) -> tuple[str | None, int | None]:
    file, _, line = where.rpartition(":")
    return (file or None), (int(line) if line.isdigit() else None)


def _check_ids(ids, doc, path: tuple) -> None:
    for i, rid in enumerate(ids or ()):
        if rid not in RULES:
            raise doc.error(path + (i,), f"unknown lint rule {rid!r} (known: "
                                         f"{', '.join(sorted(RULES))})")


def _file_settings(state: EnvState) -> dict[str, dict]:
    """Per state file (as named in `where`): its `lint:` mapping."""
    from reconciler.state.yamlload import load_yaml_file
    out = {}
    for f in state.files:
        doc = load_yaml_file(Path(f), f)
        lint = (doc.data or {}).get("lint") if isinstance(doc.data, dict) else None
        if lint:
            _check_ids(lint.get("disable"), doc, ("lint", "disable"))
            for key in lint:
                if key != "disable":
                    raise doc.error(("lint", key), f"lint.{key} belongs in {CONFIG_FILE}; a "
                                                   "state file may only `disable` lint rules")
        out[f] = lint or {}
    return out


class Settings:
    def __init__(self, cfg: Config, state: EnvState):
        conf = dict(cfg.lint or {})
        if cfg.doc is not None:
            _check_ids(conf.get("disable"), cfg.doc, ("lint", "disable"))
            for rid in (conf.get("severity") or {}):
                if rid not in RULES:
                    raise cfg.doc.error(("lint", "severity", rid), f"unknown lint rule {rid!r}")
        self.disabled = set(conf.get("disable") or ())
        self.severity = {rid: (conf.get("severity") or {}).get(rid, sev)
                         for rid, (sev, _) in RULES.items()}
        self.values = {k: conf.get(k, v) for k, v in DEFAULTS.items()}
        self.per_file = _file_settings(state)
        self.env_file = state.files[0] if state.files else None

    def enabled(self, rid: str, file: str | None) -> bool:
        if rid in self.disabled:
            return False
        f = file if file in self.per_file else self.env_file
        return rid not in set((self.per_file.get(f) or {}).get("disable") or ())


# ---- rule age from git ----------------------------------------------------------------------

class GitAges:
    """Committer time of individual lines, from `git blame` (one run per file, cached)."""

    def __init__(self):
        self._cache: dict[str, dict[int, datetime] | None] = {}

    def line_time(self, file: str, line: int) -> datetime | None:
        if file not in self._cache:
            self._cache[file] = _blame(file)
        times = self._cache[file]
        if times is None:
            return None
        return times.get(line)


def _blame(file: str) -> dict[int, datetime] | None:
    from datetime import timezone
    path = Path(file).resolve()
    try:
        out = subprocess.run(["git", "-C", str(path.parent), "blame", "--line-porcelain", "--",
                              path.name], capture_output=True, text=True, timeout=60,
                             env={**os.environ, "GIT_OPTIONAL_LOCKS": "0"})
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None      # not in a git repository, or the file is not tracked
    times: dict[int, datetime] = {}
    sha = None
    line_no = None
    uncommitted = False
    for text in out.stdout.splitlines():
        if text.startswith("\t"):
            continue
        parts = text.split(" ")
        if len(parts) >= 3 and len(parts[0]) == 40 and all(c in "0123456789abcdef" for c in parts[0]):
            sha, line_no = parts[0], int(parts[2])
            uncommitted = set(sha) == {"0"}
        elif parts[0] == "committer-time" and line_no is not None:
            times[line_no] = (datetime.now(timezone.utc) if uncommitted else
                              datetime.fromtimestamp(int(parts[1]), timezone.utc))
    return times


def _paused_line(rule: Rule) -> int | None:
    """The line of the rule's `paused:` key (or the rule's own line)."""
    from reconciler.state.yamlload import load_yaml_file
    file, line = _split_where(rule.where)
    if file is None:
        return line
    try:
        doc = load_yaml_file(Path(file), file)
    except PausectlError:
        return line
    data = doc.data if isinstance(doc.data, dict) else {}
    if rule.layer == "dag":
        path = ("dags", rule.name, "paused")
    else:
        groups = data.get("groups") or []
        idx = next((i for i, g in enumerate(groups) if isinstance(g, dict)
                    and g.get("name") == rule.name), None)
        if idx is None:
            return line
        path = ("groups", idx, "paused")
    try:
        return doc.mark(path)[0]
    except Exception:  # noqa: BLE001 - a mark that cannot be found falls back to the rule line
        return line


# ---- the linter ----------------------------------------------------------------------------

def _permanent(rule: Rule) -> bool:
    return rule.paused and rule.until is None and not rule.windows


def _matched(res: Resolution, live: list[LiveDag]) -> dict[int, list[LiveDag]]:
    out: dict[int, list[LiveDag]] = {}
    for d in live:
        for r in res.resolver.matching_rules(d):
            if r.origin is None:
                out.setdefault(id(r), []).append(d)
    return out


def lint_env(cfg: Config, state: EnvState, live: list[LiveDag], res: Resolution, backend,
             at: datetime, ages: GitAges | None = None) -> LintResult:
    from reconciler.live.snapshot import SnapshotBackend
    st = Settings(cfg, state)
    result = LintResult(state.name, at)
    ages = ages or GitAges()
    offline = isinstance(backend, SnapshotBackend)
    matched = _matched(res, live)
    rules = state.all_rules()
    by_id = {d.dag_id: d for d in live}

    def add(rid: str, message: str, where: str | None = None, dag_ids=()):
        file, line = _split_where(where) if where else (None, None)
        if not st.enabled(rid, file):
            return
        result.findings.append(Finding(rid, st.severity[rid], message, RULES[rid][1], file,
                                       line, sorted(dag_ids)))

    # expired-until, matches-nothing, missing-reason, missing-ticket, forgotten-pause
    forgotten_days = st.values["forgotten_pause_days"]
    events_cache: dict[str, list[AuditEvent]] | None = None
    for r in rules:
        hits = matched.get(id(r), [])
        if r.until is not None and r.until <= at:
            add("expired-until", f"{r.label()} expired at {iso(r.until)} and no longer applies",
                r.where)
        if not hits:
            what = f"no DAG named {r.name!r}" if r.layer == "dag" else \
                f"no DAG ({r.selector.describe() if r.selector else 'match'})"
            add("matches-nothing", f"{r.label()} matches {what} in {state.name}", r.where)
        if not r.paused:
            continue
        bad = [k for k in ("reason", "owner")
               if not getattr(r, k) or _PLACEHOLDER.match(getattr(r, k))]
        if bad:
            add("missing-reason", f"{r.label()} pauses with no real {' or '.join(bad)} "
                                  f"({', '.join(repr(getattr(r, k)) for k in bad)})", r.where)
        if not _permanent(r):
            continue
        if not r.ticket:
            add("missing-ticket", f"{r.label()} pauses permanently without a ticket", r.where)
        if st.enabled("forgotten-pause", _split_where(r.where)[0]) and r.inactive_reason(at) is None:
            file, _ = _split_where(r.where)
            since = None
            line = _paused_line(r)
            if file and line:
                since = ages.line_time(file, line)
            source = "in git"
            if since is None and not offline and hits:
                if events_cache is None:
                    events_cache = _last_pauses(backend, [d.dag_id for d in live if d.is_paused])
                whens = [events_cache[d.dag_id].when for d in hits if d.dag_id in events_cache]
                since = max(whens) if whens else None
                source = "in Airflow (audit log)"
            if since is not None and at - since > timedelta(days=forgotten_days):
                days = (at - since).days
                add("forgotten-pause", f"{r.label()} has paused {len(hits)} DAG(s) for {days} "
                                       f"days {source} with no `until` (limit "
                                       f"{forgotten_days} days)", r.where,
                    [d.dag_id for d in hits])

    # unknown-live-pause
    if state.defaults.unmanaged == "report":
        unknown = [d.dag_id for d in live if d.is_paused and not d.is_stale
                   and res.decisions[d.dag_id].unmanaged]
        for dag_id in unknown:
            add("unknown-live-pause", f"{dag_id} is paused in {state.name} but no rule in git "
                                      "knows it", None, [dag_id])

    # auto-paused: Airflow stopped these after failed runs (the newest event is its own)
    _auto_paused(backend, live, res, st, add)

    # delete-candidate: permanent pauses of DAGs that have not run for N days
    no_runs = st.values["no_runs_days"]
    perm = sorted({d.dag_id for d in live
                   if (dec := res.decisions[d.dag_id]).paused and dec.rule is not None
                   and dec.rule.layer in ("dag", "group") and _permanent(dec.rule)
                   and dec.rule.origin is None})
    if st.enabled("delete-candidate", None) or any(
            st.enabled("delete-candidate", _split_where(res.decisions[x].rule.where)[0])
            for x in perm):
        if offline:
            if perm:
                result.skipped.append("delete-candidate: the snapshot backend has no run history")
        else:
            cutoff = at - timedelta(days=no_runs)
            for dag_id in perm:
                runs = backend.dag_runs(dag_id, limit=1)
                last = None
                if runs:
                    r0 = runs[0]
                    last = r0.end_date or r0.start_date or r0.run_after
                if last is None or last < cutoff:
                    rule = res.decisions[dag_id].rule
                    when = f"since {iso(last)}" if last else "ever"
                    add("delete-candidate", f"{dag_id} is paused for good by {rule.label()} and "
                                            f"has not run {when} (over {no_runs} days)",
                        rule.where, [dag_id])

    # pause-after-failure: manual pauses that came right after a failed run
    window = timedelta(hours=st.values["failure_window_hours"])
    if offline:
        if any(d.is_paused for d in live):
            result.skipped.append("pause-after-failure: the snapshot backend has no audit log "
                                  "or run history")
    else:
        if events_cache is None:
            events_cache = _last_pauses(backend, [d.dag_id for d in live if d.is_paused])
        for dag_id, ev in sorted(events_cache.items()):
            d = by_id.get(dag_id)
            if d is None or not d.is_paused or ev.via in ("pausectl", "airflow"):  # see auto-paused
                continue
            failed = _failed_before(backend.dag_runs(dag_id, limit=10), ev.when, window)
            if failed is not None:
                dec = res.decisions[dag_id]
                where = dec.rule.where if dec.rule is not None and dec.rule.layer in (
                    "dag", "group") else None
                add("pause-after-failure",
                    f"{dag_id} was paused by {ev.user or 'unknown'} at {iso(ev.when)}, "
                    f"{_ago(ev.when - failed)} after a failed run", where, [dag_id])
    order = {s: i for i, s in enumerate(SEVERITIES)}
    result.findings.sort(key=lambda f: (order[f.severity], f.file or "~", f.line or 0, f.id))
    return result


def _auto_paused(backend, live: list[LiveDag], res: Resolution, st: Settings, add) -> None:
    if not st.enabled("auto-paused", None) and not any(
            st.enabled("auto-paused", f) for f in st.per_file):
        return
    paused = [d.dag_id for d in live if d.is_paused and not d.is_stale]
    if not paused:
        return
    from reconciler.live.autopause import AutoPause, RuleHistory, examine, failed_before, is_auto_pause, outcome
    from reconciler.plan.model import last_events
    last = last_events(backend.audit_events(paused))
    history = RuleHistory()
    cfg = res.resolver.cfg
    for dag_id in paused:
        ev = last.get(dag_id)
        if not is_auto_pause(ev):
            continue
        dec = res.decisions[dag_id]
        rule = dec.rule
        if dec.paused is False:
            ap = examine(backend, dag_id, ev, rule, res.resolver.ended_rule, history=history)
            then = {"held": "pausectl holds it paused (drift.auto_paused: keep) until a human "
                            "acts",
                    "released": "its rule changed in git since: the next apply unpauses it",
                    "enforced": "drift.auto_paused is enforce: the next apply unpauses it"}[
                outcome(ap, cfg.auto_paused)]
            git = f"git wants it running ({rule.label()}); {then}"
        else:
            ap = AutoPause(dag_id, ev, failed_before(backend.dag_runs(dag_id), ev.when))
            git = (f"git pauses it too ({rule.label()})" if dec.paused
                   else "no rule in git knows it")
        where = rule.where if rule is not None and rule.layer in ("dag", "group") else None
        add("auto-paused", f"{dag_id} was {ap.summary()}; {git}", where, [dag_id])


def _ago(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    return f"{minutes // 60}h{minutes % 60:02d}m" if minutes >= 60 else f"{minutes}m"


def _last_pauses(backend, dag_ids: list[str]) -> dict[str, AuditEvent]:
    """The newest pause event (is_paused true) per DAG, from the audit log."""
    if not dag_ids:
        return {}
    out: dict[str, AuditEvent] = {}
    for e in backend.audit_events(dag_ids):
        if e.dag_id and e.dag_id not in out and e.is_paused is True:
            out[e.dag_id] = e
    return out


def _failed_before(runs, when: datetime, window: timedelta) -> datetime | None:
    """When the last run that finished before `when` failed, within `window`: its end."""
    done = [r for r in runs if (r.end_date or r.start_date or r.run_after) is not None
            and (r.end_date or r.start_date or r.run_after) <= when]
    if not done:
        return None
    last = max(done, key=lambda r: r.end_date or r.start_date or r.run_after)
    t = last.end_date or last.start_date or last.run_after
    if last.state == "failed" and when - t <= window:
        return t
    return None


# ---- output --------------------------------------------------------------------------------

def lint_text(result: LintResult, stream=None) -> None:
    w = (stream or sys.stdout).write
    for f in result.findings:
        loc = f"{f.file}:{f.line}: " if f.file and f.line else (f"{f.file}: " if f.file else "")
        w(f"{loc}{f.severity} [{f.id}] {f.message}\n    fix: {f.fix}\n")
    for s in result.skipped:
        w(f"skipped {s}\n")
    c = result.counts()
    if result.findings:
        w(f"lint {result.environment}: {c['error']} error(s), {c['warning']} warning(s), "
          f"{c['info']} info\n")
    else:
        w(f"lint {result.environment}: clean\n")


def lint_github(result: LintResult, stream=None) -> None:
    """One annotation per finding; every value escaped for its place (sanitize.gh_command)."""
    from reconciler.core.sanitize import emit_command, gh_command
    stream = stream or sys.stdout
    for f in result.findings:
        level = {"error": "error", "warning": "warning", "info": "notice"}[f.severity]
        emit_command(stream, gh_command(level, f"{f.message}. Fix: {f.fix}", file=f.file,
                                        line=f.line, title=f"pausectl lint {f.id}"))


def config_file(cfg: Config) -> str:
    return cfg.rel(cfg.root / CONFIG_FILE)
