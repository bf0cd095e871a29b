"""Stage 2: draw the calibration windows (token ids) and record where they came from."""

import argparse

from lorp import params as P
from lorp.calibration import sample
from lorp.io import write_json, write_npy
from lorp.models import load_config, load_tokenizer, max_positions, num_blocks

parser = argparse.ArgumentParser()
parser.add_argument("model")
parser.add_argument("--windows", required=True)
parser.add_argument("--info", required=True)
args = parser.parse_args()

params = P.load()
config = load_config(args.model)
P.check_against_model(params, num_blocks(config), max_positions(config))
cal = params["calibration"]
tokenizer = load_tokenizer(args.model)
ids, info = sample(tokenizer, cal["corpus"], cal["n_samples"], cal["seqlen"], cal["seed"])
write_npy(args.windows, ids)
write_json(args.info, info)
print(info)
