"""The work model of lorp.evaluate.cost (`lorp cost`): hand counts on small cases, and the FLOPs torch counts in the
real code paths."""

import shutil

import numpy as np
import pytest
import torch
import yaml
from conftest import REPO, tiny_model
from torch.utils.flop_counter import FlopCounterMode

from lorp.cli import main
from lorp.evaluate.cost import (
    CostError,
    Unit,
    ablation_flops,
    blocks_run,
    cumulative_flops,
    plans_flops,
    similarity_flops,
    sleb_flops,
    study_flops,
    unit,
)
from lorp.evaluate.flops import flops_per_token
from lorp.evaluate.perplexity import plan_perplexities
from lorp.model.forward import PROBE_TOKENS
from lorp.select.importance import ablation_curve, cumulative_ppl, sleb_order
from lorp.select.similarity import block_input_similarity

pytestmark = pytest.mark.model  # builds or runs a model: not in make test-fast

U = Unit(block=1.0, head=10.0)  # at seqlen 2 a window costs 2 x blocks + 10 x heads (one predicted token)


def test_blocks_run():
    assert blocks_run(5, ()) == 5
    assert blocks_run(5, {1, 3}) == 3
    assert blocks_run(5, {1, 3}, start=3) == 1  # blocks 3 (removed) and 4
    assert blocks_run(5, {4}, start=4) == 0


def test_plans_count_one_dense_pass_and_each_distinct_set_from_its_first_block():
    # blocks: dense 5, {2}: 3 and 4, {2, 3}: 4 (the repeated {2} is free); heads: dense, {2}, {2, 3}
    assert plans_flops(U, 5, [(), (2,), (3, 2), [2]], windows=1, seqlen=2) == 2 * 8 + 10 * 3
    # no dense row: its pass runs, its head does not
    assert plans_flops(U, 5, [(2,)], windows=3, seqlen=2) == 3 * (2 * 7 + 10 * 1)
    # the head scores all but each window's first token
    assert plans_flops(Unit(0.0, 1.0), 5, [()], windows=2, seqlen=7) == 2 * 6


def test_ablation_sleb_and_cumulative_counts():
    # n = 4, block 0 protected: blocks dense 4, {1}: 2, {2}: 1, {3}: 0; heads 4
    assert ablation_flops(U, 4, [0], windows=1, seqlen=2) == 2 * 7 + 10 * 4
    # round 2 after removing 2: a pass without {2} (3 blocks), candidate 1 (block 3 + head), candidate 3 (head)
    assert sleb_flops(U, 4, [2, 1], [0], windows=1, seqlen=2) == 2 * 4 + 10 * 2
    assert sleb_flops(U, 4, [2], [0], windows=1, seqlen=2) == 0  # round 1 is the ablation curve
    # orders [2, 1], [2, 3], [2, 2]: dense 4; {2} from 2: block 3; {1, 2} from 1: block 3; {2, 3} from 3: none
    assert cumulative_flops(U, 4, [[2, 1], [2, 3], [2, 2]], windows=2, seqlen=2) == 2 * (2 * 6 + 10 * 4)
    assert similarity_flops(U, 4, windows=3, seqlen=2, hidden=5) == 3 * 2 * 4 + 3 * (2 + 1) * 2 * 4 * 4 * 5


def test_study_counts_extra_draws_and_only_new_sets():
    study = {"draws": [{"n_samples": 64, "plans": {"lorp-p20": [1]}},
                       {"n_samples": 2, "plans": {"lorp-p20": [1], "oneshot_ppl-p20": [2]}},
                       {"n_samples": 3, "plans": {"lorp-p20": [3]}}],
             "k_sweep": [{"blocks": [1]}, {"blocks": [2]}]}
    kwargs = {"calibration": (U, 10), "evaluation": (U, 5), "loss_windows": 1, "eval_windows": 100,
              "protected": [0]}
    similarity = (2 + 3) * (10 * 4 + 11 * 2 * 4 * 4 * 5)  # the extra draws' windows, never the default draw's 64
    ablation = 10 * 7 + 9 * 10 * 4  # the oneshot_ppl draw's curve on 1 window of 10 tokens
    evaluation = 100 * (5 * (4 + 1 + 0) + 4 * 10 * 2)  # dense pass, {2}, {3}; {1} is known
    assert study_flops(study, 4, 5, known=[(), [1]], **kwargs) == similarity + ablation + evaluation
    study["draws"][1]["plans"]["sleb-p20"] = [2]
    with pytest.raises(CostError, match="SLEB"):
        study_flops(study, 4, 5, known=[], **kwargs)


SEQLEN, WINDOWS, BATCH = 12, 3, 2  # a last batch shorter than the others


def counted(call) -> float:
    with FlopCounterMode(display=False) as counter:
        call()
    return counter.get_total_flops()


def test_counts_equal_the_flops_the_code_paths_run():
    """FlopCounterMode over the real calls = the work model with masked attention (what eager computes), once each
    run's 8-token probe (the full forward and the Runner's own head check) is taken off."""
    model = tiny_model("llama", attn_implementation="eager")
    n = model.config.num_hidden_layers
    ids = np.random.default_rng(0).integers(3, model.config.vocab_size, (WINDOWS, SEQLEN))
    u = unit(model, SEQLEN, masked=True)
    probe = 2 * flops_per_token(model, PROBE_TOKENS, masked=True) * PROBE_TOKENS
    protected = [0, n - 1]
    with torch.no_grad():
        curve = {}
        got = counted(lambda: curve.update(ablation_curve(model, ids, batch_size=BATCH, protected=protected)))
        assert got - probe == ablation_flops(u, n, protected, WINDOWS, SEQLEN)
        order = []
        got = counted(lambda: order.extend(sleb_order(model, ids, rounds=3, batch_size=BATCH, protected=protected,
                                                      first_round=curve)["order"]))
        # rounds 2 and 3 each start a Runner
        assert got - 2 * probe == sleb_flops(u, n, order, protected, WINDOWS, SEQLEN)
        orders = [[3, 1], [3, 2], [4]]
        got = counted(lambda: cumulative_ppl(model, ids, orders, BATCH))
        assert got - probe == cumulative_flops(u, n, orders, WINDOWS, SEQLEN)
        plans = {"dense": [], "a": [2, 4], "b": [4, 2], "c": [3]}
        got = counted(lambda: plan_perplexities(model, ids, plans, batch_size=BATCH))
        assert got - probe == plans_flops(u, n, plans.values(), WINDOWS, SEQLEN)
        got = counted(lambda: block_input_similarity(model, ids, BATCH, progress=False))
        assert got == similarity_flops(u, n, WINDOWS, SEQLEN, model.config.hidden_size)


def test_cost_command_needs_the_pipelines_records(tmp_path, monkeypatch, capsys):
    """`lorp cost KEYS --out F` (make bench) measures models of ./params.yaml that dvc repro has run, and refuses
    anything else before a model loads, nothing written."""
    monkeypatch.chdir(tmp_path)
    argv = ["cost", "smollm2", "--out", "compute.json"]
    assert main(argv) == 1
    assert "lorp cost: error: params.yaml not found" in capsys.readouterr().err
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    assert main(["cost", "nosuch", "--out", "compute.json"]) == 1
    assert "model 'nosuch' is not in params.yaml models" in capsys.readouterr().err
    (tmp_path / "models/smollm2/dense").mkdir(parents=True)
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "lorp cost: error: smollm2: data/smollm2/importance/importance.json" in err
    assert "reports/results/smollm2/study.json missing: run `dvc repro`" in err and "models/smollm2" not in err
    assert not (tmp_path / "compute.json").exists()


def test_scoring_speedup_needs_the_pipelines_windows(tmp_path, monkeypatch, capsys):
    """`lorp scoring-speedup` refuses a project whose pipeline has not run, naming the files, no traceback."""
    monkeypatch.chdir(tmp_path)
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    assert main(["scoring-speedup", "smollm2", "--out", "speedup.json"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("lorp scoring-speedup: error: smollm2: data/smollm2/calibration/windows.npy, "
                          "models/smollm2/dense missing: run `dvc repro`") and "Traceback" not in err
    assert not (tmp_path / "speedup.json").exists()


def test_zeroshot_speedup_needs_the_pipelines_plans(tmp_path, monkeypatch, capsys, mirror):
    """`lorp zeroshot-speedup` refuses a project whose pipeline has not run, naming the files, no traceback."""
    monkeypatch.chdir(tmp_path)
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["data"]["mirror"] = str(mirror)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    assert main(["zeroshot-speedup", "smollm2", "--out", "sharing.json"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("lorp zeroshot-speedup: error: smollm2: data/smollm2/plans.json, "
                          "models/smollm2/dense missing: run `dvc repro`") and "Traceback" not in err
    assert not (tmp_path / "sharing.json").exists()
