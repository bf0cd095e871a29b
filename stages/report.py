"""The report: notebooks/report.ipynb rendered by papermill for every model of params.yaml, into reports/
(the executed .ipynb keeps its code; the HTML shows only the results)."""

import argparse

from lorp.params.config import load
from lorp.report import html, inputs  # noqa: F401  (html: the code the notebook runs, a dep of this stage)
from lorp.report.render import export_figures, render
from lorp.stage import run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("notebook")
    parser.add_argument("--out", required=True, help="executed notebook; the HTML goes beside it")
    parser.add_argument("--figures", required=True, help="folder for the figures as PNG (DVC image plots)")
    args = parser.parse_args()

    models = list(load().models)
    for key in models:  # every artefact there before the notebook starts, or one clear error
        inputs.load(".", key)
    page = render(args.notebook, args.out, parameters={"models": models, "root": "."})
    figures = export_figures(page.read_text(), args.figures)
    print(f"wrote {args.out}, {page} and {len(figures)} figures in {args.figures}")


if __name__ == "__main__":
    run(main)
