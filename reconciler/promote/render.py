"""`pausectl promote` as text: candidates, gates, conflicts, and what was (or would be) done."""

from __future__ import annotations

import sys

from reconciler.promote.edit import flow_json
from reconciler.promote.select import Promotion


def promotion_text(res: Promotion, stream=None) -> None:
    w = (stream or sys.stdout).write
    w(f"promote {res.source} -> {res.target} ({res.target_file})"
      f"{' [dry run]' if res.dry_run else ''}\n")
    for c in res.candidates:
        state = "paused" if c.rule.paused else "running"
        w(f"  {c.status:8} {c.label}: {state}"
          f"{'  reason=' + repr(c.rule.reason) if c.rule.reason else ''}"
          f"{'  owner=' + c.rule.owner if c.rule.owner else ''}  from {c.rule.where}"
          f"{'  -> ' + c.target_where if c.target_where else ''}\n")
        if c.gate:
            w(f"           soak gate: {'passed' if c.gate['passed'] else 'FAILED'} "
              f"({c.gate['message']})\n")
        if c.conflict:
            cf = c.conflict
            w(f"           conflict since {cf['since']['why']} ({cf['since']['commit'][:10]}):\n"
              f"             {res.source} {cf['source']['where']}: {flow_json(cf['source']['entry'])}\n"
              f"             {res.target} {cf['target']['where']}: {flow_json(cf['target']['entry'])}\n"
              f"             {res.target} then: {flow_json(cf['target']['was'])}\n")
            for x in cf["target_commits"]:
                w(f"             changed in {x['commit'][:10]} by {x['author']} on "
                  f"{x['date'][:10]}: {x['summary']}\n")
    if res.target_plan:
        s = res.target_plan["summary"]
        w(f"target plan ({res.target}, with the promoted rules): {s['pause']} to pause, "
          f"{s['unpause']} to unpause, {s['skipped']} skipped, {s['conflicts']} conflicts\n")
    for warning in res.warnings:
        w(f"warning: {warning}\n")
    for f in res.failures:
        w(f"BLOCKED: {f}\n")
    if res.commit:
        w(f"created branch {res.branch} at {res.commit[:12]} changing {res.target_file}; "
          f"push it and open a pull request:\n  git push origin {res.branch}\n")
    elif res.dry_run and res.to_promote and not res.failures:
        w(f"dry run: would commit on a new branch:\n\n{res.message}")
