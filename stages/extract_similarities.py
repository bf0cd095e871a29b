"""Stage 3: one forward pass over the calibration windows -> the N x N block similarity S."""

import argparse

import numpy as np

from lorp import params as P
from lorp.io import read_json, write_json, write_npy
from lorp.models import load_model, load_tokenizer, max_positions, num_blocks, tokenizer_fingerprint
from lorp.similarity import block_input_similarity

parser = argparse.ArgumentParser()
parser.add_argument("model")
parser.add_argument("--windows", required=True)
parser.add_argument("--calibration-info", required=True)
parser.add_argument("--out", required=True)
parser.add_argument("--timing", required=True)
args = parser.parse_args()

params = P.load()
info = read_json(args.calibration_info)
fingerprint = tokenizer_fingerprint(load_tokenizer(args.model))
if info["tokenizer_fingerprint"] != fingerprint:
    raise SystemExit(f"calibration windows were tokenized by another tokenizer ({info['tokenizer_fingerprint']} "
                     f"!= {fingerprint}): re-run sample_calibration (dvc repro sample_calibration)")
model = load_model(args.model, params["model"]["dtype"], params["model"]["device"])
P.check_against_model(params, num_blocks(model.config), max_positions(model.config))
s, timing = block_input_similarity(model, np.load(args.windows), params["similarity"]["batch_size"])
write_npy(args.out, s)
write_json(args.timing, timing)
print(timing)
