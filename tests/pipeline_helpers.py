"""Temporary copies of the project with a tiny configuration, for the tests that run `dvc repro` in them."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml
from conftest import REPO

VENV_BIN = Path(sys.executable).parent  # python and dvc of the environment running the tests


TINY_KEY = "tiny"


def make_project(root: Path, model: Path, mirror: Path) -> Path:
    """A git + DVC project in root: the pipeline, library and notebook, params shrunk to run on model, the dataset
    mirror named in params.yaml (data.mirror, relative to the project) as a user's project would, not through the
    environment."""
    root.mkdir(parents=True, exist_ok=True)
    for item in ("dvc.yaml", "stages", "lorp", "notebooks"):
        src = REPO / item
        (shutil.copytree if src.is_dir() else shutil.copy)(src, root / item)
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["models"] = {TINY_KEY: {"source": str(model), "dtype": "float32", "device": "cpu"}}
    params["data"]["mirror"] = os.path.relpath(mirror, root)  # relative, as params.yaml gives it
    params["calibration"].update(n_samples=4, seqlen=32)
    params["similarity"]["batch_size"] = 2
    params["allocate"]["budgets"] = [0.2, 0.34]  # 1 and 2 of the tiny model's 6 blocks
    params["evaluate"].update(seqlen=32, max_windows=2, batch_size=2)
    params["zeroshot"].update(tasks=["copa", "hellaswag"], limit=2, batch_size=2)
    params["bench"].update(seqlen=16, prompt_len=4, new_tokens=4, repeats=1, warmup=0)
    params["study"].update(seeds=[1], ks=[2, 3], n_samples=[2], corpora=["wikitext2"],
                           methods=["lorp", "shortgpt", "oneshot_ppl"])
    params["recovery"].update(linear_samples=4, linear_batch_size=2, lora_steps=2, lora_batch_size=2, lora_seqlen=32)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run(["git", "init", "-q"], root)
    run(["dvc", "init", "-q"], root)
    for name in ("config", "plots_offline.html"):  # the config names the offline plots template
        shutil.copy(REPO / ".dvc" / name, root / ".dvc" / name)
    return root


def copy_project(src: Path, dest: Path) -> Path:
    """A copy of a project in its current state: workspace, git, dvc.lock, DVC cache (run cache included).

    dest must lie at src's depth (tmp_path_factory.mktemp(name) / "project", like conftest's tiny_repro): the
    project's params.yaml names the mirror relative to the project folder (make_project), and a copy at another
    depth would name a folder that does not exist."""
    copy = Path(shutil.copytree(src, dest, symlinks=True))
    relative = yaml.safe_load((copy / "params.yaml").read_text())["data"]["mirror"]
    assert relative is None or (copy / relative / "MANIFEST.md").exists(), f"{copy}: data.mirror {relative} is gone"
    return copy


def project_env(project: Path, *extra_path: Path, **env: str) -> dict[str, str]:
    """The environment for dvc in project: this venv's python and dvc first on PATH, and the copy's own
    lorp importable by the stage scripts (`python stages/x.py` would otherwise import the installed one)."""
    pythonpath = os.pathsep.join(str(p) for p in (project, *extra_path))
    inherited = {k: v for k, v in os.environ.items() if k != "LORP_DATA_DIR"}  # params.yaml names the mirror
    return {**inherited, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}", "PYTHONPATH": pythonpath, **env}


def run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    """Run cmd in cwd (project_env(cwd) by default), assert it succeeds, return its stdout + stderr."""
    out = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env or project_env(cwd))
    assert out.returncode == 0, f"{' '.join(cmd)} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out.stdout + out.stderr


def ran_stages(log: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", log))
