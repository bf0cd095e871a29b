"""Stage 8: perplexity of the dense model and every pruned checkpoint on the evaluation sets."""

import argparse
from pathlib import Path

from lorp import params as P
from lorp.io import library_versions, read_json, write_json
from lorp.models import load_model, load_tokenizer
from lorp.perplexity import eval_windows, perplexity

parser = argparse.ArgumentParser()
parser.add_argument("model")
parser.add_argument("--pruned", required=True)
parser.add_argument("--out", required=True)
args = parser.parse_args()

params = P.load()
ev, dtype, device = params["evaluate"], params["model"]["dtype"], params["model"]["device"]
tokenizer = load_tokenizer(args.model)
sets = {name: eval_windows(tokenizer, name, ev["seqlen"], ev["max_windows"]) for name in ev["datasets"]}
index = read_json(Path(args.pruned) / "index.json")
models = {"dense": (args.model, [])} | {name: (Path(args.pruned) / name, r["removed"]) for name, r in index.items()}
results, done = {}, {}
for name, (path, removed) in models.items():
    key = tuple(removed)
    if key not in done:  # identical plans (e.g. ShortGPT = Streamline) are evaluated once
        model = load_model(path, dtype, device)
        done[key] = {ds: perplexity(model, ids, ev["batch_size"]) for ds, ids in sets.items()}
        del model
    row = {ds: r["ppl"] for ds, r in done[key].items()}
    row["average"] = sum(row.values()) / len(row)
    row["removed"] = len(removed)
    results[name] = row
    print(name, {k: round(v, 3) for k, v in row.items()})
windows = {ds: {"windows": int(len(ids)), "seqlen": int(ids.shape[1])} for ds, ids in sets.items()}
write_json(args.out, {"ppl": results, "eval_windows": windows, "versions": library_versions()})
