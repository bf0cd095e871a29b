"""Stage 1: resolve the model's source and write a standard Hugging Face checkpoint."""

import argparse

from lorp.io import library_versions
from lorp.model.fetch import fetch
from lorp.model.load import load_config, max_positions, num_blocks
from lorp.params.config import load, preflight
from lorp.stage import run, write_record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("key", help="the model's key in params.yaml models")
    parser.add_argument("out", help="checkpoint folder to write")
    parser.add_argument("--info", required=True, help="JSON describing the fetched model")
    args = parser.parse_args()

    params = load()
    model = params.model(args.key)
    info = fetch(source=model.source, out_dir=args.out, dtype=model.dtype)
    config = load_config(args.out)
    preflight(params, args.key, num_blocks(config), max_positions(config))
    write_record(args.info, info | {"versions": library_versions()})
    print(info)


if __name__ == "__main__":
    run(main)
