"""The report: notebooks/report.ipynb rendered by papermill for every model of params.yaml, into reports/
(the executed .ipynb keeps its code; the HTML shows only the results)."""

import argparse

from lorp import artefacts, sections  # noqa: F401  (sections: the code the notebook runs, a dep of this stage)
from lorp import params as P
from lorp.report import export_figures, render
from lorp.stage import run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("notebook")
    parser.add_argument("--out", required=True, help="executed notebook; the HTML goes beside it")
    parser.add_argument("--figures", required=True, help="folder for the figures as PNG (DVC image plots)")
    args = parser.parse_args()

    models = list(P.load().models)
    for key in models:  # every artefact there before the notebook starts, or one clear error
        artefacts.load(".", key)
    html = render(args.notebook, args.out, parameters={"models": models, "root": "."})
    figures = export_figures(html.read_text(), args.figures)
    print(f"wrote {args.out}, {html} and {len(figures)} figures in {args.figures}")


if __name__ == "__main__":
    run(main)
