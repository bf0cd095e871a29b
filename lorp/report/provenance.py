"""What produced the report's numbers: the commit whose code and params made them, and each stage's own timing."""

import subprocess
from pathlib import Path

from lorp.model.stage_records import recorded_seconds

# What decides the numbers, as opposed to what the pipeline writes (dvc.lock, data/, reports/, models/).
SOURCE_PATHS = ("lorp", "stages", "notebooks", "dvc.yaml", "params.yaml", "pyproject.toml", "Makefile")


def _git(root: Path, *args: str) -> str | None:
    done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=False)
    return done.stdout.strip() if done.returncode == 0 else None


def revision(root: str | Path) -> str:
    """The commit whose code and params made the report, and whether either differs from it. The stage outputs
    (dvc.lock, data/, reports/) always differ while `dvc repro` renders the report, so they are not counted."""
    head = _git(Path(root), "rev-parse", "HEAD")
    if head is None:
        return "not a git checkout"
    changed = _git(Path(root), "diff", "--name-only", "HEAD", "--", *SOURCE_PATHS)
    if not changed:
        return f"{head} (code and params as committed)"
    return f"{head} with uncommitted changes to " + ", ".join(changed.splitlines())


def flat(record: dict, prefix: str = "") -> dict[str, str]:
    """A nested record as {"a.b": "value"}, for a table of its leaves."""
    out = {}
    for k, v in record.items():
        out |= flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": str(v)}
    return out


STAGE_RECORDS = {"extract_similarities": "timing", "score_blocks": "importance", "select_variants": "variants",
                 "marginal_cost": "marginal", "recover": "recovery", "evaluate": "ppl", "zeroshot": "zeroshot",
                 "study": "study"}  # each compute-bound stage and the run's record (lorp.report.inputs) of its seconds


def stage_seconds(run: dict) -> dict[str, float | None]:
    """Each compute-bound stage's own timing of its computation, from its record (None where it left none)."""
    return {stage: recorded_seconds(run[key]) if run[key] else None for stage, key in STAGE_RECORDS.items()}
