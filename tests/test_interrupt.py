"""Interrupting `dvc repro` for real (SIGINT, SIGKILL to the whole process group) and running two at once.

Each case ends compared with one uninterrupted run (conftest's tiny_repro, the suite's one full `dvc repro` of the
tiny pipeline): the same dvc.lock hashes and byte-identical plans and checkpoints. The prune stage is stopped at a
known point, not raced: tests/hooks/sitecustomize.py (on the subprocesses' PYTHONPATH only) holds it right after it
has written its first checkpoint into models/tiny/.pruned.staging, until the test signals the process group or lets
it go on.
"""

import json
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from pipeline_helpers import TINY_KEY, copy_project, project_env, ran_stages, run

pytestmark = pytest.mark.slow

HOOKS = Path(__file__).parent / "hooks"
PRUNE = f"prune@{TINY_KEY}"
PER_MODEL = ("fetch_model", "sample_calibration", "extract_similarities", "score_rls", "cluster", "score_blocks",
             "select_variants", "allocate", "marginal_cost", "prune", "recover", "evaluate", "zeroshot", "bench",
             "study", "summarize")
# dvc.lock's stages in a copy of the reproduced project where prune never ran: every stage but prune.
BEFORE_PRUNE = {"check_params", "locate_data", "report"} | {f"{stage}@{TINY_KEY}" for stage in PER_MODEL} - {PRUNE}
ALWAYS = {"check_params", "locate_data"}  # always_changed: every `dvc repro` of prune runs them first
PRUNED = f"models/{TINY_KEY}/pruned"
FIRST_PLAN = "lorp-p20"
# Outputs holding measured seconds, the only bytes that differ between runs. importance.json's scores reach
# plans.json (the sleb and oneshot_ppl plans carry them), which is compared byte for byte.
WALL_CLOCK = {f"data/{TINY_KEY}/similarity/timing.json", f"data/{TINY_KEY}/importance/importance.json"}
STAGING = f"models/{TINY_KEY}/.pruned.staging"


def locked_outs(project: Path) -> dict[str, dict[str, str]]:
    """{stage: {out: md5}} as dvc.lock records them."""
    stages = yaml.safe_load((project / "dvc.lock").read_text())["stages"]
    return {name: {o["path"]: o["md5"] for o in stage.get("outs", []) if o["path"] not in WALL_CLOCK}
            for name, stage in stages.items()}


def outputs(project: Path) -> dict[str, bytes]:
    """The bytes of the plans and of every file the prune stage wrote (checkpoints, pruning.json, index)."""
    files = [project / f"data/{TINY_KEY}/plans.json", *sorted(p for p in (project / PRUNED).rglob("*") if p.is_file())]
    return {str(f.relative_to(project)): f.read_bytes() for f in files}


@dataclass
class Reference:
    project: Path  # a copy of the reproduced project: prune run uninterrupted
    before_prune: Path  # a copy in which prune never ran: what an interrupted copy starts from
    outs: dict[str, dict[str, str]]
    outputs: dict[str, bytes]


def forget_prune(project: Path) -> None:
    """Back to before prune's first run: no pruned folder, no dvc.lock entry, and no run cache (from which DVC would
    restore the pruned folder instead of running prune). Every other stage stays as the full run left it."""
    shutil.rmtree(project / PRUNED)
    lock = yaml.safe_load((project / "dvc.lock").read_text())
    del lock["stages"][PRUNE]
    (project / "dvc.lock").write_text(yaml.safe_dump(lock, sort_keys=False))
    shutil.rmtree(project / ".dvc/cache/runs")


@pytest.fixture(scope="module")
def reference(tmp_path_factory, tiny_repro) -> Reference:
    # The copies sit at the original's depth (mktemp(name) / "project"): params.yaml's data.mirror is relative.
    original = tiny_repro[0]
    project = copy_project(original, tmp_path_factory.mktemp("interrupt-reference") / "project")
    before_prune = copy_project(original, tmp_path_factory.mktemp("interrupt-before-prune") / "project")
    forget_prune(before_prune)
    assert set(locked_outs(before_prune)) == BEFORE_PRUNE
    return Reference(project, before_prune, locked_outs(original), outputs(original))


class PausedRepro:
    """`dvc <args>` in project, in a process group of its own, held in prune after its first checkpoint."""

    def __init__(self, project: Path, folder: Path, *args: str):
        self.folder, self.log = folder, folder / "log"
        folder.mkdir()
        env = project_env(project, HOOKS, LORP_TEST_PAUSE=str(folder))
        with open(self.log, "w") as log:
            self.proc = subprocess.Popen(["dvc", *args], cwd=project, env=env, stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        deadline = time.monotonic() + 600
        while not (folder / "paused").exists():
            assert self.proc.poll() is None, f"dvc {' '.join(args)} ended before prune:\n{self.text()[-3000:]}"
            assert time.monotonic() < deadline, f"prune never started:\n{self.text()[-3000:]}"
            time.sleep(0.1)

    def text(self) -> str:
        return self.log.read_text()

    def signal(self, sig: int) -> int:
        os.killpg(self.proc.pid, sig)
        return self.proc.wait(timeout=120)

    def resume(self) -> int:
        (self.folder / "resume").touch()
        return self.proc.wait(timeout=600)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.proc.poll() is None:  # a failed assertion: leave no dvc running behind
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def assert_same_as_reference(project: Path, reference: Reference) -> None:
    assert locked_outs(project) == reference.outs  # every stage up to prune, the pruned folder's .dir hash included
    got = outputs(project)
    assert sorted(got) == sorted(reference.outputs) and sum(f.endswith("/model.safetensors") for f in got) == 20
    assert got == reference.outputs  # full bytes: plans.json, every model.safetensors, config, tokenizer, record


def test_sigint_leaves_no_partial_output_and_the_rerun_finishes_only_prune(reference, tmp_path):
    project = copy_project(reference.before_prune, tmp_path / "project")
    with PausedRepro(project, tmp_path / "first", "repro", PRUNE) as first:
        staged = [p.name for p in (project / STAGING).iterdir()]
        assert staged == [FIRST_PLAN] and (project / STAGING / FIRST_PLAN / "model.safetensors").exists()
        assert first.signal(signal.SIGINT) != 0
    # DVC ignores SIGINT while its stage runs; the stage gets it (KeyboardInterrupt), removes its staging
    # folder and fails, and DVC then fails the repro and releases its own locks.
    assert f"failed to reproduce '{PRUNE}'" in first.text()
    assert ran_stages(first.text()) == ALWAYS | {PRUNE}
    assert not (project / PRUNED).exists() and not (project / STAGING).exists()
    leftovers = [p for folder in ("data", "models") for p in (project / folder).rglob(".*") if p.name != ".gitignore"]
    assert leftovers == []  # no temporary files or folders
    assert set(locked_outs(project)) == BEFORE_PRUNE  # check_params, locate_data (which finished) recorded; prune not
    assert json.loads((project / ".dvc/tmp/rwlock").read_text()) == {}

    assert ran_stages(run(["dvc", "repro", PRUNE], project)) == ALWAYS | {PRUNE}
    assert_same_as_reference(project, reference)


def test_sigkill_leaves_staging_that_the_rerun_clears(reference, tmp_path):
    project = copy_project(reference.before_prune, tmp_path / "project")
    with PausedRepro(project, tmp_path / "first", "repro", PRUNE) as first:
        dvc_pid = first.proc.pid
        assert first.signal(signal.SIGKILL) == -signal.SIGKILL  # dvc and the stage, no cleanup for either
    assert [p.name for p in (project / STAGING).iterdir()] == [FIRST_PLAN]  # what SIGKILL leaves: staging only
    assert not (project / PRUNED).exists()
    assert set(locked_outs(project)) == BEFORE_PRUNE
    # DVC's repo lock (.dvc/tmp/lock) is an flock, gone with the process; its rwlock file still names the
    # killed dvc as writer of data/pruned, and the next dvc drops such entries once it sees the pid is dead.
    rwlock = json.loads((project / ".dvc/tmp/rwlock").read_text())
    assert rwlock["write"][str(project / PRUNED)]["pid"] == dvc_pid

    rerun = run(["dvc", "repro", PRUNE], project)
    assert ran_stages(rerun) == ALWAYS | {PRUNE}
    assert f"(Pid {dvc_pid}), in RWLock-file '{PRUNED}' had been killed. Auto removed it" in rerun
    assert not (project / STAGING).exists()
    assert_same_as_reference(project, reference)


def test_second_repro_is_refused_while_the_first_runs_and_a_forced_rerun_is_byte_identical(reference, tmp_path):
    project = reference.project
    with PausedRepro(project, tmp_path / "first", "repro", "--force", "--single-item", PRUNE) as first:
        start = time.monotonic()
        second = subprocess.run(["dvc", "repro", PRUNE], cwd=project, capture_output=True, text=True,
                                env=project_env(project))
        took = time.monotonic() - start
        assert first.proc.poll() is None  # the second did not wait for the first (still held in prune)
        # DVC releases its repo lock while a stage command runs, so the second dvc takes that lock and is
        # refused by DVC's per-path rwlock instead ("Unable to acquire lock" only comes between stages).
        log = second.stdout + second.stderr
        assert second.returncode != 0 and took < 300, log  # the first is held until resumed: no waiting on it
        assert "is busy, it is being blocked by" in log and f"(PID {first.proc.pid}): " in log, log
        assert ran_stages(log) <= ALWAYS  # the check and the source lookup (always run) are all it did
        assert first.resume() == 0, first.text()[-3000:]
    assert ran_stages(first.text()) == {PRUNE}
    assert_same_as_reference(project, reference)  # the same checkpoints, rewritten on the same machine
