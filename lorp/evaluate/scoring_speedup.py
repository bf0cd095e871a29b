"""`make bench`'s timing of the loss-based scoring: naive vs prefix-cached, on a fetched model's calibration windows.

Outside the DVC pipeline on purpose: it measures this machine, not the study, and takes minutes per model.
Usage: lorp scoring-speedup <model key> [...] --out reports/bench/importance_speedup.json (make bench)
"""

import json
from pathlib import Path

import numpy as np

from lorp.errors import ParamsError
from lorp.io import require_outputs, write_json
from lorp.model.load import load_model, num_blocks
from lorp.select.budgets import protected_blocks
from lorp.select.importance import speedup_benchmark


def measure(models: dict[str, tuple[str, str]], out: str | Path, *, samples: int, batch_size: int,
            protect_first: bool, protect_last: bool) -> dict:
    """Time naive vs cached scoring on the first `samples` calibration windows of each model {key: (dtype,
    device)} the pipeline fetched, and write the results."""
    for key in models:
        require_outputs(key, [Path("data") / key / "calibration/windows.npy", Path("models") / key / "dense"])
    results = {}
    for key, (dtype, device) in models.items():
        ids = np.load(Path("data") / key / "calibration/windows.npy")
        if samples > len(ids):
            raise ParamsError(f"importance.samples={samples} exceeds {key}'s {len(ids)} calibration windows")
        ids = ids[:samples]
        model = load_model(Path("models") / key / "dense", dtype=dtype, device=device)
        protected = protected_blocks(num_blocks(model.config), protect_first, protect_last)
        results[key] = speedup_benchmark(model, ids, batch_size=batch_size, protected=protected)
        print(key, json.dumps(results[key]))
    write_json(out, results)
    return results
