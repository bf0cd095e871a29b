"""Stage 4: the Representation Locality Score and the cluster count K."""

import argparse

import numpy as np
import pandas as pd

from lorp.io import write_json, write_text
from lorp.params.config import check_force_k, load
from lorp.select.rls import decay_profile, score
from lorp.stage import run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("similarity")
    parser.add_argument("--out", required=True)
    parser.add_argument("--decay", required=True, help="CSV: mean similarity per block distance")
    args = parser.parse_args()

    force_k = load().rls.force_k
    s = np.load(args.similarity)
    check_force_k(force_k, len(s))
    result = score(s, force_k=force_k)
    write_json(args.out, result)
    write_text(args.decay, pd.DataFrame(decay_profile(s)).to_csv(index=False))
    print(result)


if __name__ == "__main__":
    run(main)
