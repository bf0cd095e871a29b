"""The evaluation-sample bootstrap on per-window losses whose answer is known, and the perplexity verdict it drives."""

import math

import numpy as np
import pytest

from lorp.report import conclusions, noise

SEQLEN = 11  # 10 predicted tokens per window


def record(per_window: dict[str, list[float]]) -> dict:
    """ppl.json of one dataset whose windows have these mean NLLs per token."""
    n = len(next(iter(per_window.values())))
    return {"eval_windows": {"wikitext2": {"windows": n, "seqlen": SEQLEN}},
            "window_nll": {name: {"wikitext2": [v * (SEQLEN - 1) for v in values]} for name, values in
                           per_window.items()}}


def test_interval_brackets_the_ppl_and_is_a_point_for_equal_windows():
    rng = np.random.default_rng(1)
    rec = record({"a": list(3 + 0.3 * rng.standard_normal(40)), "flat": [3.0] * 40})
    lo, hi = noise.ppl_interval(rec, "a")
    ppl = math.exp(np.mean([v / (SEQLEN - 1) for v in rec["window_nll"]["a"]["wikitext2"]]))
    assert lo < ppl < hi and hi - lo < 0.5 * ppl
    assert noise.ppl_interval(rec, "flat") == pytest.approx((math.exp(3), math.exp(3)))


def test_paired_margin_sees_a_small_constant_gap_that_window_noise_would_hide():
    """b is a everywhere plus a little: unpaired, the windows' spread swamps the gap; paired, it is clearly > 0."""
    rng = np.random.default_rng(2)
    base = 3 + 0.5 * rng.standard_normal(30)
    rec = record({"a": list(base), "b": list(base + 0.01)})
    lo, hi = noise.margin_interval(rec, "a", "b")
    assert 0 < lo < hi
    a_lo, a_hi = noise.ppl_interval(rec, "a")
    assert a_hi - a_lo > 10 * (hi - lo)  # each plan's own interval is far wider than the paired one
    assert noise.margin_interval(rec, "a", "a") == (0.0, 0.0)


def test_ppl_claim_judges_by_the_evaluation_sample_where_seeds_were_not_redrawn():
    rng = np.random.default_rng(3)
    base = 3 + 0.5 * rng.standard_normal(30)
    rec = record({"sleb-p20": list(base), "lorp-p20": list(base + 0.05), "last-p20": list(base + 1)})
    means = {name: math.exp(np.mean(v["wikitext2"]) / (SEQLEN - 1)) for name, v in rec["window_nll"].items()}
    m = {"dense": {"ppl": 10.0, "acc": 0.5}, "selection": {},
         **{n.split("-")[0]: {"p20": {"blocks": 6, "ppl": p, "acc": 0.5}} for n, p in means.items()}}
    claim = conclusions.ppl_claim(m, {}, "p20", 30, rec)
    assert claim["winners"] == ["sleb"] and claim["runner_up"] == "lorp" and claim["distinguishable"] is True
    assert "evaluation-sample interval" in claim["sentence"] and "no spread over calibration seeds" in claim["sentence"]
    assert conclusions.ppl_claim(m, {}, "p20", 30)["distinguishable"] is None  # no per-window losses, no seeds
