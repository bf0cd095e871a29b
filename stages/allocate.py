"""Stage 6: a pruning plan for every method x budget, all from the same S."""

import argparse

import numpy as np

from lorp import params as P
from lorp.allocate import plans
from lorp.io import read_json, write_json

parser = argparse.ArgumentParser()
parser.add_argument("similarity")
parser.add_argument("--clusters", required=True)
parser.add_argument("--out", required=True)
args = parser.parse_args()

params = P.load()
s = np.load(args.similarity)
alloc = params["allocate"]
P.check_against_model(params, len(s), None)
labels = np.asarray(read_json(args.clusters)["labels"])
result = plans(s, labels, alloc["methods"], alloc["budgets"], alloc["protect_first"], alloc["protect_last"])
write_json(args.out, result)
for p in result:
    print(f"{p['name']:>16}: remove {p['removed']}")
