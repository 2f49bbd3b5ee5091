"""The package's layering, checked from the source: no import cycles (deferred imports inside
functions and ``TYPE_CHECKING`` blocks count too: a type that needs an upward import is a layer in
the wrong place), the core never imports a plugin package by name, the plugin loader and the
command line's core never import the bench, and in the bench aggregation never imports rendering,
nor rendering the runner."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def packages() -> dict[str, Path]:
    found = {"aedr": ROOT / "aedr"}
    for folder in ("plugins", "baselines"):
        for p in sorted((ROOT / folder).iterdir()):
            if (p / "__init__.py").exists():
                found[p.name] = p
    return found


def modules() -> dict[str, Path]:
    out = {}
    for pkg, path in packages().items():
        for f in sorted(path.rglob("*.py")):
            parts = (pkg, *f.relative_to(path).with_suffix("").parts)
            out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = f
    return out


class _Imports(ast.NodeVisitor):
    def __init__(self):
        self.found: list[str | ast.ImportFrom] = []

    def visit_Import(self, node: ast.Import) -> None:
        self.found += [a.name for a in node.names]

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        self.found.append(node)


def import_graph() -> dict[str, set[str]]:
    """module -> the project modules it imports (a name imported from a package counts as its
    submodule when there is one)."""
    mods = modules()
    graph: dict[str, set[str]] = {}
    for name, path in mods.items():
        visitor = _Imports()
        visitor.visit(ast.parse(path.read_text(encoding="utf-8")))
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        deps: set[str] = set()
        for item in visitor.found:
            if isinstance(item, str):
                candidates = [item]
            else:
                if item.level:
                    base = package.split(".")
                    base = base[: len(base) - (item.level - 1)]
                    target = ".".join(base + ([item.module] if item.module else []))
                else:
                    target = item.module or ""
                submodules = [f"{target}.{a.name}" for a in item.names if f"{target}.{a.name}" in mods]
                # ``from pkg import sub`` imports the submodule; the package only for other names
                candidates = submodules + ([target] if len(submodules) < len(item.names) else [])
            deps.update(c for c in candidates if c in mods and c != name)
        graph[name] = deps
    return graph


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm: the components with more than one module are the import cycles."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return cycles


GRAPH = import_graph()


def test_the_checker_finds_a_cycle():
    assert strongly_connected({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycles():
    cycles = strongly_connected(GRAPH)
    described = ["; ".join(f"{m} -> {sorted(d for d in GRAPH[m] if d in c)}" for m in c) for c in cycles]
    assert not cycles, "import cycles:\n" + "\n".join(described)


def test_the_core_never_imports_a_plugin_package():
    plugin_packages = set(packages()) - {"aedr"}
    bad = {m: sorted(d for d in deps if d.split(".")[0] in plugin_packages) for m, deps in GRAPH.items() if m.split(".")[0] == "aedr"}
    assert not {m: d for m, d in bad.items() if d}


@pytest.mark.parametrize("module", ["aedr.plugins", "aedr.hookspecs", "aedr.registry", *(m for m in GRAPH if m.split(".")[:2] == ["aedr", "cli"])])
def test_the_plugin_loader_and_the_command_lines_core_never_import_the_bench(module):
    """The bench is a built-in plugin: it registers its commands, metrics and executors through the
    hooks, and what the core needs of it (the types it registers) is declared in the core."""
    assert not sorted(d for d in GRAPH[module] if d == "aedr.bench" or d.startswith("aedr.bench."))


def test_plugins_import_no_other_plugin():
    bad = {}
    for m, deps in GRAPH.items():
        top = m.split(".")[0]
        if top != "aedr":
            others = sorted(d for d in deps if d.split(".")[0] not in (top, "aedr"))
            if others:
                bad[m] = others
    assert not bad


@pytest.mark.parametrize(
    "layer, forbidden",
    [
        ("aedr.bench.metrics", ("aedr.bench.render", "aedr.bench.tables", "aedr.bench.runner", "aedr.bench.outputs")),
        ("aedr.bench.tables", ("aedr.bench.render", "aedr.bench.runner", "aedr.bench.outputs", "aedr.bench.execute")),
        ("aedr.bench.render", ("aedr.bench.runner", "aedr.bench.execute", "aedr.bench.outputs", "aedr.bench.leaderboard")),
        ("aedr.bench.execute", ("aedr.bench.render", "aedr.bench.runner", "aedr.bench.metrics", "aedr.bench.tables")),
        ("aedr.bench.plan", ("aedr.bench.render", "aedr.bench.runner", "aedr.bench.execute", "aedr.bench.metrics")),
    ],
)
def test_bench_layers(layer, forbidden):
    inside = {m: d for m, d in GRAPH.items() if m == layer or m.startswith(layer + ".")}
    assert inside, layer
    bad = {m: sorted(x for x in deps if any(x == f or x.startswith(f + ".") for f in forbidden)) for m, deps in inside.items()}
    assert not {m: d for m, d in bad.items() if d}


def test_the_contributing_layout_map_names_every_module():
    """CONTRIBUTING.md's layout map matches the tree: every module of the core and the bench is in it."""
    text = (ROOT / "CONTRIBUTING.md").read_text(encoding="utf-8")
    layout = text[text.index("## Layout"):text.index("## The interfaces")]
    missing = []
    for path in sorted((ROOT / "aedr").rglob("*.py")):
        if path.name == "__init__.py":
            continue
        folder = path.parent.relative_to(ROOT / "aedr").as_posix()
        name = path.name if folder in (".", "bench") else f"{path.parent.name}/{path.name}"
        name = path.name if folder == "cli" else name  # listed under cli/
        if folder == "bench/render":
            name = "render/"
        if name not in layout:
            missing.append(path.relative_to(ROOT).as_posix())
    assert not missing, f"add these to CONTRIBUTING.md's layout map: {missing}"



LONGEST_COMMAND_FUNCTION = 60  # lines, from the ``def`` to the last line of the body


def long_functions(source: str, limit: int = LONGEST_COMMAND_FUNCTION) -> list[tuple[str, int, int]]:
    """(name, first line, length) of each function in ``source`` longer than ``limit`` lines, methods
    and nested functions included."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            length = node.end_lineno - node.lineno + 1
            if length > limit:
                found.append((node.name, node.lineno, length))
    return found


def test_the_length_check_finds_long_functions():
    def statements(n: int, indent: str) -> str:
        return "".join(f"{indent}x{i} = {i}\n" for i in range(n))

    source = (
        "def short():\n" + statements(59, "    ")  # 60 lines: the limit
        + "class C:\n    def method(self):\n" + statements(60, "        ")  # 61
        + "def outer():\n    def inner():\n" + statements(60, "        ") + "    return inner\n"  # 63 around 61
    )
    assert sorted((name, length) for name, _, length in long_functions(source)) == [("inner", 61), ("method", 61), ("outer", 63)]


@pytest.mark.parametrize(
    "path", sorted((ROOT / "aedr" / "cli").glob("*.py")) + [ROOT / "aedr" / "bench" / "commands.py"], ids=lambda p: p.name
)
def test_commands_are_thin(path):
    """No function of the command line is over 60 lines: a command checks its flags, calls the
    library and hands the results to their printers; records and JSON come from the result types."""
    found = long_functions(path.read_text(encoding="utf-8"))
    assert not found, "split these (records and JSON shaping belong to the result types): " + ", ".join(
        f"{path.relative_to(ROOT).as_posix()}:{line} {name} ({length} lines)" for name, line, length in found
    )
