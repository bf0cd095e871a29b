"""Which stages the next `dvc repro` will run, told from dvc.lock alone: the preflight runs inside `dvc repro`,
which holds the repository's lock, so it cannot ask DVC. A stage reruns when a file it depends on or one of its
params differs from what dvc.lock recorded, when it is not in dvc.lock, or when it depends on an output of a
stage that reruns. always_changed stages (the preflight, the source lookup) are not counted: their outputs never
change, so they rerun nothing downstream."""

import hashlib
from pathlib import Path
from typing import Any

import yaml

NOT_SET = object()


def file_md5(path: Path) -> str | None:
    """DVC 3's hash of a file (the md5 of its bytes); None when it cannot be read."""
    digest = hashlib.md5()
    try:
        with path.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    except OSError:
        return None
    return digest.hexdigest()


def param_value(params: dict, dotted: str) -> Any:
    value: Any = params
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            return NOT_SET
        value = value[part]
    return value


def changed_inputs(root: Path, stage: dict, params: dict) -> bool:
    """A file dependency's bytes or a param's value differ from the lock (directories: see stages_to_rerun)."""
    for dep in stage.get("deps", []):
        md5 = str(dep.get("md5", ""))
        if md5 and not md5.endswith(".dir") and file_md5(root / dep["path"]) != md5:
            return True
    for values in stage.get("params", {}).values():
        if any(param_value(params, key) != value for key, value in values.items()):
            return True
    return False


def stages_to_rerun(root: Path, names: list[str]) -> set[str]:
    """Of `names` (dvc.lock's stage names, e.g. recover@smollm2), the stages a repro will run, upstream stages
    followed through dvc.lock's outputs; an unreadable dvc.yaml, dvc.lock or params.yaml counts every one."""
    try:
        declared = (yaml.safe_load((root / "dvc.yaml").read_text()) or {}).get("stages", {})
        locked = (yaml.safe_load((root / "dvc.lock").read_text()) or {}).get("stages", {})
        params = yaml.safe_load((root / "params.yaml").read_text()) or {}
    except (OSError, yaml.YAMLError):
        return set(names)
    always = {name for name, stage in declared.items()
              if stage.get("always_changed") or stage.get("do", {}).get("always_changed")}
    producer = {out["path"].rstrip("/"): name for name, stage in locked.items() for out in stage.get("outs", [])
                if name.split("@")[0] not in always}
    verdict: dict[str, bool] = {}

    def reruns(name: str) -> bool:
        if name not in verdict:
            stage = locked.get(name)
            upstream = {producer[out] for dep in (stage or {}).get("deps", []) for out in producer
                        if dep["path"] == out or dep["path"].startswith(out + "/")} - {name}
            verdict[name] = stage is None or changed_inputs(root, stage, params) or any(map(reruns, upstream))
        return verdict[name]

    return {name for name in names if reruns(name)}
