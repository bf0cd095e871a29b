"""Stage 1: resolve model.source and write a standard Hugging Face checkpoint."""

import argparse

from lorp import params as P
from lorp.io import library_versions, write_json
from lorp.models import fetch, load_config, max_positions, num_blocks

parser = argparse.ArgumentParser()
parser.add_argument("out", help="checkpoint folder to write")
parser.add_argument("--info", required=True, help="JSON describing the fetched model")
args = parser.parse_args()

params = P.load()
info = fetch(params["model"]["source"], args.out, params["model"]["dtype"])
config = load_config(args.out)
P.check_against_model(params, num_blocks(config), max_positions(config))
write_json(args.info, info | {"versions": library_versions()})
print(info)
