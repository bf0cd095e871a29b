"""The study's headline numbers, one metrics file per model, named the same on every model and experiment.

`reports/metrics/<model>.json:<method>.<budget label>.ppl` (label p20 = 20% of the depth) means one thing in every
row of `dvc exp show` and `dvc metrics diff`; the full records stay in reports/results/<model>/.
"""

from lorp.errors import LorpError
from lorp.recover.recoveries import split_recovered
from lorp.report import noise

MIB = 2**20


class SummaryError(LorpError, ValueError):
    pass


def _check_same_models(records: dict[str, set[str]]) -> None:
    if len({tuple(sorted(v)) for v in records.values()}) != 1:
        raise SummaryError(f"the records cover different plans {records}: one of them is stale; rerun `dvc repro`")


def model_metrics(*, plans: list[dict], ppl: dict, zeroshot: dict, bench: dict, study: dict, rls: dict,
                  model_info: dict) -> dict:
    """{"dense": {...}, "selection": {"rls", "k"}, method: {label: {"blocks", "ppl", "ppl_lo", "ppl_hi", "ppl_mean",
    "ppl_std", "acc", "prefill_x", "decode_x", "ideal_x"}}, "recovery": {method: {label: {recovery: {"ppl", "ppl_lo",
    "ppl_hi", "acc"}}}}}; ppl_lo/ppl_hi: the 95 % evaluation-sample interval (lorp.report.noise); ppl_mean/ppl_std
    over the calibration draws where the study has them. A recovered plan keeps its plan's architecture, so its
    speed-ups are the plan's."""
    recovered = {name for name in ppl["ppl"] if split_recovered(name)[1] != "none"}
    recovered_zs = {name for name in zeroshot["accuracy"] if split_recovered(name)[1] != "none"}
    _check_same_models({"plans": {"dense"} | {p["name"] for p in plans}, "evaluate": set(ppl["ppl"]) - recovered,
                        "zeroshot": set(zeroshot["accuracy"]) - recovered_zs, "bench": set(bench["models"])})
    _check_same_models({"evaluate": recovered, "zeroshot": recovered_zs})
    spread = study.get("seed_summary", {})

    def interval(name: str) -> dict:  # the evaluation-sample 95 % interval, where ppl.json keeps per-window losses
        if "window_nll" not in ppl:
            return {}
        lo, hi = noise.ppl_interval(ppl, name)
        return {"ppl_lo": round(lo, 3), "ppl_hi": round(hi, 3)}

    out: dict = {"dense": {"ppl": round(ppl["ppl"]["dense"]["average"], 3), **interval("dense"),
                           "acc": _round(zeroshot["accuracy"]["dense"]["average"], 4),
                           "params_m": round(model_info["parameters"] / 1e6, 2)},
                 "selection": {"rls": None if rls["rls"] is None else round(rls["rls"], 4), "k": rls["k"]}}
    for p in plans:
        name, b = p["name"], bench["models"][p["name"]]
        row = {"blocks": p["budget"], "ppl": round(ppl["ppl"][name]["average"], 3), **interval(name)}
        if name in spread:
            row |= {"ppl_mean": round(spread[name]["mean"], 3), "ppl_std": round(spread[name]["std"], 3)}
        row |= {"acc": _round(zeroshot["accuracy"][name]["average"], 4), "prefill_x": round(b["prefill_speedup"], 3),
                "decode_x": round(b["decode_speedup"], 3), "ideal_x": round(b["ideal_speedup"], 3)}
        out.setdefault(p["method"], {})[p["label"]] = row
    by_name = {p["name"]: p for p in plans}
    for name in sorted(recovered):
        plan, recovery = split_recovered(name)
        p = by_name[plan]
        out.setdefault("recovery", {}).setdefault(p["method"], {}).setdefault(p["label"], {})[recovery] = {
            "ppl": round(ppl["ppl"][name]["average"], 3), **interval(name),
            "acc": _round(zeroshot["accuracy"][name]["average"], 4)}
    return out


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)
