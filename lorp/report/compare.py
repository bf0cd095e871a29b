"""`make compare`: `dvc exp show` as one compact table, a row per experiment, branch or commit and model, a column per
method and budget label (average PPL, or the leaf --metric names), beside the dense PPL, RLS and K, and the params
each experiment changed against the commit it ran on.

`dvc exp show` itself prints every metric leaf of every model as its own column (hundreds, all "…"); this keeps the
few that compare methods, wrapped to --width columns. Any other argument goes to `dvc exp show` (-A, --rev, -n, …).
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
    """One model's cells: dense, RLS, K, then every method x budget label's `metric` leaf, then every recovered
    plan's as `method+recovery` x label (metrics' recovery.<method>.<label>.<recovery>)."""
    cells = {("dense", ""): (metrics.get("dense") or {}).get(metric),
             ("rls", ""): (metrics.get("selection") or {}).get("rls"),
             ("k", ""): (metrics.get("selection") or {}).get("k")}
    for method, labels in metrics.items():
        if method in ("dense", "selection", "recovery") or not isinstance(labels, dict):
            continue
        cells.update({(method, label): leaf.get(metric) for label, leaf in labels.items() if isinstance(leaf, dict)})
    for method, labels in (metrics.get("recovery") or {}).items():
        for label, recovered in labels.items():
            cells.update({(f"{method}+{recovery}", label): leaf.get(metric) for recovery, leaf in recovered.items()
                          if isinstance(leaf, dict)})
    return cells


def _params(rev: dict) -> dict[str, object]:
    """params.yaml of one revision, flattened to {"section.key": value}."""
    def flat(node, prefix: str = "") -> Iterator[tuple[str, object]]:
        for key, value in node.items():
            if isinstance(value, dict) and value:
                yield from flat(value, f"{prefix}{key}.")
            else:
                yield f"{prefix}{key}", value
    data = ((((rev.get("data") or {}).get("params") or {}).get("params.yaml") or {}).get("data")) or {}
    return dict(flat(data))


def changed(params: dict[str, object], baseline: dict[str, object]) -> str:
    """The params that differ from the baseline's, as `key=value` (compact YAML-like values)."""
    def shown(value) -> str:
        return "null" if value is None else json.dumps(value, separators=(",", ":")).strip('"')
    absent = object()
    keys = sorted(k for k in params.keys() | baseline.keys() if params.get(k, absent) != baseline.get(k, absent))
    return " ".join(f"{k}={shown(params.get(k))}" for k in keys)


def _revisions(payload: list[dict]) -> Iterator[tuple[str, str, dict, str]]:
    """(name, status, revision, changed params) for every commit/branch row of `dvc exp show --json` and each of
    its experiments.

    A row's name is its branch or experiment name, else its short rev; status is the state of an experiment
    ("queued", "running", "failed", "success"; one run in the workspace by `dvc exp run` has no queue state and
    is "success" once it has results), "error" when DVC could not read a revision, else empty. Changed params: an
    experiment's against its commit, the workspace's against the first commit listed."""
    commits = [top for top in payload if top["rev"] != "workspace"]
    head = _params(commits[0]) if commits else {}
    for top in payload:
        name = top["rev"] if top["rev"] == "workspace" else top.get("name") or top["rev"][:7]
        diff = changed(_params(top), head) if top["rev"] == "workspace" else ""
        yield name, "error" if top.get("error") else "", top, diff
        for exp in top.get("experiments") or []:
            state = (exp.get("executor") or {}).get("state")
            rev = exp["revs"][0]
            if rev.get("error") and state in SETTLED:
                status = "error"
            else:
                status = state or ("success" if _metrics(rev) else "")
            yield (exp.get("name") or rev.get("name") or rev["rev"][:7], status, rev if state in SETTLED else {},
                   changed(_params(rev), _params(top)))


def table(payload: list[dict], metric: str = "ppl") -> pd.DataFrame:
    """The compact view of a `dvc exp show --json` payload: index (experiment, model), columns status, dense, rls,
    k, (method, label) and the changed params (last). A revision without metrics files (queued, failed, before the
    pipeline ran) keeps one row with model "-" and blank cells, so it is still listed with its status."""
    rows, index = [], []
    for name, status, rev, diff in _revisions(payload):
        models = _metrics(rev) or {"-": {}}
        for model, metrics in models.items():
            index.append((name, model))
            rows.append({("status", ""): status, **_row(metrics, metric), ("changed", ""): diff})
    frame = pd.DataFrame(rows, index=pd.MultiIndex.from_tuples(index, names=["experiment", "model"]))
    frame.columns = pd.MultiIndex.from_tuples(frame.columns)
    return frame[[c for c in frame.columns if c != ("changed", "")] + [("changed", "")]]


def _cell(value) -> str:
    """Blank when missing; four significant digits below 10^4, whole numbers with thousands separators up to 10^6,
    then three significant digits and a power of ten (4.39e8): a PPL that exploded is still one short cell."""
    if isinstance(value, str):
        return value
    if value is None or pd.isna(value):
        return ""
    if abs(value) < 1e4:
        return f"{value:.4g}"
    if abs(value) < 1e6:
        return f"{value:,.0f}"
    mantissa, exponent = f"{value:.2e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def render(frame: pd.DataFrame, width: int = 160) -> str:
    """The table as text, its columns wrapped into blocks that fit `width` characters."""
    return frame.astype(object).map(_cell).to_string(line_width=width)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m lorp.report.compare", description=__doc__, allow_abbrev=False,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--metric", default="ppl",
                        help="leaf under <method>.<label> to show, e.g. acc, ppl_std, blocks (default %(default)s)")
    parser.add_argument("--width", type=int, default=160, help="wrap the table to this many columns (default "
                                                              "%(default)s)")
    args, dvc_args = parser.parse_known_args(argv)
    shown = subprocess.run([sys.executable, "-m", "dvc", "exp", "show", "--json", *dvc_args],
                           capture_output=True, text=True)
    if shown.returncode:
        sys.exit(f"error: dvc exp show failed:\n{shown.stderr.strip()}")
    print(render(table(json.loads(shown.stdout), args.metric), args.width))


if __name__ == "__main__":
    main()
