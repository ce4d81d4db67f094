"""Run the tested examples of a markdown document (docs/recipes.md, docs/runbook.md).

A `## ` section whose body contains the line `<!-- test -->` is one example. It runs on a fresh
temp copy of the example state repo (`./state`, made a git repository on branch `main` with
one commit), and its fenced blocks run in order:

* ```yaml whose first line is `# state/<path>`: merged into that file (created if absent) with
  ruamel round-trip (comments kept), recursively: mappings (`dags:`, `tenants:`...) gain the
  new keys, lists (`groups:`, `include:`, `allow:`) the new items, anything else is set; then
  committed.
* ```sh: each command line runs with bash in the repo root (the directory holding ./state),
  with pausectl from this checkout on PATH. A trailing `# exit N` expects exit code N (default
  0); other trailing comments are ignored. `\\` continues a line.
* ```text right after an sh block: every non-empty line (except `...`) must occur in that
  block's output (stdout + stderr, whitespace-normalised).

Anything else (```yaml without a `# state/` first line, other languages, untested sections)
is documentation only.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from io import StringIO
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MARK = "<!-- test -->"
_FENCE = re.compile(r"^```(\w+)?\s*(.*)$")
_EXIT = re.compile(r"\s+#\s*exit\s+(\d+)\s*$")


@dataclass
class Block:
    lang: str
    text: str
    line: int


@dataclass
class Example:
    title: str
    line: int
    blocks: list[Block] = field(default_factory=list)


def examples(path: Path) -> list[Example]:
    out: list[Example] = []
    current: Example | None = None
    tested = False
    lines = path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("## "):
            if current is not None and tested:
                out.append(current)
            current, tested = Example(line[3:].strip(), i + 1), False
        elif line.strip() == MARK:
            tested = True
        else:
            m = _FENCE.match(line)
            if m and current is not None:
                start = i + 1
                body = []
                i += 1
                while i < len(lines) and lines[i].strip() != "```":
                    body.append(lines[i])
                    i += 1
                current.blocks.append(Block((m.group(1) or "").lower(), "\n".join(body), start))
        i += 1
    if current is not None and tested:
        out.append(current)
    return out


def _merge(path: Path, snippet: str) -> None:
    from ruamel.yaml import YAML
    y = YAML()
    y.preserve_quotes = True
    y.width = 4096
    new = y.load(snippet)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(snippet + "\n", encoding="utf-8")
        return
    doc = y.load(path.read_text(encoding="utf-8"))
    _deep_merge(doc, new or {})
    buf = StringIO()
    y.dump(doc, buf)
    path.write_text(buf.getvalue(), encoding="utf-8")


def _deep_merge(doc, new) -> None:
    for key, value in new.items():
        old = doc.get(key)
        if isinstance(old, dict) and isinstance(value, dict):
            _deep_merge(old, value)
        elif isinstance(old, list) and isinstance(value, list):
            for item in value:
                if item not in old:
                    old.append(item)
        else:
            doc[key] = value


def _commands(text: str) -> list[tuple[str, int]]:
    out, pending = [], ""
    for raw in text.splitlines():
        line = raw.rstrip()
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = (pending + line).strip()
        pending = ""
        if not line or line.startswith("#"):
            continue
        code = 0
        m = _EXIT.search(line)
        if m:
            code = int(m.group(1))
            line = line[:m.start()]
        elif " # " in line:
            line = line.split(" # ", 1)[0]
        elif "  #" in line:
            line = line.split("  #", 1)[0]
        out.append((line.strip(), code))
    return out


def _norm(text: str) -> str:
    return " ".join(text.split())


def setup_repo(tmp: Path) -> dict[str, str]:
    shutil.copytree(REPO / "state", tmp / "state")
    genv = {**os.environ, "GIT_AUTHOR_NAME": "docs", "GIT_AUTHOR_EMAIL": "docs@example.com",
            "GIT_COMMITTER_NAME": "docs", "GIT_COMMITTER_EMAIL": "docs@example.com"}
    for cmd in (["git", "init", "-q", "-b", "main"], ["git", "add", "-A"],
                ["git", "commit", "-q", "-m", "example state"]):
        subprocess.run(cmd, cwd=tmp, check=True, capture_output=True, env=genv)
    env = dict(genv)
    for k in ("PAUSECTL_STATE", "PAUSECTL_DEBUG", "PAUSECTL_LOCAL_ENV"):
        env.pop(k, None)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(REPO)
    env["PAUSECTL_JOURNAL_DIR"] = str(tmp / ".journal")
    env["COLUMNS"] = "200"
    return env


def run_example(ex: Example, tmp: Path, doc: str, extra_env: dict | None = None) -> None:
    env = setup_repo(tmp)
    env.update(extra_env or {})
    last_output: str | None = None
    for b in ex.blocks:
        where = f"{doc}:{b.line}"
        if b.lang == "yaml":
            first = b.text.splitlines()[0] if b.text else ""
            m = re.match(r"^#\s*(state/\S+)", first)
            if not m:
                continue
            _merge(tmp / m.group(1), b.text)
            subprocess.run(["git", "add", "-A"], cwd=tmp, check=True, env=env)
            subprocess.run(["git", "commit", "-q", "-m", f"{where}"], cwd=tmp, check=True,
                           env=env, capture_output=True)
        elif b.lang in ("sh", "bash", "console"):
            outputs = []
            for cmd, code in _commands(b.text):
                p = subprocess.run(["bash", "-c", cmd], cwd=tmp, env=env, capture_output=True,
                                   text=True, timeout=300)
                outputs.append(p.stdout + p.stderr)
                rc = p.returncode if p.returncode >= 0 else 128 - p.returncode  # as a shell shows it
                assert rc == code, (
                    f"{where}: `{cmd}` exited {rc}, expected {code}\n"
                    f"{(p.stdout + p.stderr)[-3000:]}")
            last_output = "\n".join(outputs)
        elif b.lang == "text" and last_output is not None:
            have = _norm(last_output)
            for want in b.text.splitlines():
                want = want.strip()
                if not want or want == "...":
                    continue
                assert _norm(want) in have, f"{where}: {want!r} not in the output:\n{last_output[-4000:]}"
            last_output = None
