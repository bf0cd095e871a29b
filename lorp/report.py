"""Render the report notebook with papermill: an executed .ipynb (code kept) and its HTML (code hidden, to read like
a results section), each replaced only when complete."""

from pathlib import Path
from typing import Any

import nbformat
import papermill
from nbconvert import HTMLExporter

from lorp.io import write_text


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
