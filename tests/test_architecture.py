"""The shape of the package (issue 13), checked from the source with `ast`: no Airflow, fast.

- no module under reconciler/ is over 400 lines;
- no import cycle among reconciler modules, counting every import in a file (function-level
  and TYPE_CHECKING ones too: an import hidden in a function is still a dependency);
- nothing outside reconciler/live/ reaches into a backend's private attributes or asks which
  API version it talks to;
- the wheel ships the product and, beside it, the `testkit` harness that the user-facing
  `reconciler.testing` plugin needs (issue 17 made it a supported API); never tests/, and no
  harness inside the product package.
"""

from __future__ import annotations

import ast
import tomllib
from functools import lru_cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "reconciler"
MAX_LINES = 400
BACKEND_NAMES = {"backend", "be"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@lru_cache(maxsize=None)
def _modules() -> dict[str, Path]:
    """Every module of the package: dotted name -> file (a package is its __init__)."""
    return {_module_name(p): p for p in sorted(PKG.rglob("*.py"))}


@lru_cache(maxsize=None)
def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _absolute(mod: str, path: Path, node: ast.ImportFrom) -> str:
    """The absolute name an ImportFrom refers to (relative imports resolved)."""
    if not node.level:
        return node.module or ""
    base = mod.split(".") if path.name == "__init__.py" else mod.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _target(name: str) -> str | None:
    """The reconciler module an import name lands in: the longest dotted prefix that is one."""
    mods = _modules()
    parts = name.split(".")
    for n in range(len(parts), 0, -1):
        cand = ".".join(parts[:n])
        if cand in mods:
            return cand
    return None


def import_graph() -> dict[str, set[str]]:
    """module -> the reconciler modules it imports, anywhere in its file."""
    graph: dict[str, set[str]] = {}
    for mod, path in _modules().items():
        deps: set[str] = set()
        for node in ast.walk(_tree(path)):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _absolute(mod, path, node)
                # `from pkg import sub` imports the submodule; `from pkg import name` the
                # package's __init__ (where the name is defined or re-exported)
                names = [f"{base}.{a.name}" for a in node.names if a.name != "*"] or [base]
            for name in names:
                if name == "reconciler" or name.startswith("reconciler."):
                    t = _target(name)
                    if t is not None and t != mod:
                        deps.add(t)
        graph[mod] = deps
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each with one
    concrete cycle through it, for the message."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    comps: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        # iterative: the graph is small, but recursion limits are not worth the risk
        work = [(v, iter(sorted(graph.get(v, ()))))]
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        while work:
            node, it = work[-1]
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter[0]
                    counter[0] += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(graph.get(w, ())))))
                    break
                if w in on:
                    low[node] = min(low[node], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on.discard(w)
                        comp.append(w)
                        if w == node:
                            break
                    if len(comp) > 1:
                        comps.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return [_one_cycle(graph, comp) for comp in comps]


def _one_cycle(graph: dict[str, set[str]], comp: list[str]) -> list[str]:
    """A shortest cycle through the component's first module (BFS inside the component)."""
    start, members = comp[0], set(comp)
    prev: dict[str, str] = {}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph[v] & members):
                if w == start:
                    path = [v]
                    while path[-1] != start:
                        path.append(prev[path[-1]])
                    return list(reversed(path)) + [start]
                if w not in prev:
                    prev[w] = v
                    nxt.append(w)
        frontier = nxt
    return comp  # pragma: no cover (a component always has a cycle)


def test_no_module_over_400_lines():
    long = {_rel(p): n for p in _modules().values()
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines: " + ", ".join(
        f"{f} ({n})" for f, n in sorted(long.items(), key=lambda kv: -kv[1]))


def test_graph_sees_function_level_and_package_imports():
    # the checker itself: a function-level import is an edge, and so is `from pkg import sub`
    graph = import_graph()
    assert "reconciler.state.loader" in graph["reconciler.engine"]
    assert "reconciler.cli.main" in graph  # every module is a node, imported or not
    assert not find_cycles({"a": {"b"}, "b": {"c"}, "c": set()})
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]


def test_no_import_cycles():
    cycles = find_cycles(import_graph())
    assert not cycles, f"{len(cycles)} import cycle(s) among reconciler modules:\n" + "\n".join(
        "  " + " -> ".join(c) for c in cycles)


def _is_backend(node: ast.AST) -> bool:
    """`backend`, `be`, or `<anything>.backend` (self.backend, ctx.backend)."""
    if isinstance(node, ast.Name):
        return node.id in BACKEND_NAMES
    return isinstance(node, ast.Attribute) and node.attr == "backend"


def _reaches_around(node: ast.AST) -> str | None:
    """Why this node reaches around the Backend protocol, or None."""
    if isinstance(node, ast.Attribute) and node.attr.startswith("_") and _is_backend(node.value):
        return f"private attribute .{node.attr}"
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
            and node.func.id in ("getattr", "hasattr", "setattr") and len(node.args) >= 2 \
            and _is_backend(node.args[0]) and isinstance(node.args[1], ast.Constant) \
            and isinstance(node.args[1].value, str):
        attr = node.args[1].value
        if attr.startswith("_") or attr == "api":
            return f"{node.func.id}(..., {attr!r})"
    if isinstance(node, ast.Compare):
        for side in [node.left, *node.comparators]:
            if isinstance(side, ast.Attribute) and side.attr == "api":
                return "compares .api (which API version)"
            if isinstance(side, ast.Call) and isinstance(side.func, ast.Name) \
                    and side.func.id == "getattr" and len(side.args) >= 2 \
                    and isinstance(side.args[1], ast.Constant) and side.args[1].value == "api":
                return "compares getattr(..., 'api')"
    return None


def test_nothing_outside_live_reaches_around_the_backend():
    live = PKG / "live"
    hits = []
    for path in _modules().values():
        if live in path.parents:
            continue
        for node in ast.walk(_tree(path)):
            why = _reaches_around(node)
            if why:
                hits.append(f"{_rel(path)}:{node.lineno}: {why}")
    assert not hits, "outside reconciler/live/, code reaches around the Backend:\n  " + \
        "\n  ".join(hits)


def test_reach_around_checker_sees_each_form():
    def why(src: str) -> str | None:
        return next((w for n in ast.walk(ast.parse(src)) if (w := _reaches_around(n))), None)
    assert why("backend._call('GET')")
    assert why("self.backend._client")
    assert why("getattr(be, 'api', None)")
    assert why("x = client.api == 'v1'")
    assert why("backend.list_dags()") is None
    assert why("other._private") is None


def test_wheel_ships_testkit_beside_the_product_never_the_tests():
    # issue 17: the harness is the supported backend of reconciler.testing's pausectl_airflow
    # fixture, so it ships as its own top-level package; the project's tests never ship
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    wheel = meta["tool"]["hatch"]["build"]["targets"]["wheel"]
    shipped = list(wheel.get("packages", [])) + list(wheel.get("only-include", [])) + \
        list(wheel.get("force-include", {}).values())
    bad = [p for p in shipped if p.split("/")[0] == "tests"
           or ("testkit" in p.split("/") and p != "testkit")]
    assert not bad, f"the wheel ships test code: {bad}"
    assert sorted(wheel.get("packages", [])) == ["reconciler", "testkit"], wheel
    inside = [_rel(p) for p in PKG.rglob("*") if p.name in ("testkit", "harness.py")]
    assert not inside, f"test kit inside the product package: {inside}"
    assert (ROOT / "testkit" / "harness.py").is_file()   # it moved, it did not vanish
