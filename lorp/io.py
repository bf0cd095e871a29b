"""Atomic file writes: a stage killed mid-write never leaves a half-written output behind."""

import importlib.metadata
import json
import os
import platform
import tempfile
from pathlib import Path
from typing import Any

import numpy as np


def atomic_write(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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
