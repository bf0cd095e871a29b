"""Stage 0: refuse a bad params.yaml (or `dvc exp run -S` override) before any other stage runs.

It tracks the whole params.yaml, so any change runs it first (every model's fetch_model depends on its output,
whose content never changes, so passing the check reruns nothing), and DVC has deleted no other stage's outputs
yet when it refuses. Models already fetched are checked against their real depth and context length; a new model
is checked by its fetch_model stage. Every run also checks what the machine must provide (lorp.model.resources):
each model's source, device and dtype, the disk for the checkpoints not in DVC's cache yet and the memory of the
largest stage, and prints a one-screen summary with the time the last run's records predict.
"""

import argparse
from pathlib import Path

from lorp.io import write_json
from lorp.model.load import load_config, max_positions, num_blocks
from lorp.params.config import load, preflight
from lorp.params.preflight import machine_check
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
    summary, refusals = machine_check(params, Path.cwd())
    print(summary, flush=True)
    if refusals:  # the first, as the one line a refusal prints
        raise refusals[0]
    write_json(args.out, {"params.yaml": "valid"})
    print("params.yaml: valid for", ", ".join(params.models))


if __name__ == "__main__":
    run(main)
