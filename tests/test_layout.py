"""The package's layout, read from the source with `ast` (nothing of lorp is imported): which modules sit at the
top level, empty subpackage __init__.py, short modules, and an import graph without cycles that only points down
the layers errors/io < data < model < select < evaluate < report < params < stage/study/cli.
"""

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PKG = "lorp"
TOP_LEVEL = {"__init__", "errors", "io", "params", "stage", "study", "cli"}
SUBPACKAGES = {"data", "model", "select", "recover", "evaluate", "report"}
MAX_LINES = 300
# Bottom to top. A module's layer is its subpackage, else its own name at the top level; lorp/__init__.py runs
# before any lorp module, so it is at the bottom.
LAYERS = [{"__init__", "errors", "io"}, {"data"}, {"model"}, {"select"}, {"recover"}, {"evaluate"}, {"report"},
          {"params"}, {"stage", "study", "cli"}]

Graph = dict[str, dict[str, int]]  # module -> {imported module: line of its first import}, repo-relative paths


def modules(root: Path = REPO) -> list[Path]:
    return sorted((root / PKG).rglob("*.py"))


def rel(path: Path, root: Path = REPO) -> str:
    return path.relative_to(root).as_posix()


def resolve(dotted: str, root: Path = REPO) -> str | None:
    """The file a dotted module name is: lorp/a/b.py, else the package lorp/a/b/__init__.py, else None."""
    base = root / dotted.replace(".", "/")
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return rel(path, root)
    return None


def imported(path: Path, root: Path = REPO) -> dict[str, int]:
    """{module file: first line} of every lorp import anywhere in a file, function-level imports included.

    `import lorp.a.b` imports lorp/a/b; `from lorp.a import b` imports lorp/a/b.py where that file exists, else
    lorp/a.py or lorp/a/__init__.py (b is then a name defined there). Relative imports resolve against the file's
    package."""
    out: dict[str, int] = {}

    def add(target: str | None, line: int) -> None:
        if target is not None and target != rel(path, root):
            out[target] = min(line, out.get(target, line))

    package = rel(path.parent, root).split("/")
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == PKG:
                    add(resolve(alias.name, root), node.lineno)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package[:len(package) - node.level + 1] + (node.module.split(".") if node.module else [])
                module = ".".join(parts)
            else:
                module = node.module or ""
            if module.split(".")[0] != PKG:
                continue
            for alias in node.names:
                add(resolve(f"{module}.{alias.name}", root) if (root / module.replace(".", "/") / f"{alias.name}.py")
                    .is_file() else resolve(module, root), node.lineno)
    return out


def import_graph(root: Path = REPO) -> Graph:
    return {rel(path, root): imported(path, root) for path in modules(root)}


def find_cycle(graph: Graph) -> list[str] | None:
    """One import cycle as [a, b, ..., a], or None; depth-first, modules and their imports in sorted order."""
    state: dict[str, int] = {}  # 1 on the current path, 2 finished
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph.get(node, {})):
            if state.get(target) == 1:
                return path[path.index(target):] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def describe_cycle(graph: Graph, cycle: list[str]) -> str:
    """'lorp/a.py:3 -> lorp/b.py:7 -> lorp/a.py': each module with the line where it imports the next."""
    return " -> ".join(f"{a}:{graph[a][b]}" for a, b in zip(cycle, cycle[1:], strict=False)) + f" -> {cycle[-1]}"


def layer(module: str) -> int:
    """The layer index of a repo-relative module path (lorp/<sub>/x.py: its subpackage; lorp/x.py: x)."""
    parts = Path(module).relative_to(PKG).parts
    name = parts[0] if len(parts) > 1 else Path(parts[0]).stem
    found = [i for i, names in enumerate(LAYERS) if name in names]
    assert found, f"{module}: {name!r} is in no layer of {LAYERS}"
    return found[0]


def upward_imports(graph: Graph) -> list[str]:
    """'file:line imports target (layer a < layer b)' for each import of a module of a higher layer."""
    out = []
    for module, targets in sorted(graph.items()):
        for target, line in sorted(targets.items(), key=lambda t: t[1]):
            if layer(target) > layer(module):
                out.append(f"{module}:{line} imports {target} ({sorted(LAYERS[layer(module)])} may not import "
                           f"{sorted(LAYERS[layer(target)])})")
    return out


def test_top_level_modules():
    """lorp/*.py are exactly TOP_LEVEL; params alone may instead be the subpackage lorp/params/ (split for length),
    and the only other subpackages are the layers'."""
    top = {p.stem for p in (REPO / PKG).glob("*.py")}
    packages = {p.parent.name for p in (REPO / PKG).glob("*/__init__.py")}
    assert top == TOP_LEVEL or (top == TOP_LEVEL - {"params"} and "params" in packages), sorted(top)
    assert packages - {"params"} == SUBPACKAGES


def test_subpackage_inits_are_empty():
    inits = [p for p in (REPO / PKG).rglob("__init__.py") if p.parent != REPO / PKG]
    assert inits, "no subpackages found"
    assert [rel(p) for p in inits if p.read_text().strip()] == []


def test_every_module_is_short():
    long = {rel(p): n for p in modules() if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert long == {}, f"modules over {MAX_LINES} lines: {long}"


def test_import_graph_has_no_cycle():
    graph = import_graph()
    cycle = find_cycle(graph)
    assert cycle is None, f"import cycle: {describe_cycle(graph, cycle)}"


def test_imports_only_point_down_the_layers():
    assert upward_imports(import_graph()) == []


def test_every_module_has_a_layer():
    assert {layer(m) for m in import_graph()} <= set(range(len(LAYERS)))


def test_the_graph_reads_every_kind_of_import(tmp_path):
    files = {
        "lorp/__init__.py": "",
        "lorp/errors.py": "",
        "lorp/data/__init__.py": "",
        "lorp/data/corpora.py": "",
        "lorp/data/sources.py": "CORPORA = 1\n",
        "lorp/model/__init__.py": "",
        "lorp/model/load.py": (
            "import os\n"
            "import lorp.data.corpora\n"
            "from lorp.data import sources, corpora\n"
            "from lorp.data.sources import CORPORA\n"
            "from lorp.errors import LorpError\n"
            "from . import fetch\n"
            "\n"
            "def f():\n"
            "    from lorp.report.render import render\n"
            "    from lorp import params\n"
            "    from lorp.data import something_defined_in_init\n"),
        "lorp/model/fetch.py": "from ..data.corpora import x\nfrom .load import y\n",
        "lorp/report/__init__.py": "",
        "lorp/report/render.py": "",
        "lorp/params.py": "",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    graph = import_graph(tmp_path)
    assert graph["lorp/model/load.py"] == {
        "lorp/data/corpora.py": 2, "lorp/data/sources.py": 3, "lorp/errors.py": 5, "lorp/model/fetch.py": 6,
        "lorp/report/render.py": 9, "lorp/params.py": 10, "lorp/data/__init__.py": 11}
    assert graph["lorp/model/fetch.py"] == {"lorp/data/corpora.py": 1, "lorp/model/load.py": 2}
    cycle = find_cycle(graph)
    assert cycle in (["lorp/model/fetch.py", "lorp/model/load.py", "lorp/model/fetch.py"],
                     ["lorp/model/load.py", "lorp/model/fetch.py", "lorp/model/load.py"])
    assert describe_cycle(graph, cycle) == "lorp/model/fetch.py:2 -> lorp/model/load.py:6 -> lorp/model/fetch.py"
    assert [u.split(" (")[0] for u in upward_imports(graph)] == [
        "lorp/model/load.py:9 imports lorp/report/render.py", "lorp/model/load.py:10 imports lorp/params.py"]


def test_the_cycle_check_catches_a_planted_cycle_and_passes_a_dag():
    dag = {"lorp/a.py": {"lorp/b.py": 1, "lorp/c.py": 2}, "lorp/b.py": {"lorp/c.py": 4}, "lorp/c.py": {}}
    assert find_cycle(dag) is None
    planted = dag | {"lorp/c.py": {"lorp/d.py": 7}, "lorp/d.py": {"lorp/b.py": 9}}
    cycle = find_cycle(planted)
    assert cycle == ["lorp/b.py", "lorp/c.py", "lorp/d.py", "lorp/b.py"]
    assert describe_cycle(planted, cycle) == "lorp/b.py:4 -> lorp/c.py:7 -> lorp/d.py:9 -> lorp/b.py"
    assert find_cycle({"lorp/a.py": {"lorp/a.py": 3}}) == ["lorp/a.py", "lorp/a.py"]


@pytest.mark.parametrize("module, target, upward", [
    ("lorp/data/sources.py", "lorp/report/html.py", True),
    ("lorp/model/load.py", "lorp/select/methods.py", True),
    ("lorp/report/render.py", "lorp/params.py", True),
    ("lorp/params.py", "lorp/study.py", True),
    ("lorp/errors.py", "lorp/data/corpora.py", True),
    ("lorp/io.py", "lorp/errors.py", False),  # same layer
    ("lorp/study.py", "lorp/cli.py", False),  # same layer
    ("lorp/select/plans.py", "lorp/select/methods.py", False),  # same subpackage
    ("lorp/report/render.py", "lorp/data/corpora.py", False),
    ("lorp/cli.py", "lorp/params.py", False),
    ("lorp/params.py", "lorp/evaluate/tasks.py", False),
])
def test_the_layer_check_catches_a_planted_upward_import(module, target, upward):
    found = upward_imports({module: {target: 12}, target: {}})
    assert found == ([f"{module}:12 imports {target} ({sorted(LAYERS[layer(module)])} may not import "
                      f"{sorted(LAYERS[layer(target)])})"] if upward else [])
