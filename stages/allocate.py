"""Stage 6: a pruning plan for every method x budget, all from the same calibration measurements."""

import argparse

import numpy as np

from lorp.io import read_json, write_json
from lorp.params.config import load, model_budgets
from lorp.select.plans import Inputs, plans
from lorp.stage import run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("key", help="the model's key in params.yaml models")
    parser.add_argument("similarity", help="S.npy")
    parser.add_argument("--angular", required=True, help="angular.npy: last-token angular distances")
    parser.add_argument("--importance", required=True, help="importance.json from score_blocks")
    parser.add_argument("--clusters", required=True)
    parser.add_argument("--variants", required=True, help="variants.json from select_variants")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    params = load()
    alloc = params.allocate
    s = np.load(args.similarity)
    budgets = model_budgets(params, args.key, len(s))
    labels = np.asarray(read_json(args.clusters)["labels"])
    inputs = Inputs(s, labels, angular=np.load(args.angular), importance=read_json(args.importance), seed=alloc.seed,
                    protect_first=alloc.protect_first, protect_last=alloc.protect_last,
                    variants=read_json(args.variants))
    result = plans(inputs, methods=alloc.methods, budgets=budgets)
    write_json(args.out, result)
    for p in result:
        print(f"{p['name']:>16}: remove {p['removed']}")


if __name__ == "__main__":
    run(main)
