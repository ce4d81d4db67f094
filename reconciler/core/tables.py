"""Tables and lines for a terminal that never break an identifier.

Identifiers (dag ids, `file:line`, environment names, refs, times) are never wrapped or cut:
a user must be able to copy them. Free text (reasons, messages) folds, or is ellipsised with
the full text one `--wide` / `--format json` away. Empty columns are dropped. Below the width
a table fits in, every row becomes one terraform-like line with its free text on an indented
second line. Only terminals get this; piped output is each renderer's plain text, unchanged.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from typing import IO, Callable, Sequence

# set by the CLI's global flags (cli/main.py): --wide shows free text whole
WIDE = False
# a table whose free-text columns would get narrower than this is shown as lines instead
MIN_TEXT = 16
TEXT_MAX = 48
_ESC = "\x1b"
_SPACES = re.compile(r"( +)")


@dataclass(frozen=True)
class Col:
    name: str
    kind: str = "id"        # id: never wrapped or cut | text: free text, folds or ellipsised
    style: str = ""


def width(stream: IO | None = None) -> int:
    """The terminal's width (COLUMNS wins, like rich and click), 80 when unknown."""
    try:
        return max(20, int(os.environ["COLUMNS"]))
    except (KeyError, ValueError):
        pass
    try:
        return max(20, os.get_terminal_size(stream.fileno()).columns)  # type: ignore[union-attr]
    except (AttributeError, OSError, ValueError):
        return max(20, shutil.get_terminal_size((80, 24)).columns)


def fold(line: str, cols: int, indent: int | None = None) -> list[str]:
    """`line` cut into lines of at most `cols` characters at spaces only, so no token (an
    identifier) is ever split; continuation lines are indented. A token longer than a whole
    line stands alone on its own line."""
    if len(line) <= cols or _ESC in line:
        return [line]
    lead = len(line) - len(line.lstrip(" "))
    pad = " " * (lead + 4 if indent is None else indent)
    parts = _SPACES.split(line[lead:])
    out, cur = [], line[:lead] + parts[0]
    for sep, word in zip(parts[1::2], parts[2::2]):
        if len(cur) + len(sep) + len(word) <= cols:
            cur += sep + word
        else:
            out.append(cur)
            cur = pad + word
    out.append(cur)
    return out


class FoldingStream:
    """A terminal stdout below the output guard: every line wider than the terminal is
    folded at spaces (never inside an identifier). Lines with escape codes are rich's own,
    already laid out to the width, and pass untouched."""

    def __init__(self, raw: IO[str]):
        self.raw, self._buf = raw, ""
        self._cols = width(raw)

    def __getattr__(self, name):
        return getattr(self.raw, name)

    def isatty(self) -> bool:
        return True

    def write(self, s: str) -> int:
        self._buf += s
        if "\n" in self._buf:
            done, _, self._buf = self._buf.rpartition("\n")
            self.raw.write("".join(f"{x}\n" for ln in done.split("\n")
                                   for x in fold(ln, self._cols)))
        return len(s)

    def flush(self) -> None:
        if self._buf:
            pending, self._buf = self._buf, ""
            self.raw.write("\n".join(fold(pending, self._cols)))
        self.raw.flush()


def console(stream: IO):
    """A rich console writing to `stream` (the raw stream below the guard: rich's escape
    codes must pass); NO_COLOR (or --no-color, which sets it) means no escape code at all."""
    from rich.console import Console
    plain = bool(os.environ.get("NO_COLOR"))
    return Console(file=stream, highlight=False, soft_wrap=False, width=width(stream),
                   color_system=None if plain else "auto", no_color=plain)


def terminal(stream: IO | None):
    """A console for `stream` when it is a terminal; None when piped or captured (the caller
    writes its plain text, which stays byte for byte what it was)."""
    import sys
    stream = stream or sys.stdout
    if not (hasattr(stream, "isatty") and stream.isatty()):
        return None
    from reconciler.core.sanitize import raw
    return console(raw(stream))


def say(con, text: str, style: str = "") -> None:
    """One line of program text with data already neutralised (sanitize.term) on a console:
    no markup parsed; folded at spaces only (never inside an identifier), indented after."""
    from rich.text import Text
    for x in fold(text, con.width):
        con.print(Text(x, style=style), soft_wrap=True)


def show(con, cols: Sequence[Col], rows: list[Sequence[str]],
         lines: Callable[[Sequence[str]], tuple[str, str]], title: str | None = None,
         row_style: Callable[[Sequence[str]], str] | None = None) -> None:
    """Print `rows` (cells already neutralised with sanitize.term) as a table that fits the
    console's width, or, when it cannot fit, as `lines(row)` -> (line, free text) pairs
    (`row_style(row)` styles such a line; a table styles by column)."""
    from rich import box
    from rich.table import Table
    from rich.text import Text
    orig = rows
    keep = [i for i, c in enumerate(cols) if any(r[i] for r in rows)]
    cols = [cols[i] for i in keep]
    rows = [[r[i] for i in keep] for r in rows]
    if _fits(cols, rows, con.width):
        t = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, show_edge=False,
                  pad_edge=False, expand=False)
        longest = [max([len(c.name)] + [len(r[i]) for r in rows]) for i, c in enumerate(cols)]
        texts = sum(c.kind != "id" for c in cols)
        # what the identifiers leave (SIMPLE_HEAD: 3 characters between columns), shared
        spare = con.width - 3 * (len(cols) - 1) - sum(n for c, n in zip(cols, longest)
                                                      if c.kind == "id")
        share = max(MIN_TEXT, spare // max(1, texts))
        # what a short text column does not need goes to the others
        short = [n for c, n in zip(cols, longest) if c.kind != "id" and n < share]
        if texts > len(short):
            share = max(share, (spare - sum(short)) // (texts - len(short)))
        for c, n in zip(cols, longest):
            if c.kind == "id":
                t.add_column(c.name, no_wrap=True, min_width=n, style=c.style or None)
            elif WIDE:
                t.add_column(c.name, overflow="fold", style=c.style or None)
            else:
                t.add_column(c.name, no_wrap=True, overflow="ellipsis", style=c.style or None,
                             width=min(n, share, TEXT_MAX))
        cut = not WIDE
        for r in rows:
            t.add_row(*(Text(x, overflow="ellipsis", no_wrap=True) if cut and c.kind == "text"
                        else Text(x) for c, x in zip(cols, r)))
        con.print(t)
        return
    if title:
        con.print(Text(title, style="bold"))
    for r in orig:
        line, text = lines(r)
        for x in fold(line, con.width):
            con.print(Text(x, style=row_style(r) if row_style else ""), soft_wrap=True)
        for x in fold("    " + text, con.width, indent=4) if text else ():
            con.print(Text(x, style="dim"), soft_wrap=True)


def _fits(cols: Sequence[Col], rows: list[Sequence[str]], cols_width: int) -> bool:
    """Whether every identifier column at full width plus MIN_TEXT per free-text column
    (and the 3 characters between two columns) fits on one line."""
    need = 0
    for i, c in enumerate(cols):
        longest = max([len(c.name)] + [len(r[i]) for r in rows])
        need += longest if c.kind == "id" else min(longest, MIN_TEXT)
    return need + 3 * (len(cols) - 1) <= cols_width
