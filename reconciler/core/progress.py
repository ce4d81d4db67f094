"""Progress on long work: listing thousands of DAGs, batches, gate waits, emergency pauses.

Stages report through the small interface below and never learn where it goes: the default
reporter does nothing (pipes, tests, the Airflow operators), and the CLI installs `RichReporter`
when stderr is a terminal. Data still flows one way: a reporter only receives.

    with progress.task("listing DAGs", total=None) as t:
        t.advance(100)
    progress.wait(sleep, 300, "gate: 3 DAG(s) unpaused")   # a countdown on a terminal
"""

from __future__ import annotations

import contextlib
import threading
from typing import IO, Callable, Iterator


class Task:
    """One line of progress; the no-op base is what stages get when nobody watches."""

    def advance(self, n: int = 1) -> None:
        pass

    def update(self, *, total: float | None = None, completed: float | None = None,
               description: str | None = None) -> None:
        pass


class Reporter:
    """Does nothing: what every stage reports to unless the CLI sits on a terminal."""

    active = False

    @contextlib.contextmanager
    def task(self, description: str, total: float | None = None) -> Iterator[Task]:
        yield Task()


_current: Reporter = Reporter()
_lock = threading.Lock()


def current() -> Reporter:
    return _current


def install(reporter: Reporter) -> Callable[[], None]:
    """Make `reporter` the one stages talk to; returns a function putting the old one back."""
    global _current
    with _lock:
        saved, _current = _current, reporter

    def restore() -> None:
        global _current
        with _lock:
            _current = saved
    return restore


def task(description: str, total: float | None = None):
    return _current.task(description, total)


def wait(sleep: Callable[[float], None], seconds: float, what: str, most: float = 30.0) -> None:
    """Sleep `seconds` through `sleep` in slices of at most `most` (a lock heartbeat wrapped
    into `sleep` keeps running); on a terminal, a countdown of what is being waited for."""
    step = 1.0 if _current.active else most
    with _current.task(what, total=float(seconds)) as t:
        left = seconds
        while left > 0:
            sleep(min(left, step))
            t.advance(min(left, step))
            left -= step


class _LineProxy:
    """What a guarded stream writes to while a live display runs: whole lines printed above
    the display (rich keeps the bar at the bottom), so a log line never lands inside it."""

    def __init__(self, live, raw: IO[str]):
        self._live, self._raw, self._buf = live, raw, ""

    def __getattr__(self, name):
        return getattr(self._raw, name)

    def write(self, s: str) -> int:
        from rich.text import Text
        self._buf += s
        if "\n" in self._buf:
            done, _, self._buf = self._buf.rpartition("\n")
            # the text is already neutralised by the guard above; Text() parses no markup
            self._live.console.print(Text(done), highlight=False, soft_wrap=True)
        return len(s)

    def flush(self) -> None:
        if self._buf:
            self.write("\n")


class RichReporter(Reporter):
    """A rich progress display on the terminal stderr: started with the first task, cleared
    (transient) when the last one ends, so prompts and the final output stand on their own."""

    active = True

    def __init__(self, guards: list):
        self._guards = guards          # the terminal stderr's GuardedStream (.raw swapped)
        self._progress = None
        self._open = 0
        self._saved: list = []
        self._mutex = threading.RLock()

    def _start(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
        raw = self._guards[-1].raw
        con = Console(file=raw, highlight=False)
        self._progress = Progress(TextColumn("{task.description}", markup=False),
                                  BarColumn(bar_width=24), _Amount(), TimeElapsedColumn(),
                                  console=con, transient=True, redirect_stdout=False,
                                  redirect_stderr=False, refresh_per_second=8)
        self._progress.start()
        self._saved = [g.raw for g in self._guards]
        for g in self._guards:
            g.flush()
            g.raw = _LineProxy(self._progress, g.raw)

    def _stop(self) -> None:
        for g, raw in zip(self._guards, self._saved):
            g.flush()
            g.raw = raw
        self._progress.stop()
        self._progress = None

    @contextlib.contextmanager
    def task(self, description: str, total: float | None = None) -> Iterator[Task]:
        from reconciler.core.sanitize import term
        with self._mutex:
            if self._open == 0:
                self._start()
            self._open += 1
            progress = self._progress
            # a float total is seconds (a countdown), an int one a count of DAGs
            tid = progress.add_task(term(description), total=total,
                                    countdown=isinstance(total, float))
        try:
            yield _RichTask(progress, tid)
        finally:
            with self._mutex:
                progress.remove_task(tid)
                self._open -= 1
                if self._open == 0:
                    self._stop()


class _RichTask(Task):
    def __init__(self, progress, tid):
        self._p, self._id = progress, tid

    def advance(self, n: int = 1) -> None:
        if n:
            self._p.advance(self._id, n)

    def update(self, *, total=None, completed=None, description=None) -> None:
        from reconciler.core.sanitize import term
        kw = {k: v for k, v in (("total", total), ("completed", completed)) if v is not None}
        if description is not None:
            kw["description"] = term(description)
        self._p.update(self._id, **kw)


def _Amount():
    """`12/500` for counted work, `4s left` for a countdown (a task whose total is seconds)."""
    from rich.progress import ProgressColumn
    from rich.text import Text

    class Amount(ProgressColumn):
        def render(self, task):
            if task.total is None:
                return Text(f"{int(task.completed)}" if task.completed else "")
            if task.fields.get("countdown"):
                return Text(f"{max(0, task.total - task.completed):.0f}s left")
            return Text(f"{int(task.completed)}/{int(task.total)}")
    return Amount()


def for_terminal(stderr) -> Reporter:
    """The reporter for the CLI: rich on a terminal stderr (NO_COLOR keeps the bar, without
    colour), the no-op when stderr is piped or captured."""
    if hasattr(stderr, "isatty") and stderr.isatty() and getattr(stderr, "raw", None):
        return RichReporter([stderr])
    return Reporter()
