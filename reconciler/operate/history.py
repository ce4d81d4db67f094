"""`pausectl history ENV [DAG_ID]`: one timeline of why a DAG is (or was) paused.

Two sources, joined by time:
- git: every commit that touched the environment's files (its state file, its includes,
  pausectl.yaml), with author, date, message, and the rules it added, changed or removed
  (paused, reason, owner, ticket); for DAG_ID, what the desired state became and which rule
  decided it;
- Airflow: the audit log (`backend.audit_events`): who flipped the DAG live, when and how
  (UI/API user, bulk pattern, CLI user, pausectl's own service account).

For a DAG the result ends with an answer: live state and who last changed it, desired state and
the commit, author and reason behind the rule that decides it.
"""

from __future__ import annotations

import contextlib
import sys
from dataclasses import dataclass, field, replace
from datetime import datetime

from reconciler.core.errors import PausectlError
from reconciler.core.sanitize import line_writer
from reconciler.core.timeutil import iso, utcnow
from reconciler.engine import open_backend
from reconciler.live.base import LiveDag
from reconciler.observe import Context, Observation, observe, resolve
from reconciler.policy.cascade import cascade_rules
from reconciler.state.gitref import (CommitInfo, RefTree, commit_info, commits_touching,
                                     materialise, resolve_commit, state_location)
from reconciler.state.loader import load_config, load_env
from reconciler.state.model import CONFIG_FILE, EnvState, Rule


@dataclass
class Entry:
    when: datetime
    source: str                 # git | airflow
    who: str
    what: str
    detail: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"when": iso(self.when), "source": self.source, "who": self.who,
                "what": self.what, **self.detail}


def _rule_key(r: Rule) -> tuple:
    file = r.where.rpartition(":")[0]
    return (r.layer, r.name, file)


def _rule_content(r: Rule) -> tuple:
    return (r.paused, r.reason, r.owner, r.ticket, r.until, r.from_, r.priority,
            tuple((w.cron, w.duration, w.timezone) for w in r.windows),
            r.selector.describe() if r.selector else None)


def _rules(state: EnvState | None) -> dict[tuple, Rule]:
    if state is None:
        return {}
    return {_rule_key(r): r for r in state.all_rules()}


def _rule_json(r: Rule) -> dict:
    d = {"rule": r.label(), "where": r.where, "paused": r.paused, "reason": r.reason,
         "owner": r.owner}
    if r.ticket:
        d["ticket"] = r.ticket
    if r.until:
        d["until"] = iso(r.until)
    if r.selector is not None:
        d["match"] = r.selector.describe()
    return d


def rule_changes(old: EnvState | None, new: EnvState | None) -> list[dict]:
    a, b = _rules(old), _rules(new)
    out = []
    for key in sorted(set(a) | set(b), key=lambda k: (k[0], k[1], k[2])):
        ra, rb = a.get(key), b.get(key)
        if ra is None:
            out.append({"change": "added", **_rule_json(rb), "_key": key})
        elif rb is None:
            out.append({"change": "removed", **_rule_json(ra), "_key": key})
        elif _rule_content(ra) != _rule_content(rb):
            item = {"change": "changed", **_rule_json(rb), "_key": key}
            was = {}
            for k in ("paused", "reason", "owner", "ticket"):
                va, vb = getattr(ra, k), getattr(rb, k)
                if va != vb:
                    was[k] = va
            item["was"] = was
            out.append(item)
    return out


def _relevant(change: dict, rules: dict, dag: LiveDag | None, dag_id: str) -> bool:
    if change["rule"] == f"dag entry {dag_id}":
        return True
    if not change["rule"].startswith("group "):
        return False
    name = change["rule"][len("group "):]
    for (layer, n, _), r in rules.items():
        if layer == "group" and n == name and r.selector is not None:
            if dag is not None:
                return r.selector.matches(dag_id, dag.tags, dag.owners)
            # live tags unknown: judge by the dag_id part of the selector only (its own tags
            # and owners always pass)
            return r.selector.matches(dag_id, r.selector.tags, r.selector.owners)
    return False


def _decision(cfg, state: EnvState | None, dag: LiveDag, at: datetime,
              obs: Observation) -> dict | None:
    """What git at one commit wants for `dag`, resolved against the live observation (its
    DAGs and today's cascade edges; an emergency is live, not git history: left out)."""
    if state is None:
        return None
    dags = [dag]
    if cascade_rules(state) and obs.live:    # a cascade needs its origin DAG decided too
        dags = [d for d in obs.live if d.dag_id != dag.dag_id] + [dag]
    dec = resolve(Context(cfg, state, obs.env), obs, at, dags=dags).decisions[dag.dag_id]
    if dec.conflict:
        return {"desired": "conflict", "rules": [r.where for r in dec.conflict]}
    if dec.rule is None:
        return {"desired": "unmanaged"}
    r = dec.rule
    return {"desired": "paused" if dec.paused else "running", "rule": r.label(),
            "where": r.where, "reason": r.reason, "owner": r.owner, "ticket": r.ticket}


class _States:
    """The env's state at commits, loaded once per commit (temp trees cleaned up at the end)."""

    def __init__(self, state_dir, env: str, at: datetime):
        self.state_dir, self.env, self.at = state_dir, env, at
        self.cache: dict[str, tuple] = {}
        self.trees: list[RefTree] = []

    def get(self, commit) -> tuple:
        """(cfg, state, error) at a commit."""
        if commit is None:
            return None, None, None
        if commit.hexsha in self.cache:
            return self.cache[commit.hexsha]
        try:
            tree = materialise(self.state_dir, commit.hexsha[:12], commit)
        except PausectlError:
            self.cache[commit.hexsha] = (None, None, None)
            return self.cache[commit.hexsha]
        self.trees.append(tree)
        try:
            cfg = load_config(tree.root)
            st = load_env(cfg, self.env, now=self.at) if self.env in cfg.environments else None
            res = (cfg, st, None)
        except PausectlError as e:
            res = (None, None, str(e))
        self.cache[commit.hexsha] = res
        return res

    def close(self) -> None:
        for t in self.trees:
            t.cleanup()


def build_history(state_dir, env: str, dag_id: str | None = None, ref: str = "HEAD",
                  max_commits: int = 100, offline: bool = False,
                  at: datetime | None = None) -> dict:
    at = at or utcnow()
    repo, _, rel = state_location(state_dir)
    head = resolve_commit(repo, ref)
    states = _States(state_dir, env, at)
    try:
        hcfg, hstate, herr = states.get(head)
        if herr:
            raise PausectlError(f"state at {ref} does not load: {herr}")
        if hcfg is None:
            raise PausectlError(f"the state repo does not exist at {ref}")
        hcfg.env(env)
        tree = states.trees[-1]
        files = {tree.state_rel(f) for f in hstate.files} | {CONFIG_FILE}
        spec = hcfg.environments[env].backend
        prefix = f"{rel}/" if rel else ""
        paths = sorted(prefix + f for f in files)
        commits = commits_touching(repo, paths, head.hexsha, max_commits)

        # live: the DAG itself (tags for group matching) and the audit log
        live_dag, events, notes, live_now = None, [], [], None
        if offline or spec.get("type") == "snapshot":
            if not offline:
                notes.append("the backend is a snapshot: it has no audit log")
        obs = Observation(env, at, (), None, ())      # offline: no DAGs, no edges
        if not offline:
            backend = None
            try:
                backend = open_backend(hcfg, env)
                obs = replace(observe(Context(hcfg, hstate, env), backend, at, events_for=None),
                              emergency=None)
                live = obs.live
                if dag_id:
                    live_dag = next((d for d in live if d.dag_id == dag_id), None)
                    if live_dag is None:
                        notes.append(f"{dag_id} is not in {env}'s Airflow")
                    live_now = live_dag
                events = backend.audit_events([dag_id] if dag_id else None)
            except (PausectlError, OSError) as e:
                notes.append(f"live Airflow not read: {e}")
            finally:
                if backend is not None:
                    with contextlib.suppress(Exception):
                        backend.close()
        probe = live_dag or (LiveDag(dag_id, False) if dag_id else None)

        entries: list[Entry] = []
        last_rule_commit: dict[tuple, CommitInfo] = {}
        for c in commits:
            info = commit_info(c)
            parent = c.parents[0] if c.parents else None
            cfg, st, err = states.get(c)
            pcfg, pst, _ = states.get(parent)
            detail: dict = {"commit": info.sha, "email": info.email, "message": info.summary}
            if err:
                detail["error"] = err
                entries.append(Entry(info.when, "git", info.author,
                                     f"state of {env} invalid at this commit", detail))
                continue
            changes = rule_changes(pst, st)
            for ch in changes:
                last_rule_commit.setdefault(ch.pop("_key"), info)   # newest first
            if dag_id:
                rules_now = {**_rules(pst), **_rules(st)}
                changes = [ch for ch in changes if _relevant(ch, rules_now, live_dag, dag_id)]
                before = _decision(pcfg, pst, probe, at, obs) if pst is not None else None
                after = _decision(cfg, st, probe, at, obs) if st is not None else None
                if not changes and before == after:
                    continue
                detail["desired_before"] = before
                detail["desired_after"] = after
            elif not changes and pst is not None:
                continue
            detail["rules"] = changes
            entries.append(Entry(info.when, "git", info.author, _git_what(changes, detail), detail))
        for e in events:
            if dag_id is None or e.dag_id in (None, dag_id):
                entries.append(Entry(e.when, "airflow", e.user or "unknown", e.describe(),
                                     {"event": e.event, "via": e.via, "dag_id": e.dag_id,
                                      "is_paused": e.is_paused, "detail": e.detail}))
        entries.sort(key=lambda x: x.when)
        result = {"environment": env, "dag_id": dag_id, "ref": f"{ref}@{head.hexsha[:12]}",
                  "files": paths, "commits_scanned": len(commits), "notes": notes,
                  "timeline": [x.to_json() for x in entries]}
        if dag_id:
            result["answer"] = _answer(hcfg, hstate, probe, at, obs, live_now, events,
                                       last_rule_commit, dag_id)
        return result
    finally:
        states.close()


def _git_what(changes: list[dict], detail: dict) -> str:
    after = detail.get("desired_after")
    before = detail.get("desired_before")
    if after and before and after.get("desired") != before.get("desired"):
        return (f"desired {before.get('desired')} -> {after.get('desired')}"
                + (f" by {after['rule']}" if after.get("rule") else ""))
    if not changes:
        return "no rule change"
    parts = []
    for ch in changes[:3]:
        state = "paused" if ch["paused"] else "running"
        parts.append(f"{ch['change']} {ch['rule']} ({state})")
    if len(changes) > 3:
        parts.append(f"+{len(changes) - 3} more")
    return "; ".join(parts)


def _answer(cfg, state, probe, at, obs, live_now, events, last_rule_commit, dag_id) -> dict:
    dec = _decision(cfg, state, probe, at, obs) or {}
    ans: dict = {"desired": dec}
    key = None
    if dec.get("rule", "").startswith("dag entry "):
        key = ("dag", dec["rule"][len("dag entry "):])
    elif dec.get("rule", "").startswith("group "):
        key = ("group", dec["rule"][len("group "):])
    if key:
        for k, info in last_rule_commit.items():
            if k[:2] == key and (dec.get("where") or "").startswith(k[2]):
                ans["set_by"] = {**info.to_json()}
                break
    if live_now is not None:
        ans["live_paused"] = live_now.is_paused
    mine = [e for e in events if e.dag_id in (None, dag_id)]
    if mine:
        ans["last_live_change"] = mine[0].describe()
    text = []
    if live_now is not None:
        text.append(f"{dag_id} is {'paused' if live_now.is_paused else 'running'} live"
                    + (f" ({mine[0].describe()})" if mine else ""))
    if dec.get("desired") in ("paused", "running"):
        s = (f"git wants it {dec['desired']}: {dec['rule']} ({dec['where']})"
             + (f", reason {dec['reason']!r}" if dec.get("reason") else "")
             + (f", owner {dec['owner']}" if dec.get("owner") else "")
             + (f", ticket {dec['ticket']}" if dec.get("ticket") else ""))
        sb = ans.get("set_by")
        if sb:
            s += f"; last changed in {sb['commit'][:10]} by {sb['author']} on {sb['date'][:10]}: {sb['summary']!r}"
        text.append(s)
    elif dec.get("desired"):
        text.append(f"git: {dec['desired']}")
    if live_now is not None and dec.get("desired") in ("paused", "running") \
            and (dec["desired"] == "paused") != live_now.is_paused:
        text.append("live differs from git (see `pausectl drift`)")
    ans["text"] = "; ".join(text)
    return ans


def history_text(h: dict, stream=None) -> None:
    w = line_writer(stream or sys.stdout)      # data cannot add lines or commands
    title = f"history of {h['dag_id']} in {h['environment']}" if h["dag_id"] \
        else f"history of {h['environment']}"
    w(f"{title} ({h['ref']}; {h['commits_scanned']} commit(s) touching "
      f"{', '.join(h['files'])})\n")
    for n in h["notes"]:
        w(f"note: {n}\n")
    for e in h["timeline"]:
        when = e["when"][:19].replace("T", " ")
        if e["source"] == "git":
            w(f"{when}  git      {e['commit'][:10]}  {e['who']}  {e['what']}  "
              f"\"{e['message']}\"\n")
            for ch in e.get("rules", []):
                state = "paused" if ch["paused"] else "running"
                extra = f" was {ch['was']}" if ch.get("was") else ""
                w(f"{'':22}{ch['change']:8} {ch['rule']} ({ch['where']}): {state}"
                  f"{' reason=' + repr(ch['reason']) if ch.get('reason') else ''}"
                  f"{' owner=' + ch['owner'] if ch.get('owner') else ''}{extra}\n")
            if e.get("error"):
                w(f"{'':22}{e['error']}\n")
        else:
            w(f"{when}  airflow  {e['event']:<10}  {e['who']}  {e['what']}\n")
    if not h["timeline"]:
        w("no history found\n")
    if h.get("answer"):
        w(f"\nanswer: {h['answer']['text'] or 'unknown'}\n")
