"""Where the pipeline leaves each model's artefacts, and one loader for them all, so the report reads every
number from the files DVC tracks (data/<key>/..., reports/results/<key>/..., reports/metrics/<key>.json)."""

import csv
from pathlib import Path
from typing import Any

import numpy as np

from lorp.io import read_json

# name -> path under the root, with {key} the model's key; None-able ones may be absent (stage not landed).
PATHS = {
    "model_info": "data/{key}/model_info.json",
    "calibration": "data/{key}/calibration/info.json",
    "similarity": "data/{key}/similarity/S.npy",
    "timing": "data/{key}/similarity/timing.json",
    "rls": "data/{key}/rls/rls.json",
    "decay": "data/{key}/rls/decay.csv",
    "clusters": "data/{key}/clusters.json",
    "importance": "data/{key}/importance/importance.json",
    "marginal": "data/{key}/importance/marginal.json",
    "variants": "data/{key}/variants.json",
    "plans": "data/{key}/plans.json",
    "ppl": "reports/results/{key}/ppl.json",
    "zeroshot": "reports/results/{key}/zeroshot.json",
    "bench": "reports/results/{key}/bench.json",
    "study": "reports/results/{key}/study.json",
    "recovery": "reports/results/{key}/recovery.json",
    "metrics": "reports/metrics/{key}.json",
}
OPTIONAL = {"importance", "marginal", "study", "recovery", "variants"}
SOURCES = "data/sources.json"


def paths(root: str | Path, key: str) -> dict[str, Path]:
    """Every artefact path of model key under root."""
    return {name: Path(root) / template.format(key=key) for name, template in PATHS.items()}


def _read(path: Path) -> Any:
    if path.suffix == ".npy":
        return np.load(path)
    if path.suffix == ".csv":
        with path.open(newline="") as fh:
            return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(fh)]
    return read_json(path)


def load(root: str | Path, key: str) -> dict[str, Any]:
    """{"key": key, name: content} for every artefact; an optional one that is missing is None, a required one
    raises FileNotFoundError naming the stage output that is missing."""
    run: dict[str, Any] = {"key": key}
    for name, path in paths(root, key).items():
        if not path.exists():
            if name not in OPTIONAL:
                raise FileNotFoundError(f"{path} is missing: run `dvc repro` for model {key!r} first")
            run[name] = None
            continue
        run[name] = _read(path)
    return run


def sources(root: str | Path) -> dict | None:
    """data/sources.json (which dataset source the run read), None when the run did not record one."""
    path = Path(root) / SOURCES
    return read_json(path) if path.exists() else None
