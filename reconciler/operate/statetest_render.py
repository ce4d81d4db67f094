"""`pausectl test` output: text (a terminal or a log), json (schemas: the result objects
documented in docs/testing.md), github (workflow annotations on the assertion's line).

Every string here comes from a test file, a state file or a snapshot: neutralised for its
sink (core/sanitize.py: `term` for the terminal, `gh_command` for workflow commands)."""

from __future__ import annotations

import sys
from typing import IO

from reconciler.core.sanitize import emit_command, gh_command, term
from reconciler.operate.statetest import CaseResult, Failure


def _line(f: Failure) -> str:
    return f"[{f.test}] {f.subject}: expected {f.expected}, got {f.got}"


def totals(results: list[CaseResult]) -> dict:
    failed = [r for r in results if not r.passed]
    return {"tests": len(results), "passed": len(results) - len(failed), "failed": len(failed),
            "checks": sum(r.checks for r in results),
            "failed_checks": sum(len(r.failures) for r in results)}


def summary_line(results: list[CaseResult]) -> str:
    t = totals(results)
    if not t["tests"]:
        return "no state tests found"
    if not t["failed"]:
        return f"{t['tests']} test(s), {t['checks']} check(s): all passed"
    return (f"{t['failed']} of {t['tests']} test(s) failed ({t['failed_checks']} of "
            f"{t['checks']} check(s))")


def render(results: list[CaseResult], fmt: str, stream: IO[str] | None = None,
           verbose: bool = False) -> None:
    out = stream or sys.stdout
    if fmt == "json":
        from reconciler.plan.render import dump_json
        dump_json({**totals(results), "results": [r.to_json() for r in results]}, out)
        return
    for r in results:
        if fmt == "github":
            for f in r.failures:
                msg = _line(f) + (f" (deciding rule: {f.rule})" if f.rule else "")
                emit_command(out, gh_command("error", msg, file=f.file, line=f.line,
                                             title="pausectl test"))
            continue
        c = r.case
        if r.passed:
            if verbose:
                out.write(f"{term(c.doc.path)}:{c.line()}: ok   {term(c.name)} "
                          f"({r.checks} check(s))\n")
            continue
        for f in r.failures:
            out.write(f"{term(f.file)}:{f.line}: FAIL {term(_line(f))}\n")
            if f.rule:
                out.write(f"    deciding rule: {term(f.rule)}\n")
    if fmt == "github":
        out.write(summary_line(results) + "\n")
