"""Zero-shot accuracy (lm-evaluation-harness, 0-shot) of the dense model and every plan, in memory.

Each plan runs the dense model with its blocks bypassed (exact: the prune stage proves each checkpoint equals
this), resuming at its first removed block from the dense run's recorded inputs; identical plans are scored once.
"""

import argparse
import time

from lorp import params as P
from lorp.data import check_source
from lorp.io import library_versions, read_json, write_json
from lorp.models import load_model, load_tokenizer
from lorp.stage import run
from lorp.zeroshot import evaluate_plans


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("key", help="the model's key in params.yaml models")
    parser.add_argument("model", help="the dense checkpoint folder")
    parser.add_argument("--plans", required=True)
    parser.add_argument("--sources", required=True, help="locate_data's record of the dataset source")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    start = time.perf_counter()
    params = P.load()
    zs, spec = params.zeroshot, params.model(args.key)
    check_source(read_json(args.sources))
    plans = {"dense": []} | {p["name"]: p["removed"] for p in read_json(args.plans)}
    tokenizer = load_tokenizer(args.model)
    model = load_model(args.model, dtype=spec.dtype, device=spec.device)
    results = evaluate_plans(model, tokenizer, plans, tasks=zs.tasks, limit=zs.limit, batch_size=zs.batch_size)
    accuracy, stderr, skipped = {}, {}, {}
    for name, result in results.items():
        tasks = result["tasks"]
        accuracy[name] = {t: r["value"] for t, r in tasks.items() if "value" in r} | {"average": result["average"]}
        stderr[name] = {t: r["stderr"] for t, r in tasks.items() if "value" in r}
        skipped |= {t: r["skipped"] for t, r in tasks.items() if "skipped" in r}
        print(name, {t: round(v, 3) for t, v in accuracy[name].items()})
    examples = {t: r.get("n") for t, r in results["dense"]["tasks"].items()}
    write_json(args.out, {"accuracy": accuracy, "stderr": stderr, "skipped": skipped, "limit": zs.limit,
                          "examples": examples, "seconds": round(time.perf_counter() - start, 1),
                          "dtype": spec.dtype, "device": spec.device, "versions": library_versions()})


if __name__ == "__main__":
    run(main)
