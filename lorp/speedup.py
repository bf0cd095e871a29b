"""`make bench`'s timing of the loss-based scoring: naive vs prefix-cached, on a fetched model's calibration windows.

Outside the DVC pipeline on purpose: it measures this machine, not the study, and takes minutes per model.
Usage: python -m lorp.speedup <model key> [...] --out reports/bench/importance_speedup.json
"""

import argparse
import json
from pathlib import Path

import numpy as np

from lorp import params as P
from lorp.allocate import protected_blocks
from lorp.importance import speedup_benchmark
from lorp.io import write_json
from lorp.models import load_model, num_blocks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("keys", nargs="+", help="model keys of params.yaml, fetched by dvc repro")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    params = P.load()
    imp, alloc = params.importance, params.allocate
    results = {}
    for key in args.keys:
        spec, folder = params.model(key), Path("models") / key / "dense"
        ids = P.loss_windows(np.load(Path("data") / key / "calibration/windows.npy"), imp.samples)
        model = load_model(folder, dtype=spec.dtype, device=spec.device)
        protected = protected_blocks(num_blocks(model.config), alloc.protect_first, alloc.protect_last)
        results[key] = speedup_benchmark(model, ids, batch_size=imp.batch_size, protected=protected)
        print(key, json.dumps(results[key]))
    write_json(args.out, results)


if __name__ == "__main__":
    main()
