"""Headline metrics, one file per model under reports/metrics/, for `dvc metrics show` / `dvc metrics diff`."""

import argparse

from lorp.io import read_json
from lorp.stage import run
from lorp.summary import model_rows, selection_row, write


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ppl", required=True)
    parser.add_argument("--zeroshot", required=True)
    parser.add_argument("--bench", required=True)
    parser.add_argument("--rls", required=True)
    parser.add_argument("--timing", required=True)
    parser.add_argument("--out", required=True, help="folder of <model>.json files and selection.json")
    args = parser.parse_args()

    rows = model_rows(read_json(args.ppl), read_json(args.zeroshot), read_json(args.bench))
    rows["selection"] = selection_row(read_json(args.rls), read_json(args.timing))
    write(args.out, rows)
    print(f"wrote {len(rows)} metrics files to {args.out}")


if __name__ == "__main__":
    run(main)
