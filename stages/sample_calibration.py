"""Stage 2: draw the calibration windows (token ids) and record where they came from."""

import argparse

from lorp.data.calibration import sample
from lorp.data.sources import check_source, mirror_root
from lorp.io import read_json, write_json, write_npy
from lorp.model.load import load_config, load_tokenizer, max_positions
from lorp.params.config import check_seqlen, load
from lorp.stage import run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("model")
    parser.add_argument("--sources", required=True, help="locate_data's record of the dataset source")
    parser.add_argument("--windows", required=True)
    parser.add_argument("--info", required=True)
    args = parser.parse_args()

    params = load()
    cal, mirror = params.calibration, mirror_root(params.data.mirror)
    check_seqlen("calibration.seqlen", cal.seqlen, max_positions(load_config(args.model)))
    check_source(read_json(args.sources), mirror)
    ids, info = sample(tokenizer=load_tokenizer(args.model), corpus=cal.corpus, n_samples=cal.n_samples,
                       seqlen=cal.seqlen, seed=cal.seed, mirror=mirror)
    write_npy(args.windows, ids)
    write_json(args.info, info)
    print(info)


if __name__ == "__main__":
    run(main)
