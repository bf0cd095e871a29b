"""The report's recovery section on metrics whose answer is known: the table's cells and the computed claims."""

from lorp.report import recovery

METRICS = {
    "dense": {"ppl": 10.0, "acc": 0.6},
    "selection": {"rls": 0.7, "k": 3},
    "lorp": {"p27": {"blocks": 8, "ppl": 1000.0, "acc": 0.3}},
    "shortgpt": {"p27": {"blocks": 8, "ppl": 100.0, "acc": 0.4}},
    "last": {"p27": {"blocks": 8, "ppl": 300.0, "acc": 0.35}},
    "recovery": {"lorp": {"p27": {"linear": {"ppl": 50.0, "acc": 0.45}, "lora": {"ppl": 30.0, "acc": 0.5}}},
                 "shortgpt": {"p27": {"linear": {"ppl": 80.0, "acc": 0.41}}},
                 "last": {"p27": {"linear": {"ppl": 400.0, "acc": 0.3}}}},
}
RECORD = {"plans": {"lorp-p27+linear": {"seconds": 2.0, "tokens": 8192},
                    "shortgpt-p27+linear": {"seconds": 3.0, "tokens": 8192},
                    "last-p27+linear": {"seconds": 3.0, "tokens": 8192, "same_fit_as": "x-p27+linear"},
                    "lorp-p27+lora": {"seconds": 100.0, "tokens": 20480}}}
SEEDS = {"lorp-p27": {"std": 5.0}, "shortgpt-p27": {"std": 4.0}}


def test_table_rows_and_cells():
    frame = recovery.table(METRICS, RECORD)
    assert list(frame.index) == ["lorp-p27", "shortgpt-p27", "last-p27"]
    assert frame.loc["lorp-p27", "PPL ↓ as pruned"] == "1,000" and frame.loc["lorp-p27", "PPL ↓ +linear"] == "50.00"
    assert frame.loc["shortgpt-p27", "PPL ↓ +lora"] == "–" and frame.loc["lorp-p27", "acc ↑ +lora"] == "0.500"
    assert frame.loc["lorp-p27", "lora cost"] == "100.0 s, 20,480 tok"


def test_claims_say_the_ranking_changes_and_judge_the_margin():
    sentences = recovery.claims(METRICS, SEEDS, RECORD)
    linear = next(s for s in sentences if "linear recovery of 3 plans" in s)
    assert "lowers average PPL for 2 of them" in linear
    assert "best after it is lorp (50.00), where before it shortgpt was (100.0: the ranking changes)" in linear
    assert ("margin over shortgpt is 30.00: larger than 2 x the larger standard deviation over calibration seeds "
            "(10.00): distinguishable." in linear)  # the seeds' sd of the plans as pruned: 5 and 4
    lora = next(s for s in sentences if "lora recovery of 1 plans" in s)
    assert "brings lorp from 1,000 to 30.00" in lora
    assert "linear recovery took 5.0 s in all for 2 distinct plans on this run's device." in sentences


def test_the_margin_is_judged_on_the_recovered_plans_windows_too():
    """lorp+linear beats shortgpt+linear by a constant 0.2 nats per token on every window: the paired interval is
    above zero. Against a window-by-window tie (shortgpt's windows equal lorp's) it includes zero, and the verdict
    follows although the seed spread alone would call the margin."""
    windows = [2.0, 4.0, 3.0, 5.0, 1.0, 3.5]
    record = {"eval_windows": {"c4": {"windows": 6, "seqlen": 11}},
              "window_nll": {"lorp-p27+linear": {"c4": [10 * v for v in windows]},
                             "shortgpt-p27+linear": {"c4": [10 * (v + 0.2) for v in windows]},
                             "last-p27+linear": {"c4": [10 * (v + 1) for v in windows]}}}
    linear = next(s for s in recovery.claims(METRICS, SEEDS, RECORD, record) if "linear recovery" in s)
    assert "its 95 % evaluation-sample interval (paired bootstrap over the evaluation windows) is" in linear
    assert "above zero; larger than 2 x the larger standard deviation" in linear and linear.endswith("distinguishable.")
    record["window_nll"]["shortgpt-p27+linear"] = record["window_nll"]["lorp-p27+linear"]
    linear = next(s for s in recovery.claims(METRICS, SEEDS, RECORD, record) if "linear recovery" in s)
    assert "is 0.00 to 0.00, which includes zero" in linear and linear.endswith("not distinguishable.")
    unseeded = next(s for s in recovery.claims(METRICS, {}, RECORD, None) if "linear recovery" in s)
    assert unseeded.endswith("no spread over calibration seeds was measured for lorp or shortgpt, so whether the "
                             "margin exceeds noise is unknown.")


def test_readme_markdown_is_the_table_and_the_claims():
    run = {"key": "m", "metrics": METRICS, "recovery": RECORD, "study": {"seed_summary": SEEDS}}
    text = recovery.markdown(run)
    assert text.startswith("Recovery (`reports/results/m/recovery.json`")
    assert "| plan | blocks removed | PPL ↓ as pruned | PPL ↓ +linear | PPL ↓ +lora |" in text
    assert "| lorp-p27 | 8 | 1,000 | 50.00 | 30.00 |" in text
    assert text.endswith(" ".join(recovery.claims(METRICS, SEEDS, RECORD)))
    assert "distinguishable against" not in recovery.markdown(run | {"study": None})


def test_added_cost_is_the_recover_stage_and_the_recovered_plans_scoring():
    run = {"key": "m", "metrics": METRICS, "recovery": RECORD | {"seconds": 600.0}, "study": None,
           "ppl": {"plan_seconds": {"dense": 9.0, "lorp-p27": 4.0, "lorp-p27+linear": 5.0, "lorp-p27+lora": 7.0}},
           "zeroshot": {"plan_seconds": {"dense": 20.0, "lorp-p27": 8.0, "lorp-p27+linear": 10.0,
                                         "lorp-p27+lora": 50.0}}}
    assert recovery.added_seconds(run) == {"recover": 600.0, "evaluate": 12.0, "zeroshot": 60.0}
    sentence = "Recovery added 11.2 min to m's run: recover 10.0 min, evaluate 12.0 s, zeroshot 60.0 s"
    assert recovery.markdown(run).split(" (evaluate and zeroshot")[0].endswith(sentence)
    assert recovery.added_seconds(run | {"ppl": {}}) is None  # records from before plan_seconds: no claim
