"""Conclusions follow the numbers: winners, ties, and the noise rules that decide "not distinguishable"."""

import math

import pytest

from lorp.report import conclusions


def metrics(ppl: dict[str, float], acc: dict[str, float] | None = None, blocks: int = 6) -> dict:
    acc = acc or dict.fromkeys(ppl, 0.5)
    return {"dense": {"ppl": 40.0, "acc": 0.5, "params_m": 1.0}, "selection": {"rls": 0.6, "k": 4},
            **{m: {"p20": {"blocks": blocks, "ppl": v, "acc": acc[m]}} for m, v in ppl.items()}}


def seeds(**std: float) -> dict:
    return {f"{m}-p20": {"mean": 0.0, "std": s, "n": 3, "values": []} for m, s in std.items()}


def test_labels_follow_block_counts_and_methods_skip_dense():
    m = {"dense": {}, "selection": {}, "lorp": {"p27": {"blocks": 8}, "p20": {"blocks": 6}}, "last": {}}
    assert conclusions.labels(m) == ["p20", "p27"]
    assert conclusions.methods(m) == ["lorp", "last"]


def test_binomial_se_and_examples():
    assert conclusions.binomial_se(0.5, 100) == pytest.approx(0.05)
    assert conclusions.binomial_se(1.0, 10) == 0
    assert conclusions.examples_scored({"examples": {"arc_easy": 10, "boolq": 10, "hellaswag": None}}) == 20


def test_ppl_margin_beyond_twice_the_larger_seed_sd_is_distinguishable():
    claim = conclusions.ppl_claim(metrics({"lorp": 50.0, "shortgpt": 100.0}), seeds(lorp=2.0, shortgpt=20.0), "p20", 30)
    assert claim["winners"] == ["lorp"] and claim["runner_up"] == "shortgpt"
    assert claim["margin"] == 50.0 and claim["threshold"] == 40.0 and claim["distinguishable"] is True
    assert claim["sentence"].startswith("At p20 (6 of 30 blocks removed), lorp gives the lowest")
    assert claim["sentence"].endswith(": distinguishable.")


def test_ppl_margin_within_the_seed_spread_is_not_distinguishable():
    claim = conclusions.ppl_claim(metrics({"lorp": 90.0, "shortgpt": 100.0}), seeds(lorp=6.0, shortgpt=1.0), "p20", 30)
    assert claim["distinguishable"] is False and claim["threshold"] == 12.0
    assert claim["sentence"].endswith("not distinguishable.")


def test_ppl_without_a_seed_spread_says_the_noise_is_unknown():
    claim = conclusions.ppl_claim(metrics({"lorp": 90.0, "shortgpt": 100.0}), seeds(lorp=6.0), "p20", 30)
    assert claim["distinguishable"] is None
    assert "no spread over calibration seeds was measured for shortgpt" in claim["sentence"]


def test_ties_are_named_together_and_the_runner_up_is_the_next_value():
    claim = conclusions.ppl_claim(metrics({"streamline": 80.0, "angular": 80.0, "lorp": 90.0}), {}, "p20", 30)
    assert claim["winners"] == ["streamline", "angular"] and claim["runner_up"] == "lorp"
    assert "streamline and angular (tied)" in claim["sentence"]
    everyone = conclusions.ppl_claim(metrics({"streamline": 80.0, "angular": 80.0}), {}, "p20", 30)
    assert everyone["runner_up"] is None and everyone["sentence"].endswith("every method ties.")


@pytest.mark.parametrize(("n", "distinguishable"), [(90, False), (9000, True)])
def test_zero_shot_margin_is_judged_on_the_binomial_error_at_the_example_count(n, distinguishable):
    m = metrics({"lorp": 90.0, "shortgpt": 100.0}, acc={"lorp": 0.55, "shortgpt": 0.50})
    claim = conclusions.acc_claim(m, n, 10, "p20")
    se = math.hypot(conclusions.binomial_se(0.55, n), conclusions.binomial_se(0.50, n))
    assert claim["winners"] == ["lorp"] and claim["threshold"] == pytest.approx(2 * se)
    assert claim["distinguishable"] is distinguishable
    assert f"{n} examples per average, at most 10 per task" in claim["sentence"]


def test_lorp_rank_counts_strictly_better_methods():
    m = metrics({"lorp": 90.0, "shortgpt": 80.0, "streamline": 80.0, "last": 1e6})
    assert conclusions.lorp_rank(m, "p20") | {"sentence": ""} == {"label": "p20", "rank": 3, "of": 4, "ratio": 90 / 80,
                                                         "sentence": ""}
    assert conclusions.lorp_rank(metrics({"shortgpt": 1.0}), "p20") is None


def test_model_claims_and_the_summary_across_models():
    m = metrics({"lorp": 50.0, "shortgpt": 100.0}, acc={"lorp": 0.6, "shortgpt": 0.4})
    zeroshot = {"limit": 100, "examples": {"arc_easy": 100, "boolq": 100}}
    found = conclusions.model_claims(m, {"seed_summary": seeds(lorp=1.0, shortgpt=1.0)}, zeroshot, 30)
    assert [c["metric"] for c in found] == ["ppl", "acc", "lorp_rank"]
    summary = conclusions.across_models({"a": found, "b": conclusions.model_claims(m, None, zeroshot, 30)})
    assert summary[0] == "Where LoRP ranks on average perplexity — a p20: 1 of 2; b p20: 1 of 2."  # LoRP first
    assert summary[1] == ("On average perplexity, LoRP is best (or tied best) at 2 of 2 model-budget pairs; the "
                          "winner's margin over the runner-up is distinguishable from noise at 1 of them (noise not "
                          "measured at 1).")
    assert summary[2].startswith("On zero-shot accuracy, LoRP is best (or tied best) at 2 of 2")
    behind = conclusions.across_models({"a": conclusions.model_claims(metrics({"lorp": 300.0, "last": 100.0}), None,
                                                                      zeroshot, 30)})
    assert behind[0] == "Where LoRP ranks on average perplexity — a p20: 2 of 2 (×3 the best PPL)."


def test_diagnosis_names_the_costliest_block_and_where_lorp_took_it():
    plans = [{"name": "lorp-p20", "method": "lorp",
              "scores": {"steps": [{"stage": 1, "cluster": 0, "block": 2, "r": 0.9, "mu": None},
                                   {"stage": 2, "cluster": 1, "block": 5, "r": 0.8, "mu": 0.7}]}}]
    marginal = {"dense_ppl": 10.0, "plans": {"lorp-p20": {"order": [2, 5], "ppl": [12.0, 120.0]}}}
    assert conclusions.step_factors(marginal, "lorp-p20") == [(2, 1.2), (5, 10.0)]
    importance = {"dense_ppl": 10.0, "ablation_ppl": [None, 11.0, 12.0, 11.0, 11.0, 50.0, None]}
    clusters = {"members": [[0, 1, 2, 3], [4, 5, 6]]}
    (sentence,) = conclusions.lorp_diagnosis(plans, marginal, importance, clusters)
    assert sentence == ("lorp-p20: its costliest block is 5, taken in Stage 2 from cluster 1 (blocks 4-6, member "
                        "redundancy r = 0.800); removed alone it gives calibration perplexity 50.00 against 10.00 "
                        "dense, and in the plan it multiplies perplexity by 10.")


def test_mcnemar_exact_p_on_known_splits():
    assert conclusions.mcnemar_p([1] * 10, [0] * 10) == pytest.approx(2 / 1024)  # 10 discordant, all one way
    assert conclusions.mcnemar_p([1, 0, 1, 0], [0, 1, 0, 1]) == 1.0  # an even split
    assert conclusions.mcnemar_p([1, 1, 0], [1, 1, 0]) == 1.0  # no discordant example
    assert conclusions.mcnemar_p([1] * 6 + [0], [0] * 6 + [1]) == pytest.approx(2 * (1 + 7) / 128)


def test_acc_claim_uses_the_paired_test_where_examples_are_recorded():
    m = metrics({"lorp": 50.0, "shortgpt": 60.0}, acc={"lorp": 0.7, "shortgpt": 0.5})
    zeroshot = {"correct": {"lorp-p20": {"copa": [1] * 7 + [0] * 3},
                            "shortgpt-p20": {"copa": [0] * 2 + [1] * 5 + [0] * 3}}}  # 2 discordant, both lorp's
    claim = conclusions.acc_claim(m, 10, 10, "p20", zeroshot)
    assert claim["winners"] == ["lorp"] and claim["p_value"] == pytest.approx(0.5) and claim["distinguishable"] is False
    assert "exact McNemar test on the 10 examples both scored gives p = 0.5" in claim["sentence"]
