"""The run's headline numbers, one small metrics file per model, so `dvc metrics show` reads as one table:
a row per model (and one for the selection), a column per number. The full records stay in reports/results/."""

import shutil
from pathlib import Path

from lorp.io import write_json

MIB = 2**20


def model_rows(ppl: dict, zeroshot: dict, bench: dict) -> dict[str, dict]:
    """{model: {"removed", "ppl": {set: ppl, "average"}, "acc": {task: acc, "average"}, "speed": {...},
    "size": {...}}} from the evaluate, zeroshot and bench records, which must cover the same models."""
    names = {"evaluate": list(ppl["ppl"]), "zeroshot": list(zeroshot["accuracy"]), "bench": list(bench["models"])}
    if len({tuple(sorted(v)) for v in names.values()}) != 1:
        raise ValueError(f"the records cover different models {names}: one of them is stale; rerun `dvc repro`")
    rows = {}
    for name in names["evaluate"]:
        perplexities, b = ppl["ppl"][name], bench["models"][name]
        rows[name] = {
            "removed": perplexities["removed"],
            "ppl": {k: round(v, 3) for k, v in perplexities.items() if k != "removed"},
            "acc": {k: round(v, 4) for k, v in zeroshot["accuracy"][name].items()},
            "speed": {"prefill_tok_s": b["prefill_tokens_per_s"], "decode_tok_s": b["decode_tokens_per_s"],
                      "prefill_x": round(b["prefill_speedup"], 3), "decode_x": round(b["decode_speedup"], 3),
                      "ideal_x": round(b["ideal_speedup"], 3)},
            "size": {"params_m": round(b["parameters"] / 1e6, 2),
                     "checkpoint_mib": round(b["checkpoint_bytes"] / MIB, 1),
                     "peak_mib": round(b["peak_memory_bytes"] / MIB, 1)}}
    return rows


def selection_row(rls: dict, timing: dict) -> dict:
    """RLS, K and the cost of the one calibration pass every method's selection shares."""
    return {"rls": None if rls["rls"] is None else round(rls["rls"], 4), "k": rls["k"],
            "calibration": {"seconds": timing["seconds"], "tokens_per_s": timing["tokens_per_second"]}}


def write(folder: str | Path, rows: dict[str, dict]) -> None:
    """Replace folder with one <name>.json per row, built beside it first, so a failure leaves the old one whole."""
    folder = Path(folder)
    staging = folder.with_name(f".{folder.name}.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    for name, row in rows.items():
        write_json(staging / f"{name}.json", row)
    shutil.rmtree(folder, ignore_errors=True)
    staging.rename(folder)
