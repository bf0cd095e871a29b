"""Stage 8: perplexity of the dense model and every pruned checkpoint on the evaluation sets."""

import argparse
import time

from lorp import params as P
from lorp.checkpoints import checkpoints, evaluate_each
from lorp.io import library_versions, write_json
from lorp.models import load_tokenizer
from lorp.perplexity import eval_windows, perplexity

parser = argparse.ArgumentParser()
parser.add_argument("model")
parser.add_argument("--pruned", required=True)
parser.add_argument("--out", required=True)
args = parser.parse_args()

start = time.perf_counter()
params = P.load()
ev = params["evaluate"]
tokenizer = load_tokenizer(args.model)
sets = {name: eval_windows(tokenizer, name, ev["seqlen"], ev["max_windows"]) for name in ev["datasets"]}
models = checkpoints(args.model, args.pruned)
scores = evaluate_each(models, params["model"]["dtype"], params["model"]["device"],
                       lambda model: {ds: perplexity(model, ids, ev["batch_size"])["ppl"] for ds, ids in sets.items()})
results = {}
for name, row in scores.items():
    results[name] = row | {"average": sum(row.values()) / len(row), "removed": len(models[name][1])}
    print(name, {k: round(v, 3) for k, v in results[name].items()})
windows = {ds: {"windows": int(len(ids)), "seqlen": int(ids.shape[1])} for ds, ids in sets.items()}
write_json(args.out, {"ppl": results, "eval_windows": windows, "seconds": round(time.perf_counter() - start, 1),
                      "versions": library_versions()})
