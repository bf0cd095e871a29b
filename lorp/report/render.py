"""Render the report notebook with papermill: an executed .ipynb (code kept) and its HTML (code hidden, to read like
a results section), each replaced only when complete."""

import base64
import re
from pathlib import Path
from typing import Any

import nbformat
import papermill
from nbconvert import HTMLExporter

from lorp.errors import LorpError
from lorp.io import staged_dir, write_text


def render(notebook: str | Path, out: str | Path, parameters: dict[str, Any]) -> Path:
    """Execute notebook with parameters into out (.ipynb) and write out's .html beside it without the input
    cells; returns the HTML path. The report notebook takes {"models": [keys], "root": checkout folder}."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.stem}.tmp{out.suffix}")
    papermill.execute_notebook(str(notebook), str(tmp), parameters=parameters, kernel_name="python3",
                               progress_bar=False)
    exporter = HTMLExporter(exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True)
    html, _ = exporter.from_notebook_node(nbformat.read(tmp, as_version=4))
    tmp.replace(out)
    write_text(out.with_suffix(".html"), html)
    return out.with_suffix(".html")


# nbconvert's sanitiser may reorder the <img> attributes (alt before src): match src anywhere in the tag.
FIGURE = re.compile(r'<img [^>]*src="data:image/png;base64,([A-Za-z0-9+/=]+)"[^>]*>\s*'
                    r"<figcaption><b>Figure (\d+)\.</b>")
CAPTION = re.compile(r"<figcaption><b>Figure \d+\.</b>")


class ReportError(LorpError, RuntimeError):
    pass


def export_figures(html: str, folder: str | Path) -> list[Path]:
    """The report's figures as figure-NN.png in folder (replaced whole): DVC image plots, which `dvc plots show`
    and `dvc plots diff` display offline, where their HTML for data plots needs Vega from a CDN."""
    names = {f"figure-{int(number):02d}.png": data for data, number in FIGURE.findall(html)}
    captions = len(CAPTION.findall(html))
    if len(names) != captions:
        raise ReportError(f"found {len(names)} images for {captions} figure captions in the report's "
                          "HTML: the <figure> markup lorp.report.figures.figure_html writes no longer matches "
                          "lorp.report.render.FIGURE; fix the pattern")
    with staged_dir(folder) as staging:
        for name, data in names.items():
            (staging / name).write_bytes(base64.b64decode(data))
    return [Path(folder) / name for name in names]
