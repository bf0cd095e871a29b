"""`make compare`: `dvc exp show` as one compact table, a row per experiment, branch or commit and model, a column per
method and budget label (average PPL, or the leaf --metric names), beside the dense PPL, RLS and K.

`dvc exp show` itself prints every metric leaf of every model as its own column (hundreds, all "…"); this keeps the
few that compare methods. Any argument other than --metric goes to `dvc exp show` (-A, --rev, -n, …).
"""

import argparse
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import PurePosixPath

import pandas as pd

METRICS_DIR = PurePosixPath("reports/metrics")
SETTLED = {None, "success"}  # executor states whose metrics are the experiment's own; queued/failed ones are blanked


def _metrics(rev: dict) -> dict[str, dict]:
    """{model: metrics} of one revision of `dvc exp show --json`, from reports/metrics/<model>.json."""
    files = ((rev.get("data") or {}).get("metrics")) or {}
    return {PurePosixPath(path).stem: entry["data"] for path, entry in files.items()
            if PurePosixPath(path).parent == METRICS_DIR and (entry or {}).get("data")}


def _row(metrics: dict, metric: str) -> dict[tuple[str, str], float | None]:
    """One model's cells: dense, RLS, K, then every method x budget label's `metric` leaf."""
    cells = {("dense", ""): (metrics.get("dense") or {}).get(metric),
             ("rls", ""): (metrics.get("selection") or {}).get("rls"),
             ("k", ""): (metrics.get("selection") or {}).get("k")}
    for method, labels in metrics.items():
        if method in ("dense", "selection") or not isinstance(labels, dict):
            continue
        cells.update({(method, label): leaf.get(metric) for label, leaf in labels.items() if isinstance(leaf, dict)})
    return cells


def _revisions(payload: list[dict]) -> Iterator[tuple[str, str, dict]]:
    """(name, status, revision) for every commit/branch row of `dvc exp show --json` and each of its experiments.

    A row's name is its branch or experiment name, else its short rev; status is the queue state of an experiment
    ("queued", "running", "failed", "success"), "error" when DVC could not read a revision, else empty."""
    for top in payload:
        name = top["rev"] if top["rev"] == "workspace" else top.get("name") or top["rev"][:7]
        yield name, "error" if top.get("error") else "", top
        for exp in top.get("experiments") or []:
            state = (exp.get("executor") or {}).get("state")
            rev = exp["revs"][0]
            status = "error" if rev.get("error") and state in SETTLED else state or ""
            yield exp.get("name") or rev.get("name") or rev["rev"][:7], status, rev if state in SETTLED else {}


def table(payload: list[dict], metric: str = "ppl") -> pd.DataFrame:
    """The compact view of a `dvc exp show --json` payload: index (experiment, model), columns status, dense, rls,
    k and (method, label). A revision without metrics files (queued, failed, before the pipeline ran) keeps one
    row with model "-" and blank cells, so it is still listed with its status."""
    rows, index = [], []
    for name, status, rev in _revisions(payload):
        models = _metrics(rev) or {"-": {}}
        for model, metrics in models.items():
            index.append((name, model))
            rows.append({("status", ""): status, **_row(metrics, metric)})
    frame = pd.DataFrame(rows, index=pd.MultiIndex.from_tuples(index, names=["experiment", "model"]))
    frame.columns = pd.MultiIndex.from_tuples(frame.columns)
    return frame


def _cell(value) -> str:
    """Blank when missing; four significant digits, whole numbers from 10^4 up (no exponents for large PPLs)."""
    if isinstance(value, str):
        return value
    if value is None or pd.isna(value):
        return ""
    return f"{value:.4g}" if abs(value) < 1e4 else f"{value:.0f}"


def render(frame: pd.DataFrame) -> str:
    return frame.astype(object).map(_cell).to_string()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m lorp.report.compare", description=__doc__, allow_abbrev=False,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--metric", default="ppl",
                        help="leaf under <method>.<label> to show, e.g. acc, ppl_std, blocks (default %(default)s)")
    args, dvc_args = parser.parse_known_args(argv)
    shown = subprocess.run([sys.executable, "-m", "dvc", "exp", "show", "--json", *dvc_args],
                           capture_output=True, text=True)
    if shown.returncode:
        sys.exit(f"error: dvc exp show failed:\n{shown.stderr.strip()}")
    print(render(table(json.loads(shown.stdout), args.metric)))


if __name__ == "__main__":
    main()
