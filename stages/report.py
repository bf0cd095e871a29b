"""Stage 9: render notebooks/report.ipynb with papermill into reports/ (executed .ipynb + HTML)."""

import argparse
from pathlib import Path

import nbformat
import papermill
from nbconvert import HTMLExporter

from lorp import params as P
from lorp.io import write_text

parser = argparse.ArgumentParser()
parser.add_argument("notebook")
parser.add_argument("--out", required=True, help="executed notebook; the HTML goes beside it")
parser.add_argument("-p", nargs=2, action="append", default=[], metavar=("NAME", "PATH"),
                    help="notebook parameter (an input path)")
args = parser.parse_args()

P.load()
out = Path(args.out)
tmp = out.with_name(f".{out.name}.tmp")
papermill.execute_notebook(args.notebook, str(tmp), parameters=dict(args.p), kernel_name="python3",
                           progress_bar=False)
html, _ = HTMLExporter().from_notebook_node(nbformat.read(tmp, as_version=4))
tmp.replace(out)
write_text(out.with_suffix(".html"), html)
print(f"wrote {out} and {out.with_suffix('.html')}")
