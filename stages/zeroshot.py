"""Zero-shot accuracy (lm-evaluation-harness, 0-shot) of the dense model and every pruned checkpoint."""

import argparse
from pathlib import Path

from lorp import params as P
from lorp.io import library_versions, read_json, write_json
from lorp.models import load_model, load_tokenizer
from lorp.zeroshot import check_request, evaluate

parser = argparse.ArgumentParser()
parser.add_argument("model")
parser.add_argument("--pruned", required=True)
parser.add_argument("--out", required=True)
args = parser.parse_args()

params = P.load()
zs, dtype, device = params["zeroshot"], params["model"]["dtype"], params["model"]["device"]
check_request(zs["tasks"], zs["limit"])
tokenizer = load_tokenizer(args.model)
index = read_json(Path(args.pruned) / "index.json")
models = {"dense": (args.model, [])} | {name: (Path(args.pruned) / name, r["removed"]) for name, r in index.items()}
accuracy, stderr, done, skipped = {}, {}, {}, {}
for name, (path, removed) in models.items():
    key = tuple(removed)
    if key not in done:  # identical plans are evaluated once
        model = load_model(path, dtype, device)
        done[key] = evaluate(model, tokenizer, zs["tasks"], zs["limit"], zs["batch_size"])
        del model
    tasks = done[key]["tasks"]
    accuracy[name] = {t: r["value"] for t, r in tasks.items() if "value" in r} | {"average": done[key]["average"]}
    stderr[name] = {t: r["stderr"] for t, r in tasks.items() if "value" in r}
    skipped |= {t: r["skipped"] for t, r in tasks.items() if "skipped" in r}
    print(name, {t: round(v, 3) for t, v in accuracy[name].items()})
write_json(args.out, {"accuracy": accuracy, "stderr": stderr, "skipped": skipped, "limit": zs["limit"],
                      "examples": {t: r.get("n") for t, r in tasks.items()}, "versions": library_versions()})
