"""Atomic file writes: a stage killed mid-write never leaves a half-written output behind."""

import contextlib
import importlib.metadata
import json
import os
import platform
import resource
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from lorp.errors import LorpError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: Path, write) -> None:
    """Write through a temporary file renamed into place, with the permissions a plain open() would give."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def staged_dir(out_dir: str | Path):
    """Yield a staging folder beside out_dir that replaces out_dir only once the block completes.

    The staging name is fixed, so a run killed outright (SIGKILL) leaves one folder that the next run clears
    first; an exception (SIGINT included) removes it at once. The old out_dir is renamed aside (also a fixed
    name) before the staging folder takes its place and only then deleted, so an interruption never leaves a
    half-deleted out_dir: it is old-and-whole, new-and-whole, or (killed between the two renames) absent.
    """
    out_dir = Path(out_dir)
    staging = out_dir.with_name(f".{out_dir.name}.staging")
    old = out_dir.with_name(f".{out_dir.name}.old")
    for leftover in (staging, old):
        shutil.rmtree(leftover, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if out_dir.exists():
        out_dir.rename(old)
    staging.rename(out_dir)
    shutil.rmtree(old, ignore_errors=True)


def write_json(path: str | Path, obj: Any) -> None:
    text = json.dumps(obj, indent=2, sort_keys=False) + "\n"
    atomic_write(Path(path), lambda fh: fh.write(text.encode()))


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text())


def write_npy(path: str | Path, array: np.ndarray) -> None:
    atomic_write(Path(path), lambda fh: np.save(fh, array, allow_pickle=False))


def write_text(path: str | Path, text: str) -> None:
    atomic_write(Path(path), lambda fh: fh.write(text.encode()))


def library_versions() -> dict[str, str]:
    """Versions that decide the numbers, recorded next to them."""
    names = ("torch", "transformers", "datasets", "scikit-learn", "numpy", "lm-eval", "dvc")
    return {"python": platform.python_version()} | {n: importlib.metadata.version(n) for n in names}


def peak_rss_mib() -> float:
    """This process's peak resident memory so far (Linux: ru_maxrss in KiB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


class MissingOutputError(LorpError, FileNotFoundError):
    """A command outside DVC reads pipeline outputs that are not there yet."""


def require_outputs(what: str, paths: list[Path]) -> None:
    """Refuse, before any model loads, when a pipeline output a command reads is missing."""
    if missing := [str(p) for p in paths if not p.exists()]:
        raise MissingOutputError(f"{what}: {', '.join(missing)} missing: run `dvc repro` (make repro) first")
