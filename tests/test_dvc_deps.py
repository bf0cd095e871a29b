"""dvc.yaml's deps and params are complete: a stage reruns whenever anything it imports or reads changes.

Each stage must depend on every project module its script imports, transitively, and declare every params.yaml
key its script reads. Both lists are derived from the code here, so a dvc.yaml that misses one fails this test.
"""

import ast
import copy
import re
from pathlib import Path

import pytest
import yaml
from conftest import REPO

from lorp.params.config import SECTIONS

PKG = "lorp"
MIRROR_KEY = "data.mirror"  # read by the stages that read text; locate_data's record stands for it downstream


def project_imports(path: Path) -> set[str]:
    """Repo-relative paths of the lorp modules one file imports: `import lorp.a.b`, `from lorp.a.b import x` and
    `from lorp.a import b` (a module of a subpackage), at any depth of the file (lazy imports count)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == PKG:
            base = node.module.replace(".", "/")
            out |= {f"{base}.py"} | {f"{base}/{a.name}.py" for a in node.names}
        elif isinstance(node, ast.Import):
            out |= {a.name.replace(".", "/") + ".py" for a in node.names if a.name.split(".")[0] == PKG}
    # importing lorp.a.b runs lorp/a/__init__.py first: every package on the way is a dep too
    out |= {"/".join(m.split("/")[:i]) + "/__init__.py" for m in set(out) for i in range(2, m.count("/") + 1)}
    return {m for m in out if (REPO / m).is_file()}


def module_closure(script: str) -> set[str]:
    """Every lorp module a script imports, transitively, with the __init__.py of each package on the way."""
    seen, todo = set(), [REPO / script]
    while todo:
        for module in project_imports(todo.pop()):
            if module not in seen:
                seen.add(module)
                todo.append(REPO / module)
    return seen


def params_read(script: str) -> set[str]:
    """'section.key' (or 'section' for a whole section) read by a stage script through `load()`.

    Follows aliases (`ev = params.evaluate`, `cal = load().calibration`); a section passed on whole counts as every
    key of it. `preflight(params, ...)` is the first stage's refusal of bad overrides and reads nothing.
    `params.model(key).x` reads `models.x` (of the stage's model); `params.budgets(key)` and
    `model_budgets(params, key, n)` read allocate.budgets and the model's own budgets. The whole Params passed to a
    function of the script or of a lorp module (`run_study(..., params=params)`) reads what that function reads of
    the parameter it lands in, followed the same way; passed to anything else, it reads everything ("*").
    """
    path = REPO / script
    return _reads(path, ast.parse(path.read_text()), set(), set())


def _functions(path: Path, tree: ast.Module) -> dict[str, tuple[Path, ast.FunctionDef]]:
    """Name -> (file, def) of the functions a file can call by plain name: its own top-level defs and those it
    imports by name from a lorp module (`from lorp.study import run_study`)."""
    out = {node.name: (path, node) for node in tree.body if isinstance(node, ast.FunctionDef)}
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == PKG:
            module = REPO / (node.module.replace(".", "/") + ".py")
            if not module.is_file():
                continue
            defs = {d.name: d for d in ast.parse(module.read_text()).body if isinstance(d, ast.FunctionDef)}
            out |= {a.asname or a.name: (module, defs[a.name]) for a in node.names if a.name in defs}
    return out


def _parameter(call: ast.Call, arg: ast.AST, func: ast.FunctionDef) -> str | None:
    """The name of func's parameter that `arg` of `call` binds (by position or keyword), or None."""
    positional = [a.arg for a in func.args.posonlyargs + func.args.args]
    for i, a in enumerate(call.args):
        if a is arg:
            return positional[i] if i < len(positional) else None
    names = positional + [a.arg for a in func.args.kwonlyargs]
    return next((k.arg for k in call.keywords if k.value is arg and k.arg in names), None)


def _reads(path: Path, scope: ast.AST, roots: set[str], seen: set) -> set[str]:
    """params_read of one scope (a script, or a function whose parameters `roots` hold the whole Params)."""
    module = ast.parse(path.read_text())
    functions = _functions(path, module)
    roots, sections, read = set(roots), {}, set()

    def is_load(node) -> bool:
        return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "load"

    def on_root(node) -> bool:
        return is_load(node) or (isinstance(node, ast.Name) and node.id in roots)

    def section_of(node) -> str | None:
        if isinstance(node, ast.Attribute) and node.attr in SECTIONS and on_root(node.value):
            return node.attr
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "model"
                and on_root(node.func.value)):
            return "models"
        return None

    def assignments():
        """(name, value) of every plain or tuple assignment: `a = x` and `a, b = x, y`."""
        for node in ast.walk(scope):
            if isinstance(node, ast.Assign):
                targets = node.targets[0].elts if isinstance(node.targets[0], ast.Tuple) else node.targets
                values = node.value.elts if isinstance(node.value, ast.Tuple) else [node.value]
                yield from ((t.id, v) for t, v in zip(targets, values, strict=False) if isinstance(t, ast.Name))

    def calls(node, name: str) -> bool:
        """`name(...)` or `module.name(...)`: a lorp.params function, imported by name or reached through a module."""
        return isinstance(node, ast.Call) and (
            (isinstance(node.func, ast.Name) and node.func.id == name)
            or (isinstance(node.func, ast.Attribute) and node.func.attr == name))

    roots |= {name for name, value in assignments() if is_load(value)}
    sections |= {name: section_of(value) for name, value in assignments() if section_of(value)}
    consumed = set()
    for node in ast.walk(scope):
        if calls(node, "preflight"):
            consumed |= {id(a) for a in node.args}
        elif calls(node, "model_budgets"):
            read |= {"allocate.budgets", "allocate.protect_first", "allocate.protect_last", "models.budgets"}
            consumed |= {id(a) for a in node.args}
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in functions:
            callee_path, callee = functions[node.func.id]
            for arg in [*node.args, *(k.value for k in node.keywords)]:
                name = _parameter(node, arg, callee) if on_root(arg) else None
                if name and (key := (callee_path, callee.name, name)) not in seen:
                    seen.add(key)
                    read |= _reads(callee_path, callee, {name}, seen)
                if name:
                    consumed.add(id(arg))
        if isinstance(node, ast.Call) and section_of(node):
            consumed.add(id(node.func.value))
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "budgets"
                and on_root(node.func.value)):  # params.budgets(key)
            read |= {"allocate.budgets", "allocate.protect_first", "allocate.protect_last", "models.budgets"}
            consumed |= {id(a) for a in node.args} | {id(node.func.value)}
        if isinstance(node, ast.Attribute):
            section = section_of(node.value) or (node.value.id in sections and sections[node.value.id]
                                                 if isinstance(node.value, ast.Name) else None)
            if section:
                read.add(f"{section}.{node.attr}")
                consumed.add(id(node.value))
            elif section_of(node):
                consumed.add(id(node.value))
    for node in ast.walk(scope):
        if id(node) in consumed or not isinstance(node, ast.Name) or not isinstance(node.ctx, ast.Load):
            continue
        if node.id in sections:
            read.add(sections[node.id])
        elif node.id in roots:
            read.add("*")
    return read


def stage_script(body: dict) -> str | None:
    return next((w for w in body["cmd"].split() if w.endswith(".py") and (REPO / w).exists()), None)


def dep_names(body: dict) -> set[str]:
    return {d if isinstance(d, str) else next(iter(d)) for d in body.get("deps", [])}


def declared_params(body: dict) -> set[str]:
    """Declared keys, a model's own `models.<key>.x` as `models.x` (what params_read calls it)."""
    out = set()
    for p in body.get("params", []):
        out |= {"*"} if isinstance(p, dict) else {re.sub(r"^models\.[a-z0-9_]+", "models", p)}
    return out


def missing_deps(stages: dict) -> dict[str, list[str]]:
    out = {}
    for name, body in stages.items():
        script = stage_script(body)
        lack = sorted(module_closure(script) - dep_names(body)) if script else []
        if lack:
            out[name] = lack
    return out


def covered(key: str, declared: set[str]) -> bool:
    return "*" in declared or key in declared or key.split(".")[0] in declared




def params_mismatch(stages: dict) -> dict[str, str]:
    out = {}
    for name, body in stages.items():
        script = stage_script(body)
        read, declared = params_read(script), declared_params(body)
        if "data/sources.json" in dep_names(body):
            read.discard(MIRROR_KEY)
        unread = {d for d in declared - {"*"} if not any(r == d or r.startswith(d + ".") or d.startswith(r + ".")
                                                        or r == "*" for r in read)}
        lack = {r for r in read if not covered(r, declared)}
        if lack or unread:
            out[name] = f"reads but does not declare {sorted(lack)}; declares but does not read {sorted(unread)}"
    return out


def outs_of(body: dict) -> set[str]:
    return {o if isinstance(o, str) else next(iter(o)) for key in ("outs", "metrics", "plots")
            for o in body.get(key, [])}


def expand(stages: dict, models: list[str]) -> dict:
    """dvc.yaml's stages with every `foreach` over models unrolled into name@key, as DVC resolves them."""
    out = {}
    for name, body in stages.items():
        if "foreach" not in body:
            out[name] = body
            continue
        assert body["foreach"] == "${models}", f"{name} iterates over {body['foreach']}, not the models"
        for key in models:
            out[f"{name}@{key}"] = yaml.safe_load(yaml.safe_dump(body["do"]).replace("${key}", key))
    return out


MODELS = list(yaml.safe_load((REPO / "params.yaml").read_text())["models"])
STAGES = expand(yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"], MODELS)


def test_every_stage_runs_a_script_of_stages():
    assert all(stage_script(body) for body in STAGES.values())


def test_each_stage_depends_on_every_module_it_imports():
    assert missing_deps(STAGES) == {}


def cmd_paths_untracked(stages: dict) -> dict[str, list[str]]:
    """Files a stage's command names that are neither its deps nor its outs (its script aside)."""
    out = {}
    for name, body in stages.items():
        outs = outs_of(body)
        paths = {w for w in body["cmd"].split() if "/" in w and not w.startswith("-")}
        lack = sorted(paths - dep_names(body) - outs)
        if lack:
            out[name] = lack
    return out


def test_every_path_a_command_names_is_a_dep_or_an_out():
    assert cmd_paths_untracked(STAGES) == {}


def test_each_stage_declares_exactly_the_params_it_reads():
    assert params_mismatch(STAGES) == {}


def test_the_checks_catch_a_removed_dep_and_a_removed_param():
    stages = copy.deepcopy(STAGES)
    key = MODELS[0]
    stages[f"evaluate@{key}"]["deps"].remove("lorp/data/tokens.py")
    stages[f"prune@{key}"]["params"].remove(f"models.{key}.dtype")
    stages[f"extract_similarities@{key}"]["deps"].remove(f"data/{key}/calibration/info.json")
    stages[f"study@{key}"]["params"].remove("cluster.random_state")  # read only inside lorp.study.run_study
    assert missing_deps(stages) == {f"evaluate@{key}": ["lorp/data/tokens.py"]}
    assert cmd_paths_untracked(stages) == {f"extract_similarities@{key}": [f"data/{key}/calibration/info.json"]}
    mismatch = params_mismatch(stages)
    assert set(mismatch) == {f"prune@{key}", f"study@{key}"}
    assert "models.dtype" in mismatch[f"prune@{key}"]
    assert "cluster.random_state" in mismatch[f"study@{key}"]


@pytest.mark.parametrize("source, expected", [
    ("p = load()\nx = p.evaluate.seqlen\n", {"evaluate.seqlen"}),
    ("ev, m = load().evaluate, 1\nf(ev.seqlen, ev.batch_size)\n", {"evaluate.seqlen", "evaluate.batch_size"}),
    ("b = load().bench\nf(**asdict(b))\n", {"bench"}),
    ("params = load()\npreflight(params, k, 3, 4)\ng(params.rls.force_k)\n", {"rls.force_k"}),
    ("params = load()\nm = params.model(k)\nf(m.dtype)\n", {"models.dtype"}),
    ("params = load()\nf(model_budgets(params, k, 3))\n",
     {"allocate.budgets", "allocate.protect_first", "allocate.protect_last", "models.budgets"}),
    ("params = load()\ng(params)\n", {"*"}),
    ("params = load()\nf(mirror_root(params.data.mirror))\n", {"data.mirror"}),
    ("def f(a, p):\n    return p.rls.force_k\nparams = load()\nf(1, params)\n", {"rls.force_k"}),
    ("def f(a, *, p):\n    g(p.study.ks)\n    f(a, p=p)\nparams = load()\nf(1, p=params)\n", {"study.ks"}),
    ("def f(a, p):\n    g(p)\nparams = load()\nf(1, params)\n", {"*"}),
])
def test_params_read_follows_aliases(tmp_path, monkeypatch, source, expected):
    import test_dvc_deps

    (tmp_path / "s.py").write_text(source)
    monkeypatch.setattr(test_dvc_deps, "REPO", tmp_path)
    assert params_read("s.py") == expected
