"""Stage 7: write every plan as a reloadable checkpoint, checked against the skip-blocks original."""

import argparse
import copy
import shutil
from pathlib import Path

import torch

from lorp import params as P
from lorp.io import read_json, write_json
from lorp.models import load_model, load_tokenizer
from lorp.prune import max_logit_diff, remove_blocks, save

parser = argparse.ArgumentParser()
parser.add_argument("model")
parser.add_argument("--plans", required=True)
parser.add_argument("--out", required=True)
args = parser.parse_args()

params = P.load()
plans = read_json(args.plans)
original = load_model(args.model, params["model"]["dtype"], "cpu")
tokenizer = load_tokenizer(args.model)
probe = torch.randint(0, original.config.vocab_size, (1, 32), generator=torch.Generator().manual_seed(0))
out = Path(args.out)
if out.exists():
    shutil.rmtree(out)
summary = {}
for plan in plans:
    pruned = remove_blocks(copy.deepcopy(original), plan["removed"])
    diff = max_logit_diff(pruned, original, plan["removed"], probe)
    if diff > 1e-4:
        raise SystemExit(f"{plan['name']}: pruned logits differ from the skip-blocks model by {diff}")
    record = {k: plan[k] for k in ("name", "method", "budget", "num_blocks", "removed", "kept")}
    record["max_abs_logit_diff_vs_skip"] = diff
    save(pruned, tokenizer, out / plan["name"], record)
    summary[plan["name"]] = record
    print(f"{plan['name']}: {len(plan['kept'])} blocks kept, max |logit diff| vs skip-blocks = {diff:.2e}")
write_json(out / "index.json", summary)
