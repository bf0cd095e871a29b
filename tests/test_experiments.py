"""The README's experiment workflow across git branches and machines, on a copy of the reproduced tiny project
(conftest's tiny_repro) in a temporary git repo:
`dvc exp run -S` without make, the compact view, `dvc exp branch`, `dvc metrics diff` / `dvc plots diff` against
main, a queued sweep on two workers, `dvc exp push`/`pull` + `dvc push`/`pull` through a local bare git repo and a
local-directory DVC remote, and bad overrides refused before any pipeline stage runs.
"""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from pipeline_helpers import TINY_KEY, copy_project, project_env, ran_stages, run

from lorp.io import read_json
from lorp.report.compare import table

pytestmark = pytest.mark.slow
METRICS = f"reports/metrics/{TINY_KEY}.json"
CHECKPOINT = f"models/{TINY_KEY}/pruned/lorp-p20/model.safetensors"  # a DVC-cached artifact of every run


def fails(cmd: list[str], cwd: Path) -> str:
    """Run cmd in cwd, assert it fails, return its stdout + stderr."""
    out = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=project_env(cwd))
    assert out.returncode != 0, f"{' '.join(cmd)} succeeded:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out.stdout + out.stderr


def reset(project: Path) -> None:
    """Back to main's commit: `dvc exp run` leaves the experiment's params and results in the workspace."""
    run(["git", "reset", "-q", "--hard"], project)
    run(["dvc", "checkout", "-q", "--force"], project)


def shown(project: Path, metric: str = "ppl"):
    """The compact view's table (`python -m lorp.report.compare`, parsed rather than printed)."""
    return table(json.loads(run(["dvc", "exp", "show", "--json"], project)), metric)


def processes_in(root: Path) -> list[int]:
    """Processes whose working directory lies in root: DVC's queue workers and the experiments they run."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and int(proc.name) != os.getpid() and \
                    Path(os.readlink(proc / "cwd")).is_relative_to(root):
                pids.append(int(proc.name))
        except OSError:
            continue
    return pids


def stop_queue(project: Path, root: Path) -> None:
    """Stop the queue's workers (they outlive `dvc queue start`), then end any process left in root, by pid."""
    subprocess.run(["dvc", "queue", "stop", "--kill"], cwd=project, capture_output=True, env=project_env(project))
    deadline = time.monotonic() + 30
    while processes_in(root) and time.monotonic() < deadline:
        time.sleep(1)
    for pid in processes_in(root):
        os.kill(pid, signal.SIGKILL)


def is_number(cell: str) -> bool:
    """A number as the compact view prints it (23.45, 1,234, 4.39e8), not a status or a changed param."""
    try:
        float(cell.replace(",", ""))
    except ValueError:
        return False
    return True


def workspace_state(project: Path) -> tuple[str, str, dict[str, bytes]]:
    """`git status`, `dvc status` and the bytes of every output the pipeline tracks in git or DVC."""
    files = [p for folder in ("data", "models", "reports") for p in sorted((project / folder).rglob("*"))
             if p.is_file()]
    return (run(["git", "status", "--porcelain"], project), run(["dvc", "status"], project),
            {str(p.relative_to(project)): p.read_bytes() for p in files})


@pytest.fixture(scope="module")
def project(tmp_path_factory, tiny_repro):
    """main: the reproduced tiny pipeline (a copy: results committed on main) with a git remote (a bare repo) and a
    DVC remote (a folder), the remotes committed, main and its outputs pushed. The copy, and the clone beside it,
    sit at the original's depth (root / "project", root / "clone"): params.yaml's data.mirror is relative."""
    root = tmp_path_factory.mktemp("experiments")
    project = copy_project(tiny_repro[0], root / "project")
    run(["git", "init", "-q", "--bare", "-b", "main", str(root / "origin.git")], root)
    run(["git", "remote", "add", "origin", str(root / "origin.git")], project)
    run(["dvc", "remote", "add", "-d", "store", str(root / "store")], project)
    run(["git", "add", "-A"], project)
    run(["git", "commit", "-qm", "remotes"], project)
    run(["git", "push", "-q", "origin", "main"], project)
    run(["dvc", "push"], project)
    yield project
    stop_queue(project, root)
    assert not processes_in(root)


def test_experiment_compare_branch_diff_push_pull(project):
    root = project.parent
    log = run(["dvc", "exp", "run", "-n", "windows", "-S", "evaluate.max_windows=3"], project)
    assert ran_stages(log) == {"check_params", "locate_data", f"evaluate@{TINY_KEY}", f"study@{TINY_KEY}",
                               f"summarize@{TINY_KEY}", "report"}

    view = shown(project)  # main and the experiment side by side, each with numbers
    main, exp = view.loc[("main", TINY_KEY)], view.loc[("windows", TINY_KEY)]
    assert main[("lorp", "p20")] > 1 and exp[("lorp", "p20")] > 1 and exp[("dense", "")] != main[("dense", "")]
    assert exp[("k", "")] == main[("k", "")] and list(view.columns).count(("status", "")) == 1
    printed = run([sys.executable, "-m", "lorp.report.compare"], project).splitlines()
    allocate = yaml.safe_load((project / "params.yaml").read_text())["allocate"]
    recovered = json.loads((project / METRICS).read_text())["recovery"]
    cells = len(allocate["methods"]) * len(allocate["budgets"])  # a PPL per method and budget (8 x 2 here)
    cells += sum(len(plans) for labels in recovered.values() for plans in labels.values())  # and per recovered plan
    # The experiment's row (in one or more blocks, however wide the table is wrapped) prints a number for the dense
    # PPL, RLS, K and every plan, as pruned and recovered: none blank.
    row = [cell for line in printed if line.split()[:2] == ["windows", TINY_KEY] for cell in line.split()[2:]]
    assert sum(map(is_number, row)) == 3 + cells, "\n".join(printed)

    run(["dvc", "exp", "branch", "windows", "more-windows"], project)
    diff = json.loads(run(["dvc", "metrics", "diff", "main", "more-windows", "--json"], project))[METRICS]
    assert {"dense.ppl", "lorp.p20.ppl", "shortgpt.p34.ppl"} <= diff.keys()
    run(["dvc", "plots", "diff", "main", "more-windows", "-o", str(root / "plots")], project)
    page = (root / "plots/index.html").read_text()
    assert "vega-embed" in page and "decay.csv" in page and "figure-01.png" in page  # every declared plot
    assert not re.search(r"<script[^>]+src=", page), "a plot loads a script from elsewhere: it renders blank offline"
    metrics = read_json(project / METRICS)
    reset(project)

    # Share through the remotes: a second clone gets the experiment and its cached outputs, recomputes nothing.
    run(["dvc", "exp", "push", "origin", "windows"], project)
    assert "in sync" in run(["dvc", "status", "--cloud"], project)  # main's outputs went with `dvc push`
    clone = root / "clone"
    run(["git", "clone", "-q", str(root / "origin.git"), str(clone)], root)
    run(["dvc", "exp", "pull", "origin", "windows"], clone)
    assert ("windows", TINY_KEY) in shown(clone).index
    run(["dvc", "exp", "apply", "windows"], clone)
    assert read_json(clone / METRICS) == metrics
    assert (clone / CHECKPOINT).read_bytes() == (project / CHECKPOINT).read_bytes()
    assert ran_stages(run(["dvc", "repro"], clone)) <= {"check_params", "locate_data"}  # the rest came from remotes


def test_queued_sweep_and_refused_overrides(project):
    reset(project)
    # The queued experiments run under .dvc/tmp/exps/, elsewhere than the project, and find the mirror from the
    # relative data.mirror of params.yaml alone (resolved against the project): nothing names it in the
    # environment the queue's workers inherit.
    mirror = yaml.safe_load((project / "params.yaml").read_text())["data"]["mirror"]
    assert not Path(mirror).is_absolute() and "LORP_DATA_DIR" not in project_env(project)
    # A sweep of two, one worker each; each reruns only zeroshot, summarize and the report.
    for name, override in (("limit-1", "zeroshot.limit=1"), ("limit-3", "zeroshot.limit=3")):
        run(["dvc", "exp", "run", "--queue", "-n", name, "-S", override], project)
    run(["dvc", "queue", "start", "-j", "2"], project)
    deadline = time.monotonic() + 900
    while any(state in (status := run(["dvc", "queue", "status"], project)) for state in ("Queued", "Running")):
        assert time.monotonic() < deadline, status
        time.sleep(5)
    view = shown(project, "acc")
    for name in ("limit-1", "limit-3"):
        assert view.loc[(name, TINY_KEY), ("status", "")] == "success"
        assert view.loc[(name, TINY_KEY), ["dense", "lorp", "shortgpt"]].notna().all()

    reset(project)
    # DVC refuses a key params.yaml lacks; added on purpose (+key), check_params refuses it; so a budget too large.
    assert "allocate.budget" in (log := fails(["dvc", "exp", "run", "-S", "allocate.budget=[1]"], project))
    assert ran_stages(log) == set()
    # The preflight in check_params: a source, device or dtype the machine cannot serve is refused by the first
    # stage, before DVC removes any other stage's outputs: the workspace is as it was.
    reset(project)
    before = workspace_state(project)
    for override, key in (("+allocate.budget=[1]", "allocate.budget"), ("allocate.budgets=[5]", "allocate.budgets"),
                          (f"models.{TINY_KEY}.source=pypi:nonexistent-model", f"models.{TINY_KEY}.source"),
                          (f"models.{TINY_KEY}.device=cuda", f"models.{TINY_KEY}.device")):
        reset(project)
        log = fails(["dvc", "exp", "run", "-S", override], project)
        assert key in log and "error: " in log and ran_stages(log) == {"check_params"}, log[-2000:]
        run(["git", "checkout", "-q", "--", "params.yaml"], project)  # the override, and nothing else, undone
        assert workspace_state(project) == before, override
    reset(project)
