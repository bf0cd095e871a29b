"""A question's context run once for all its choices: the packing on cases worked by hand, then PlanLM against
lm-eval's own per-choice HFLM on every test architecture, dense and pruned, and on the real models' tasks."""

import copy
import json
import shutil

import pytest
import torch
from conftest import tiny_model
from lm_eval.models.huggingface import HFLM

from lorp.evaluate import plan_lm, sharing_speedup
from lorp.evaluate.plan_lm import PlanLM, lm_eval_tokens
from lorp.evaluate.shared_context import additive_mask, group_requests, pack, packable, packed_length
from lorp.model.load import load_tokenizer
from lorp.model.patches import Run
from lorp.model.prune import remove_blocks


def test_pack_lays_out_one_context_and_its_choices():
    """Context [5, 6, 7], choices [8, 9] and [10]: the row is 5 6 7 8 (a choice's last token is only predicted),
    the choice [8, 9] reads positions 2 and 3, [10] reads position 2 only; a shorter second row is padded."""
    packed = pack([((5, 6, 7), [(8, 9), (10,)]), ((3,), [(4, 4, 4)])], pad=0)
    assert packed.ids.tolist() == [[5, 6, 7, 8], [3, 4, 4, 0]]
    assert packed.positions.tolist() == [[0, 1, 2, 3], [0, 1, 2, 0]]
    assert packed.reads == [[([2, 3], [8, 9]), ([2], [10])], [([0, 1, 2], [4, 4, 4])]]
    assert packed.allowed[0].int().tolist() == [[1, 0, 0, 0], [1, 1, 0, 0], [1, 1, 1, 0], [1, 1, 1, 1]]
    assert packed.allowed[1].int().tolist() == [[1, 0, 0, 0], [1, 1, 0, 0], [1, 1, 1, 0], [0, 0, 0, 1]]


def test_choices_see_the_context_and_themselves_only():
    """Two 3-token choices after a 2-token context: the second choice's tokens restart at position 2 and do not
    see the first choice."""
    packed = pack([((1, 2), [(3, 4, 5), (6, 7, 8)])], pad=0)
    assert packed.positions[0].tolist() == [0, 1, 2, 3, 2, 3]
    assert packed.allowed[0].int().tolist() == [[1, 0, 0, 0, 0, 0], [1, 1, 0, 0, 0, 0], [1, 1, 1, 0, 0, 0],
                                                [1, 1, 1, 1, 0, 0], [1, 1, 0, 0, 1, 0], [1, 1, 0, 0, 1, 1]]
    mask = additive_mask(packed.allowed, torch.float32)
    assert mask.shape == (1, 1, 6, 6) and mask[0, 0, 4, 2] == torch.finfo(torch.float32).min and mask[0, 0, 4, 4] == 0


def test_requests_that_cannot_be_packed_exactly_go_alone():
    requests = [("a", [1, 2], [3]), ("b", [1, 2], [4, 5]), ("c", [1, 2], [3]), ("d", [9], [1, 2, 3, 4, 5]),
                ("e", [7] * 6, [8] * 4)]
    groups, alone = group_requests(requests, max_length=8, window=None)
    assert groups == {(1, 2): {(3,): [0, 2], (4, 5): [1]}, (9,): {(1, 2, 3, 4, 5): [3]}} and alone == [4]
    groups, alone = group_requests(requests, max_length=8, window=4)  # 9 1 2 3 4: five inputs, past the window
    assert set(groups) == {(1, 2)} and alone == [3, 4]
    assert packable([1], [2], 1, None) and not packable([1, 2], [3], 1, None)
    assert packed_length(((1, 2), [(3,), (4, 5)])) == 3
    assert lm_eval_tokens(requests, max_length=8) == 2 + 3 + 5 + 8  # [1, 2] once for the one-token choices


TEXTS = [("The cat sat on", [" the mat", " a hat", " the mat and slept", " it"]),
         ("One two three four five six", [" seven", " seven eight", " eight"]),
         ("Rain", [" falls", " falls", " rises slowly"]),  # a repeated choice
         ("A", [" b c d e f g"])]


def requests_of(tokenizer):
    return [((c, x), tokenizer(c).input_ids, tokenizer(x).input_ids) for c, choices in TEXTS for x in choices]


@pytest.mark.model
def test_shared_context_scores_every_request_as_lm_eval_does(arch, tiny_checkpoint):
    """Dense and pruned (the plan bypassed, resumed from the dense run's recorded inputs): every request's
    log-likelihood and greedy flag equal lm-eval's per-choice HFLM on the same model, with fewer tokens run."""
    tokenizer = load_tokenizer(tiny_checkpoint)
    model = tiny_model(arch, sliding_window=64)  # the test windows (4 tokens) would send every request alone
    requests = requests_of(tokenizer)
    lm = PlanLM(model, tokenizer, batch_size=2, starts=[1, 2])
    assert lm.share_context, f"{arch}: packing did not reproduce per-choice scoring on the probe"
    for removed in ([], [1, 4], [2]):
        lm.plan = Run(frozenset(removed), {}, min(removed, default=6))
        got = lm._loglikelihood_tokens(requests)
        want = HFLM(pretrained=remove_blocks(copy.deepcopy(model), removed), tokenizer=tokenizer,
                    batch_size=2)._loglikelihood_tokens(requests)
        assert [g[1] for g in got] == [w[1] for w in want]
        assert [g[0] for g in got] == pytest.approx([w[0] for w in want], rel=1e-5, abs=1e-5)
        assert lm.tokens["run"] < lm.tokens["per_choice"] == lm_eval_tokens(requests, lm.max_length)
    assert lm.states and all(set(v) == {1, 2} for v in lm.states.values())


@pytest.mark.model
def test_requests_past_the_sliding_window_are_scored_alone(tiny_checkpoint):
    """With the test's 4-token window, longer requests go through lm-eval's own loop; the rest are still packed."""
    tokenizer = load_tokenizer(tiny_checkpoint)
    model = tiny_model("gemma3")
    requests = [((c, x), [tokenizer.bos_token_id], tokenizer(x).input_ids[:2]) for c, x in [("", " ab"), ("", " c")]]
    requests += requests_of(tokenizer)
    lm = PlanLM(model, tokenizer, batch_size=2)
    assert lm.share_context and lm.window == 4
    got = lm._loglikelihood_tokens(requests)
    want = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=2)._loglikelihood_tokens(requests)
    assert [g[1] for g in got] == [w[1] for w in want]
    assert [g[0] for g in got] == pytest.approx([w[0] for w in want], rel=1e-5, abs=1e-5)
    assert 0 < lm.tokens["run"] <= lm.tokens["per_choice"]


@pytest.mark.model
def test_an_attention_without_custom_masks_is_scored_per_choice(tiny_checkpoint, monkeypatch):
    """Packing is off where the attention is not one known to apply a 4D mask as given, and when asked; scores
    then come from lm-eval's own loop."""
    tokenizer = load_tokenizer(tiny_checkpoint)
    model = tiny_model("llama")
    requests = requests_of(tokenizer)
    want = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=2)._loglikelihood_tokens(requests)
    monkeypatch.setattr(plan_lm, "PACKING_ATTENTION", ("flash_attention_2",))
    assert not PlanLM(model, tokenizer, batch_size=2).share_context
    monkeypatch.undo()
    plain = PlanLM(model, tokenizer, batch_size=2, share_context=False)
    assert not plain.share_context
    got = plain._loglikelihood_tokens(requests)
    assert [g[0] for g in got] == pytest.approx([w[0] for w in want], rel=1e-5, abs=1e-5)
    assert plain.tokens["run"] == plain.tokens["per_choice"]


@pytest.mark.model
def test_zeroshot_speedup_record(tiny_checkpoint, mirror, tmp_path, monkeypatch):
    """make bench's record on a tiny project: both ways timed in every round, the same examples scored the same,
    fewer tokens shared; plans with a removal already timed are not timed twice."""
    monkeypatch.chdir(tmp_path)
    shutil.copytree(tiny_checkpoint, tmp_path / "models" / "tiny" / "dense")
    plans = [{"name": "a", "removed": [1, 2]}, {"name": "b", "removed": [2, 1]}, {"name": "c", "removed": [4]}]
    (tmp_path / "data" / "tiny").mkdir(parents=True)
    (tmp_path / "data" / "tiny" / "plans.json").write_text(json.dumps(plans))
    monkeypatch.setattr(sharing_speedup, "ROUNDS", 2)
    record = sharing_speedup.measure({"tiny": ("float32", "cpu")}, "sharing.json",
                                     tasks=["arc_easy", "hellaswag", "copa"], limit=2, batch_size=2,
                                     mirror=mirror)["tiny"]
    assert record == json.loads((tmp_path / "sharing.json").read_text())["tiny"]
    assert record["plans"] == ["dense", "a", "c"] and record["rounds"] == 2
    assert record["tasks"] == ["arc_easy", "copa"] and list(record["skipped"]) == ["hellaswag"]  # not in the mirror
    assert len(record["shared_seconds"]) == len(record["per_choice_seconds"]) == len(record["ratios"]) == 2
    assert record["same_correctness"] and record["shared_context"]
    assert 0 < record["tokens_shared"] < record["tokens_per_choice"]
