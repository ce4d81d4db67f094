"""Output safety: one neutraliser per sink. Every string from a file, a snapshot, a Variable or
the Airflow API is untrusted; it is made safe for the sink it is written to, here and only here.

| sink                       | neutraliser          | applied at                                   |
|----------------------------|----------------------|----------------------------------------------|
| terminal / CI log (stdout, | `GuardedStream`      | cli.main wraps sys.stdout and sys.stderr     |
|  stderr), every format     |  (+ `term` for data) |  (text renderers also call `term` on data)   |
| rich tables (tty only)     | `rich`               | report.py (rich bypasses the guard)          |
| GitHub workflow commands   | `gh_command`         | report.problems_out, lint.lint_github        |
| Markdown (PR comments,     | `md_text`, `md_code`,| report/drift/gitdiff markdown renderers      |
|  step summaries)           |  `md_cap`            |                                              |
| Slack mrkdwn               | `slack`              | notify.Message.slack_body                    |
| CODEOWNERS                 | `codeowners_owner`,  | tenants.codeowners                           |
|                            |  `codeowners_path`   |                                              |
| JSON                       | none: the raw truth  | json.dump(ensure_ascii=True) escapes controls |

The runner of GitHub Actions parses EVERY line a step prints: a line that starts (after
whitespace) with `::` is a workflow command (`::add-mask::`, `::stop-commands::`, `::error`),
and `##[` anywhere in a line is the legacy form. The guarded stream defuses both in every
format; only `emit_command` (the github formatter's own bypass) writes a real command line.
"""

from __future__ import annotations

import io
import re
import threading
from typing import IO, Any

from reconciler.core.secrets import scrub

GITHUB_COMMENT_LIMIT = 65_536

# ESC/C1-introduced sequences: CSI, OSC (BEL- or ST-terminated), DCS/SOS/PM/APC strings, and
# the short ESC forms. Removed whole, so no parameter text (an OSC 52 payload) survives either.
_SEQUENCE = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]?"
    r"|\x1b\][^\x07\x1b\x9c\n]*(?:\x07|\x1b\\|\x9c)?"
    r"|\x1b[PX^_][^\x1b\x9c\n]*(?:\x1b\\|\x9c)?"
    r"|\x1b[ -/]*[0-~]?"
    r"|\x9b[0-?]*[ -/]*[@-~]?"
    r"|[\x90\x98\x9d\x9e\x9f][^\x07\x1b\x9c\n]*(?:\x07|\x1b\\|\x9c)?")
# what a terminal, a log viewer or a diff viewer could treat as a control: C0 (but \n, \t),
# DEL, C1, bidi overrides/isolates ("trojan source"), and the Unicode line/paragraph separators
_BIDI = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029" + _BIDI + "]")
_DATA_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029" + _BIDI + "]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\x1b": "\\x1b"}
# a workflow command at the start of a line (after whitespace), and the legacy `##[` anywhere
_LINE_COMMAND = re.compile(r"^(\s*):(?=:)", re.M)
_COLONS = re.compile(r":(?=:)")
_LEGACY = "##["
_DEFUSED_LEGACY = "#\\#["
# the guard's form: a valid JSON escape too (`##[` can only be inside a JSON string there)
_GUARD_LEGACY = "#\\u0023["


def _visible(ch: str) -> str:
    if ch in _NAMED:
        return _NAMED[ch]
    o = ord(ch)
    return f"\\x{o:02x}" if o < 0x100 else f"\\u{o:04x}"


# ---- terminal --------------------------------------------------------------------------------

def term(value: Any) -> str:
    """A data value for one line of terminal/CI-log text: controls (newlines included) shown as
    visible escapes, no workflow command (`::`, `##[`) anywhere, secrets scrubbed."""
    if value is None:
        return ""
    s = value if isinstance(value, str) else str(value)
    s = _DATA_CONTROL.sub(lambda m: _visible(m.group()), s)
    s = _COLONS.sub(r":\\", s).replace(_LEGACY, _DEFUSED_LEGACY)
    return scrub(s)


def line_writer(stream: IO[str]):
    """`write` for a text renderer that writes one line per call, data in f-strings: the
    newlines that open or close the call are the program's; any other newline, control or
    workflow command inside is data, and is neutralised like `term` does."""
    def write(text: str) -> None:
        body = text.lstrip("\n")
        lead = text[: len(text) - len(body)]
        core = body.rstrip("\n")
        stream.write(lead + term(core) + body[len(core):])
    return write


def one_line(value: Any, limit: int = 300) -> str:
    """A server's or an exception's text as one short line: controls dropped, whitespace runs
    collapsed, cut to `limit` characters (error details never span lines)."""
    s = _SEQUENCE.sub("", str(value))
    s = _DATA_CONTROL.sub(" ", s)
    s = " ".join(s.split())
    return s if len(s) <= limit else s[: max(0, limit - 3)] + "..."


def terminal_text(text: str, at_line_start: bool = True) -> str:
    """What the guarded stream lets through: the program's own newlines and tabs stay, every
    other control is shown escaped, escape sequences are dropped, and no line can be a
    workflow command."""
    if _plain(text):    # the usual case (a 20 MB JSON plan): nothing to neutralise, no scan
        return text.replace(_LEGACY, _GUARD_LEGACY)
    text = _SEQUENCE.sub(lambda m: _visible(m.group()[0]) if m.group() else "", text)
    text = _CONTROL.sub(lambda m: _visible(m.group()), text)
    if at_line_start:
        text = _LINE_COMMAND.sub(r"\1:\\", text)
    else:  # the first line continues one already started: only later lines can start a command
        head, nl, rest = text.partition("\n")
        text = head + nl + _LINE_COMMAND.sub(r"\1:\\", rest) if nl else head
    return text.replace(_LEGACY, _GUARD_LEGACY)


# printable ASCII, tab and newline: bytes neither a sequence nor a control can start with
_PLAIN_BYTES = bytes([9, 10, *range(0x20, 0x7f)])


def _plain(text: str) -> bool:
    """ASCII without a control (but tab, newline) and without `::`: terminal_text would
    change nothing but `##[`. Three C-speed passes instead of three regex scans."""
    return (text.isascii() and not text.encode("ascii").translate(None, _PLAIN_BYTES)
            and "::" not in text)


def rich(value: Any) -> str:
    """A data value for a rich renderable: `term`, then rich markup escaped."""
    from rich.markup import escape
    return escape(term(value))


class GuardedStream(io.TextIOBase):
    """sys.stdout/sys.stderr as the CLI writes them: line-buffered, every line through
    `terminal_text` and the secret scrubber. `emit_command` is the only way to write a real
    workflow command line. rich writes to `raw` (its data is escaped with `rich`)."""

    def __init__(self, raw: IO[str]):
        super().__init__()
        self.raw = raw
        self._buf = ""
        # nothing but whitespace written on the current line yet (a `::` here would start one)
        self._blank = True
        self._lock = threading.RLock()

    # io attributes click, rich and print() look at
    @property
    def encoding(self):  # type: ignore[override]
        return getattr(self.raw, "encoding", "utf-8")

    @property
    def errors(self):  # type: ignore[override]
        return getattr(self.raw, "errors", "strict")

    def isatty(self) -> bool:
        return bool(getattr(self.raw, "isatty", lambda: False)())

    def fileno(self) -> int:
        return self.raw.fileno()

    def writable(self) -> bool:
        return True

    @property
    def rich_proxied_file(self):
        # rich.Console writes here (its Progress bars and tables need their escape codes)
        return self.raw

    def write(self, s: str) -> int:  # type: ignore[override]
        if not isinstance(s, str):
            raise TypeError(f"write() argument must be str, not {type(s).__name__}")
        with self._lock:
            self._buf += s
            if "\n" in self._buf:
                done, _, self._buf = self._buf.rpartition("\n")
                self._emit(done + "\n")
            elif len(self._buf) > 65_536:        # no newline in sight: do not hoard memory
                self._emit(self._buf)
                self._buf = ""
        return len(s)

    def _emit(self, text: str) -> None:
        self.raw.write(scrub(terminal_text(text, at_line_start=self._blank)))
        if "\n" in text:
            self._blank = not text.rpartition("\n")[2].strip()
        else:
            self._blank = self._blank and not text.strip()

    def flush(self) -> None:
        with self._lock:
            if self._buf:
                pending, self._buf = self._buf, ""
                self._emit(pending)
            try:
                self.raw.flush()
            except (OSError, ValueError):
                pass

    def emit_command(self, line: str) -> None:
        with self._lock:
            if self._buf:
                self._emit(self._buf + "\n")
                self._buf = ""
            self.raw.write(scrub(line))
            self._blank = line.endswith("\n")


def install_guards():
    """Wrap sys.stdout and sys.stderr (idempotent); returns a function that restores them."""
    import sys
    saved = (sys.stdout, sys.stderr)
    if sys.stdout is not None and not isinstance(sys.stdout, GuardedStream):
        sys.stdout = GuardedStream(sys.stdout)
    if sys.stderr is not None and not isinstance(sys.stderr, GuardedStream):
        sys.stderr = GuardedStream(sys.stderr)

    def restore() -> None:
        for s in (sys.stdout, sys.stderr):
            if isinstance(s, GuardedStream):
                try:
                    s.flush()
                except (OSError, ValueError):     # a closed pipe: nothing left to say
                    pass
        sys.stdout, sys.stderr = saved
    return restore


def raw(stream: IO[str]) -> IO[str]:
    """The stream below a guard (for rich, whose data is escaped with `rich`)."""
    return stream.raw if isinstance(stream, GuardedStream) else stream


# ---- GitHub workflow commands ----------------------------------------------------------------

_GH_LEVELS = ("error", "warning", "notice")
_GH_PROPS = ("file", "line", "col", "endLine", "endColumn", "title")


def gh_message(value: Any) -> str:
    """Workflow-command data (the text after `::`): `term`, then `%`, CR and LF escaped."""
    return term(value).replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def gh_property(value: Any) -> str:
    """A workflow-command property value: like a message, plus `:` and `,` escaped."""
    return gh_message(value).replace(":", "%3A").replace(",", "%2C")


def gh_command(level: str, message: Any, **props: Any) -> str:
    """One annotation line, `::error file=F,line=L,title=T::message` + newline."""
    if level not in _GH_LEVELS:
        raise ValueError(f"not an annotation level: {level!r}")
    parts = [f"{k}={gh_property(props[k])}" for k in _GH_PROPS
             if props.get(k) not in (None, "")]
    return f"::{level} {','.join(parts)}::{gh_message(message)}\n"


def emit_command(stream: IO[str], line: str) -> None:
    """Write a line made by `gh_command`, past the guard's `::` defusing."""
    if isinstance(stream, GuardedStream):
        stream.emit_command(line)
    else:
        stream.write(scrub(line))


# ---- Markdown (GitHub PR comments, job summaries) --------------------------------------------

_MD_PUNCT = re.compile(r"([\\`*_\[\]|~#])")


def md_text(value: Any) -> str:
    """Data for Markdown text or a table cell: no HTML, no markup, no links, images or
    autolinks, no @mentions, one line."""
    s = term(value)
    s = _MD_PUNCT.sub(r"\\\1", s)
    s = s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    s = s.replace("@", "@&#8203;")                       # what Dependabot does to mentions
    s = re.sub(r":(?=//)", ":&#8203;", s)               # no bare-URL autolinks
    return re.sub(r"(?i)\bwww\.", "www&#46;", s)


def md_code(value: Any, table: bool = False) -> str:
    """Data as a code span, safe against backticks (the fence is longer than any run inside);
    in a table cell `|` is escaped (GFM splits cells before it parses code spans)."""
    s = term(value)
    if not s:
        return ""
    if table:
        s = s.replace("|", "\\|")
    longest = max((len(m) for m in re.findall(r"`+", s)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if (s[0] in "` " or s[-1] in "` ") else ""
    return f"{fence}{pad}{s}{pad}{fence}"


def md_cap(text: str, limit: int = GITHUB_COMMENT_LIMIT - 1_000,
           note: str = "the job's artifact has everything") -> str:
    """A Markdown document cut to at most `limit` characters, at a line boundary, with open
    <details> closed and a note saying what was cut (GitHub rejects comments over 65,536)."""
    if len(text) <= limit:
        return text
    reserve = 300
    cut = text[: max(0, limit - reserve)].rsplit("\n", 1)[0]
    opened = len(re.findall(r"(?m)^<details>", cut)) - len(re.findall(r"(?m)^</details>", cut))
    tail = ["", f"... truncated: {len(text) - len(cut):,} more characters not shown "
            f"(GitHub comments hold at most {GITHUB_COMMENT_LIMIT:,}); {note}.", ""]
    tail += ["</details>", ""] * max(0, opened)
    return cut + "\n" + "\n".join(tail)


# ---- Slack mrkdwn ----------------------------------------------------------------------------

def slack(value: Any) -> str:
    """Data for Slack mrkdwn: `&`, `<`, `>` escaped (no <!channel>, <@U..> or <url|label>)."""
    s = one_line(value, 2_000)
    return scrub(s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;"))


# ---- CODEOWNERS ------------------------------------------------------------------------------

_OWNER = re.compile(r"@[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})(?:/[A-Za-z0-9][A-Za-z0-9._-]{0,99})?"
                    r"|[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
_PATH_BAD = re.compile(r"[\s\\\x00-\x1f\x7f-\x9f]|^[#!]|\[|\]")


def codeowners_owner(owner: str) -> str:
    """An owner as CODEOWNERS accepts it (@user, @org/team or an e-mail), or ValueError."""
    if not isinstance(owner, str) or not _OWNER.fullmatch(owner):
        raise ValueError(f"{term(owner)!r} is not a CODEOWNERS owner "
                         "(@user, @org/team or user@example.com; no spaces or newlines)")
    return owner


def codeowners_path(path: str) -> str:
    """A path pattern for a CODEOWNERS line, or ValueError (whitespace, controls, a leading
    `#`/`!` or brackets would change what the line means)."""
    if not isinstance(path, str) or not path or _PATH_BAD.search(path):
        raise ValueError(f"{term(path)!r} cannot be a CODEOWNERS path (no whitespace, "
                         "backslashes, control characters, brackets or leading # or !)")
    return path

