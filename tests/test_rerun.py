"""lorp.params.rerun: the stages a repro will run, told from dvc.lock without DVC, so the preflight counts the
checkpoints a rerun writes again (recover reran on a code change with its 22 checkpoints counted as present)."""

import hashlib
from pathlib import Path

import yaml

from lorp.params.rerun import stages_to_rerun


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def workspace(root: Path) -> Path:
    """check (always_changed) -> fetch@m -> prune@m -> recover@m, each with a code file; prune reads a param."""
    for name in ("check.py", "fetch.py", "prune.py", "recover.py", "sources.json"):
        (root / name).write_text(name)
    (root / "params.yaml").write_text(yaml.safe_dump({"prune": {"budget": 6}, "other": 1}))
    (root / "dvc.yaml").write_text(yaml.safe_dump({"stages": {
        "check": {"cmd": "c", "always_changed": True, "outs": ["sources.json"]},
        "fetch": {"foreach": ["m"], "do": {"cmd": "f", "outs": ["models/${item}/dense"]}},
        "prune": {"foreach": ["m"], "do": {"cmd": "p", "outs": ["models/${item}/pruned"]}},
        "recover": {"foreach": ["m"], "do": {"cmd": "r", "outs": ["models/${item}/recovered"]}}}}))
    dirs = {path: {"path": path, "md5": f"{i}" * 32 + ".dir"} for i, path in enumerate(
        ("models/m/dense", "models/m/pruned", "models/m/recovered"))}
    (root / "dvc.lock").write_text(yaml.safe_dump({"schema": "2.0", "stages": {
        "check": {"deps": [{"path": "check.py", "md5": md5(root / "check.py")}],
                  "outs": [{"path": "sources.json", "md5": md5(root / "sources.json")}]},
        "fetch@m": {"deps": [{"path": "fetch.py", "md5": md5(root / "fetch.py")},
                             {"path": "sources.json", "md5": md5(root / "sources.json")}],
                    "outs": [dirs["models/m/dense"]]},
        "prune@m": {"deps": [{"path": "prune.py", "md5": md5(root / "prune.py")}, dirs["models/m/dense"]],
                    "params": {"params.yaml": {"prune.budget": 6}}, "outs": [dirs["models/m/pruned"]]},
        "recover@m": {"deps": [{"path": "recover.py", "md5": md5(root / "recover.py")}, dirs["models/m/pruned"]],
                      "outs": [dirs["models/m/recovered"]]}}}))
    return root


NAMES = ["fetch@m", "prune@m", "recover@m"]


def test_nothing_reruns_when_every_input_matches_the_lock(tmp_path):
    assert stages_to_rerun(workspace(tmp_path), NAMES) == set()


def test_a_changed_file_reruns_its_stage_and_everything_downstream(tmp_path):
    root = workspace(tmp_path)
    (root / "prune.py").write_text("changed")
    assert stages_to_rerun(root, NAMES) == {"prune@m", "recover@m"}
    (root / "fetch.py").write_text("changed")
    assert stages_to_rerun(root, NAMES) == set(NAMES)


def test_a_changed_param_reruns_only_the_stages_that_read_it(tmp_path):
    root = workspace(tmp_path)
    (root / "params.yaml").write_text(yaml.safe_dump({"prune": {"budget": 6}, "other": 2}))
    assert stages_to_rerun(root, NAMES) == set()
    (root / "params.yaml").write_text(yaml.safe_dump({"prune": {"budget": 7}, "other": 1}))
    assert stages_to_rerun(root, NAMES) == {"prune@m", "recover@m"}


def test_an_always_changed_stage_reruns_nothing_downstream_but_its_changed_output_does(tmp_path):
    root = workspace(tmp_path)
    (root / "check.py").write_text("changed")
    assert stages_to_rerun(root, NAMES) == set()
    (root / "sources.json").write_text("another source")
    assert stages_to_rerun(root, NAMES) == set(NAMES)


def test_a_stage_missing_from_the_lock_or_an_unreadable_lock_counts_as_rerunning(tmp_path):
    root = workspace(tmp_path)
    lock = yaml.safe_load((root / "dvc.lock").read_text())
    del lock["stages"]["recover@m"]
    (root / "dvc.lock").write_text(yaml.safe_dump(lock))
    assert stages_to_rerun(root, NAMES) == {"recover@m"}
    (root / "dvc.lock").write_text("stages: [unclosed")
    assert stages_to_rerun(root, NAMES) == set(NAMES)
