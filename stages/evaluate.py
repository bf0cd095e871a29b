"""Perplexity of the dense model and every plan on the evaluation sets, in memory and prefix-cached.

Each plan runs the dense model with its blocks bypassed, resuming at its first removed block from the dense
pass's recorded states: exact (the prune stage proves each checkpoint equals this), and identical plans are
scored once. The loss never holds more than a slice of the logits (Gemma-3's vocabulary is 262k).
"""

import argparse
import resource
import time

from lorp import params as P
from lorp.data import check_source
from lorp.io import library_versions, read_json, write_json
from lorp.memory import free_memory
from lorp.models import load_config, load_model, load_tokenizer, max_positions
from lorp.perplexity import eval_windows, plan_perplexities
from lorp.stage import run


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
    ev, spec = params.evaluate, params.model(args.key)
    P.check_seqlen("evaluate.seqlen", ev.seqlen, max_positions(load_config(args.model)))
    check_source(read_json(args.sources))
    tokenizer = load_tokenizer(args.model)
    sets = {name: eval_windows(tokenizer, name, seqlen=ev.seqlen, max_windows=ev.max_windows) for name in ev.datasets}
    del tokenizer  # Gemma-3's holds ~320 MB that the model's forward would otherwise stack its peak on
    free_memory()
    plans = {"dense": []} | {p["name"]: p["removed"] for p in read_json(args.plans)}
    model = load_model(args.model, dtype=spec.dtype, device=spec.device)
    scores = {ds: plan_perplexities(model, ids, plans, batch_size=ev.batch_size, desc=ds) for ds, ids in sets.items()}
    results = {}
    for name, removed in plans.items():
        row = {ds: scores[ds][name] for ds in sets}
        results[name] = row | {"average": sum(row.values()) / len(row), "removed": len(removed)}
        print(name, {k: round(v, 3) for k, v in results[name].items()})
    windows = {ds: {"windows": int(len(ids)), "seqlen": int(ids.shape[1])} for ds, ids in sets.items()}
    write_json(args.out, {"ppl": results, "eval_windows": windows, "seconds": round(time.perf_counter() - start, 1),
                          "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                          "dtype": spec.dtype, "device": spec.device, "versions": library_versions()})


if __name__ == "__main__":
    run(main)
