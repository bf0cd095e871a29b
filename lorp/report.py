"""Render the report notebook with papermill: an executed .ipynb and its HTML, each replaced only when complete."""

from pathlib import Path

import nbformat
import papermill
from nbconvert import HTMLExporter

from lorp.io import write_text


def render(notebook: str | Path, out: str | Path, parameters: dict[str, str]) -> Path:
    """Execute notebook with parameters into out (.ipynb) and write out's .html beside it; returns the HTML path."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    papermill.execute_notebook(str(notebook), str(tmp), parameters=parameters, kernel_name="python3",
                               progress_bar=False)
    html, _ = HTMLExporter().from_notebook_node(nbformat.read(tmp, as_version=4))
    tmp.replace(out)
    write_text(out.with_suffix(".html"), html)
    return out.with_suffix(".html")
