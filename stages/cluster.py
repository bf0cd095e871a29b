"""Stage 5: spectral clustering of the blocks into K depth-ordered clusters."""

import argparse

import numpy as np

from lorp.io import read_json, write_json
from lorp.params.config import load
from lorp.select.cluster import cluster, members
from lorp.stage import run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("similarity")
    parser.add_argument("--rls", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    params = load()
    k = read_json(args.rls)["k"]
    labels = cluster(np.load(args.similarity), k, random_state=params.cluster.random_state)
    result = {"k": k, "labels": labels.tolist(), "members": members(labels)}
    write_json(args.out, result)
    print(result)


if __name__ == "__main__":
    run(main)
