"""Stage 9: render notebooks/report.ipynb with papermill into reports/ (executed .ipynb + HTML)."""

import argparse

from lorp import params as P
from lorp.report import render
from lorp.stage import run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("notebook")
    parser.add_argument("--out", required=True, help="executed notebook; the HTML goes beside it")
    parser.add_argument("-p", nargs=2, action="append", default=[], metavar=("NAME", "PATH"),
                        help="notebook parameter (an input path)")
    args = parser.parse_args()

    P.load()
    html = render(args.notebook, args.out, parameters=dict(args.p))
    print(f"wrote {args.out} and {html}")


if __name__ == "__main__":
    run(main)
