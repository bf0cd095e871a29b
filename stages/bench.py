"""Efficiency benchmark: size, memory, prefill/decode throughput of the dense model and every plan."""

import argparse
from pathlib import Path

from lorp import params as P
from lorp.bench import benchmark, selection_cost, write_results
from lorp.checkpoints import checkpoints
from lorp.io import read_json

parser = argparse.ArgumentParser()
parser.add_argument("model")
parser.add_argument("--pruned", required=True)
parser.add_argument("--timing", required=True, help="the similarity pass's timing.json")
parser.add_argument("--out", required=True)
parser.add_argument("--csv", required=True)
args = parser.parse_args()

params = P.load()
b = params["bench"]
folders = [(name, path) for name, (path, _) in checkpoints(args.model, args.pruned).items()]
rows = benchmark(folders, params["model"]["dtype"], params["model"]["device"], b["batch"], b["seqlen"],
                 b["new_tokens"], b["prompt_len"], b["repeats"], b["warmup"])
methods = sorted({r["method"] for r in read_json(Path(args.pruned) / "index.json").values()})
write_results(rows, args.out, args.csv, selection_cost(read_json(args.timing), methods))
for r in rows:
    print(f"{r['name']:>14}: {r['blocks']} blocks, prefill x{r['prefill_speedup']:.2f}, "
          f"decode x{r['decode_speedup']:.2f}, ideal x{r['ideal_speedup']:.2f}")
