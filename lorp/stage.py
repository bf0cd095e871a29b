"""What every stage script shares: its error handling, the per-model stages' arguments and their records."""

import argparse
import signal
import sys
from collections.abc import Callable
from pathlib import Path

from lorp.errors import LorpError
from lorp.io import peak_rss_mib, write_json


def run(main: Callable[[], None]) -> None:
    """Call a stage's main(): a refusal (LorpError) prints one line and exits 1; a real bug keeps its traceback.

    SIGINT gets Python's own handler back: DVC ignores SIGINT while it runs a stage and the stage can inherit
    that, which would make Ctrl-C (or a scheduler's SIGINT) leave the stage running.
    """
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        main()
    except LorpError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)


def model_parser(description: str, **options: str) -> argparse.ArgumentParser:
    """A per-model stage's arguments: the model's key in params.yaml, its dense checkpoint folder, then one required
    --option per keyword (underscores as dashes) with its help text ("" for none)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("key", help="the model's key in params.yaml models")
    parser.add_argument("model", help="the dense checkpoint folder")
    for name, text in options.items():
        parser.add_argument(f"--{name.replace('_', '-')}", required=True, help=text or None)
    return parser


def write_record(path: str | Path, record: dict) -> None:
    """A stage's record with the stage's peak RSS, which the preflight's memory estimate reads back."""
    write_json(path, record | {"peak_rss_mib": peak_rss_mib()})
