"""Headline metrics of one model, reports/metrics/<model>.json, for `dvc metrics show` / `dvc metrics diff`."""

import argparse

from lorp.io import read_json, write_json
from lorp.report.metrics import model_metrics
from lorp.stage import run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    for name in ("plans", "ppl", "zeroshot", "bench", "study", "rls", "model-info", "out"):
        parser.add_argument(f"--{name}", required=True)
    args = parser.parse_args()

    metrics = model_metrics(plans=read_json(args.plans), ppl=read_json(args.ppl), zeroshot=read_json(args.zeroshot),
                            bench=read_json(args.bench), study=read_json(args.study), rls=read_json(args.rls),
                            model_info=read_json(args.model_info))
    write_json(args.out, metrics)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    run(main)
