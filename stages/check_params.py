"""Stage 0: refuse a bad params.yaml (or `dvc exp run -S` override) before any other stage runs.

It tracks the whole params.yaml, so any change runs it first (every model's fetch_model depends on its output,
whose content never changes, so passing the check reruns nothing). Models already fetched are checked against
their real depth and context length; a new model is checked by its fetch_model stage.
"""

import argparse
from pathlib import Path

from lorp.io import write_json
from lorp.model.load import load_config, max_positions, num_blocks
from lorp.params import load, preflight
from lorp.stage import run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    params = load()
    for key in params.models:
        checkpoint = Path("models") / key / "dense"
        if (checkpoint / "config.json").exists():
            config = load_config(checkpoint)
            preflight(params, key, num_blocks(config), max_positions(config))
    write_json(args.out, {"params.yaml": "valid"})
    print("params.yaml: valid for", ", ".join(params.models))


if __name__ == "__main__":
    run(main)
