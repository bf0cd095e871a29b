"""The per-model metrics file behind `dvc metrics show`: stable names, right numbers, stale inputs refused."""

import pytest

from lorp.report.metrics import SummaryError, model_metrics

PLANS = [{"name": f"{m}-{label}", "method": m, "label": label, "budget": b}
         for m in ("lorp", "shortgpt") for label, b in (("p20", 6), ("p27", 8))]


def records(names):
    ppl = {"ppl": {n: {"wikitext2": 10.0 + i, "average": 10.0 + i, "removed": i} for i, n in enumerate(names)}}
    zeroshot = {"accuracy": {n: {"copa": 0.5, "average": 0.5} for n in names}}
    bench = {"models": {n: {"prefill_speedup": 1.0 + i, "decode_speedup": 1.0, "ideal_speedup": 1.25}
                        for i, n in enumerate(names)}}
    return {"ppl": ppl, "zeroshot": zeroshot, "bench": bench}


def metrics(names, **overrides):
    return model_metrics(plans=PLANS, **records(names), rls={"rls": 0.65034, "k": 4},
                         model_info={"parameters": 134_515_008},
                         study={"seed_summary": {"lorp-p20": {"mean": 20.0, "std": 3.14159, "n": 3}}}) | overrides


def test_names_are_method_then_budget_label():
    out = metrics(["dense"] + [p["name"] for p in PLANS])
    assert set(out) == {"dense", "selection", "lorp", "shortgpt"}
    assert out["dense"] == {"ppl": 10.0, "acc": 0.5, "params_m": 134.52}
    assert out["selection"] == {"rls": 0.6503, "k": 4}
    assert out["lorp"]["p20"] == {"blocks": 6, "ppl": 11.0, "ppl_mean": 20.0, "ppl_std": 3.142, "acc": 0.5,
                                  "prefill_x": 2.0, "decode_x": 1.0, "ideal_x": 1.25}
    assert "ppl_std" not in out["shortgpt"]["p27"]  # no seed spread where the study has none
    assert out["shortgpt"]["p27"]["ppl"] == 14.0


def test_records_of_different_runs_are_refused():
    good = records(["dense"] + [p["name"] for p in PLANS])
    stale = records(["dense", "lorp-6"])
    with pytest.raises(SummaryError, match="stale"):
        model_metrics(plans=PLANS, ppl=good["ppl"], zeroshot=good["zeroshot"], bench=stale["bench"], study={},
                      rls={"rls": None, "k": 3}, model_info={"parameters": 1})


def test_undefined_rls_with_forced_k():
    """A forced K stands where RLS is undefined (mean S <= 0); the row says so instead of crashing."""
    names = ["dense"] + [p["name"] for p in PLANS]
    out = model_metrics(plans=PLANS, **records(names), study={}, rls={"rls": None, "k": 3},
                        model_info={"parameters": 1})
    assert out["selection"] == {"rls": None, "k": 3}


def test_recovered_plans_get_their_own_section_and_the_plans_speed():
    names = ["dense"] + [p["name"] for p in PLANS]
    recovered = ["lorp-p27+linear", "shortgpt-p27+linear", "lorp-p27+lora"]
    rec = records(names + recovered)
    rec["bench"] = records(names)["bench"]  # a recovered plan has no timing of its own: its plan's architecture
    out = model_metrics(plans=PLANS, **rec, study={}, rls={"rls": 0.7, "k": 3}, model_info={"parameters": 1})
    assert out["recovery"] == {"lorp": {"p27": {"linear": {"ppl": 15.0, "acc": 0.5},
                                                "lora": {"ppl": 17.0, "acc": 0.5}}},
                               "shortgpt": {"p27": {"linear": {"ppl": 16.0, "acc": 0.5}}}}
    assert set(out) == {"dense", "selection", "lorp", "shortgpt", "recovery"}
    missing = records(names + recovered)
    del missing["zeroshot"]["accuracy"]["lorp-p27+lora"]
    with pytest.raises(SummaryError, match="stale"):
        model_metrics(plans=PLANS, ppl=missing["ppl"], zeroshot=missing["zeroshot"], bench=rec["bench"], study={},
                      rls={"rls": 0.7, "k": 3}, model_info={"parameters": 1})
