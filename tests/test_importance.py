"""Block importance: the cached path equals the plain forward under skip_blocks, and the rules rank as they say."""

import numpy as np
import pytest
import torch
import transformers
from conftest import tiny_model
from torch.nn import functional

from lorp.model import forward
from lorp.model.blocks import skip_blocks
from lorp.model.forward import ResumeError, Runner, head_logits, perplexity, token_nll
from lorp.select.importance import (
    ImportanceError,
    ablation_curve,
    marginal_costs,
    plan_costs,
    sleb_order,
    speedup_benchmark,
)
from lorp.select.methods import selection_order

pytestmark = pytest.mark.model  # builds or runs a model: not in make test-fast

SCORED_ARCHS = ["llama", "mistral", "qwen2", "gemma3", "gpt2", "gpt_neox"]
EXACT_ARCHS = [*SCORED_ARCHS, "qwen3-sliding", "gemma2"]
CYCLE = 16  # the designed models' tokens 3..18 each predict their cyclic successor


def random_ids(n: int = 5, seqlen: int = 16) -> np.ndarray:
    return np.random.default_rng(0).integers(3, 300, size=(n, seqlen))


def cyclic_ids(n: int = 4, seqlen: int = 12) -> np.ndarray:
    starts = np.random.default_rng(0).integers(0, CYCLE, size=n)
    return 3 + (starts[:, None] + np.arange(seqlen)) % CYCLE


@torch.no_grad()
def designed_llama(coefficients: list[float], real: int | None = None, offset: float = 0.0):
    """A tiny Llama whose block i adds coefficients[i] * u to every token, u a direction the head ignores.

    Token t embeds as e_t + offset * u and the head scores its successor by <e_t, normed h>, so the loss
    grows with |offset + sum of kept coefficients|: the rms norm shrinks the logit as u's share grows.
    Every block but `real` is that constant shift alone (o_proj and down_proj zero); `real` keeps its
    random attention and MLP on top.
    """
    model = tiny_model("llama", attention_bias=True, tie_word_embeddings=False)
    d, u = model.config.hidden_size, model.config.hidden_size - 1
    model.model.embed_tokens.weight.zero_()
    model.lm_head.weight.zero_()
    for k in range(CYCLE):
        model.model.embed_tokens.weight[3 + k, k] = 1.0
        model.model.embed_tokens.weight[3 + k, u] = offset
        model.lm_head.weight[3 + (k + 1) % CYCLE, k] = 1.0
    for i, (block, c) in enumerate(zip(model.model.layers, coefficients, strict=True)):
        if i != real:
            block.self_attn.o_proj.weight.zero_()
            block.mlp.down_proj.weight.zero_()
        block.self_attn.o_proj.bias.copy_(c * torch.eye(d)[u])
    return model


@pytest.mark.parametrize("arch", EXACT_ARCHS)
@torch.no_grad()
def test_resuming_at_a_block_equals_the_plain_forward_with_blocks_skipped(arch):
    model, batch = tiny_model(arch), torch.as_tensor(random_ids(3, 20))
    runner = Runner(model, batch[:1, :8])
    _, states = runner.run(batch, capture=True)
    for b in range(6):
        for skipped in ({b}, {b, 5}, {min(b + 1, 5)}, {b, min(b + 2, 5)}):
            with skip_blocks(model, skipped):
                want = model(input_ids=batch, use_cache=False).logits
            hidden, _ = runner.run(batch, skipped, start=b, state=states[b])
            assert torch.equal(head_logits(model, hidden), want)
            nll = functional.cross_entropy(want[:, :-1].reshape(-1, want.size(-1)), batch[:, 1:].reshape(-1),
                                           reduction="sum")
            assert token_nll(model, hidden, batch) == pytest.approx(float(nll), rel=1e-6)


@pytest.mark.parametrize("arch", ["llama", "gemma2"])  # gemma2: softcapped logits
@torch.no_grad()
def test_loss_over_slices_of_rows_and_vocabulary_equals_the_full_cross_entropy(arch, monkeypatch):
    model, batch = tiny_model(arch), torch.as_tensor(random_ids(3, 20))
    logits = model(input_ids=batch, use_cache=False).logits
    want = functional.cross_entropy(logits[:, :-1].reshape(-1, logits.size(-1)), batch[:, 1:].reshape(-1),
                                    reduction="sum")
    hidden = model.base_model(input_ids=batch, use_cache=False).last_hidden_state
    monkeypatch.setattr(forward, "VOCAB_SLICE", 7)  # 46 column blocks, the last one partial
    monkeypatch.setattr(forward, "ROW_BLOCK", 5)  # row blocks of 5 over 57 targets, the last one partial
    assert token_nll(model, hidden, batch) == pytest.approx(float(want), rel=1e-6)


@pytest.mark.parametrize("arch", SCORED_ARCHS)
def test_cached_ablation_and_sleb_equal_the_naive_ones(arch):
    model, ids = tiny_model(arch), random_ids()
    curve = fast = ablation_curve(model, ids, batch_size=2, protected=[0])
    slow = ablation_curve(model, ids, batch_size=2, protected=[0], cached=False)
    assert fast["ppl"][0] is None and slow["ppl"][0] is None
    assert fast["dense_ppl"] == pytest.approx(slow["dense_ppl"], rel=1e-5)
    assert fast["ppl"][1:] == pytest.approx(slow["ppl"][1:], rel=1e-5)

    fast = sleb_order(model, ids, rounds=3, batch_size=2, protected=[0])
    slow = sleb_order(model, ids, rounds=3, batch_size=2, protected=[0], cached=False)
    reused = sleb_order(model, ids, rounds=3, batch_size=2, protected=[0], first_round=curve)
    assert fast["order"] == slow["order"] == reused["order"] and 0 not in fast["order"]
    assert reused["ppl"] == fast["ppl"] and reused["dense_ppl"] == fast["dense_ppl"]
    assert fast["ppl"] == pytest.approx(slow["ppl"], rel=1e-5)
    assert fast["dense_ppl"] == pytest.approx(slow["dense_ppl"], rel=1e-5)


@pytest.mark.parametrize("arch", ["llama", "gemma3", "gpt2"])
def test_cached_marginal_costs_equal_the_naive_ones(arch):
    model, ids = tiny_model(arch), random_ids()
    order = [3, 1, 3, 5, 0]  # the repeated 3 changes nothing
    fast = marginal_costs(model, ids, order=order, batch_size=2)
    slow = marginal_costs(model, ids, order=order, batch_size=2, cached=False)
    assert len(fast["ppl"]) == len(fast["cost"]) == len(order)
    assert fast["ppl"] == pytest.approx(slow["ppl"], rel=1e-5)
    assert fast["cost"][2] == 0.0 and fast["ppl"][2] == fast["ppl"][1]
    with skip_blocks(model, {0, 1, 3, 5}):
        assert fast["ppl"][-1] == pytest.approx(perplexity(model, ids, batch_size=2)["ppl"], rel=1e-5)


def test_plan_costs_compute_each_cumulative_set_once_and_equal_marginal_costs(monkeypatch):
    model, ids = tiny_model("gemma3"), random_ids()  # 5 windows in batches of 2: 3 batches
    plans = [{"name": "sleb-2", "method": "sleb", "removed": [1, 3], "scores": {"sleb_order": [3, 1]}},
             {"name": "sleb-3", "method": "sleb", "removed": [1, 3, 5], "scores": {"sleb_order": [3, 1, 5]}},
             {"name": "same", "method": "sleb", "removed": [1, 3, 5], "scores": {"sleb_order": [3, 1, 5]}},
             {"name": "oneshot", "method": "oneshot_ppl", "budget": 2, "removed": [1, 3],
              "scores": {"lowest_first": [1, 3, 4]}},
             {"name": "ends", "method": "last", "removed": [0, 5], "scores": {}}]
    runs, run = [], Runner.run

    def counted(self, *args, **kwargs):
        runs.append(args)
        return run(self, *args, **kwargs)

    monkeypatch.setattr(Runner, "run", counted)
    got = plan_costs(model, ids, plans=plans, batch_size=2)
    # dense, {3}, {1, 3}, {1, 3, 5}, {1}, {0}, {0, 5} per batch, and the probe: {1, 3} twice reached, run once
    assert len(runs) == 3 * 7 + 1
    assert got["plans"]["same"] == got["plans"]["sleb-3"]
    for p in plans:
        row = got["plans"][p["name"]]
        want = marginal_costs(model, ids, order=selection_order(p), batch_size=2)
        assert row.keys() == want.keys() | {"order"} and row["order"] == selection_order(p)
        assert row["dense_ppl"] == got["dense_ppl"] == pytest.approx(want["dense_ppl"], rel=1e-6)
        assert row["ppl"] == pytest.approx(want["ppl"], rel=1e-6)
        assert row["cost"] == pytest.approx(want["cost"], abs=1e-6 * want["dense_ppl"])


def test_identity_blocks_cost_nothing_and_the_real_block_is_never_removed_first():
    # Embeddings carry -u, the real block 2 adds it back: only block 2 matters.
    model, ids = designed_llama([0, 0, 1, 0, 0, 0], real=2, offset=-1.0), cyclic_ids()
    curve = ablation_curve(model, ids, batch_size=3)
    dense = curve["dense_ppl"]
    assert all(curve["ppl"][b] == pytest.approx(dense, rel=1e-12) for b in (0, 1, 3, 4, 5))
    assert curve["ppl"][2] > 1.5 * dense and int(np.argmax(curve["ppl"])) == 2

    sleb = sleb_order(model, ids, rounds=5, batch_size=3)
    assert sleb["order"] == [0, 1, 3, 4, 5]  # ties go to the lower index
    assert sleb["ppl"] == pytest.approx([dense] * 5, rel=1e-12)

    costs = marginal_costs(model, ids, order=[0, 1, 3, 4, 5, 2], batch_size=3)
    assert costs["cost"][:5] == pytest.approx([0.0] * 5, abs=1e-9 * dense)
    assert costs["cost"][5] > 0.5 * dense
    assert costs["ppl"][-1] == pytest.approx(curve["ppl"][2], rel=1e-6)


def test_sleb_greedy_order_differs_from_the_one_shot_ranking():
    # Loss grows with |sum of removed shifts|: alone 5 < 0 < 1 < 2 < 4 < 3, but once 5 (-0.1) and 0 (+0.3) are
    # gone, removing 2 (-0.5) brings the sum back to -0.3 while removing 1 (+0.4) pushes it to +0.6.
    shifts = [0.3, 0.4, -0.5, -0.9, 0.8, -0.1]
    model, ids = designed_llama(shifts), cyclic_ids()
    curve = ablation_curve(model, ids, batch_size=4)
    oneshot = sorted(range(6), key=lambda b: curve["ppl"][b])
    sleb = sleb_order(model, ids, rounds=5, batch_size=4)
    assert oneshot == [5, 0, 1, 2, 4, 3]
    assert sleb["order"] == [5, 0, 2, 1, 3]

    removed: set[int] = set()
    for chosen, ppl in zip(sleb["order"], sleb["ppl"], strict=True):  # each round is the rule's argmin
        scores = {}
        for b in set(range(6)) - removed:
            with skip_blocks(model, removed | {b}):
                scores[b] = perplexity(model, ids, batch_size=4)["ppl"]
        assert min(scores, key=scores.get) == chosen and scores[chosen] == pytest.approx(ppl, rel=1e-6)
        removed.add(chosen)


def test_speedup_benchmark_reports_both_paths():
    result = speedup_benchmark(tiny_model("llama"), random_ids(), batch_size=2, protected=[0, 5])
    for part in ("oneshot_ppl", "sleb_round"):
        figures = result[part]
        assert figures["identical"] is True
        assert figures["naive_s"] > 0 and figures["cached_s"] > 0 and figures["speedup"] > 0


def test_refusals():
    model, ids = tiny_model("llama"), random_ids()
    with pytest.raises(ImportanceError, match="rounds"):
        sleb_order(model, ids, rounds=6, batch_size=2, protected=[0])
    with pytest.raises(ResumeError, match=r"\[7\]"):
        ablation_curve(model, ids, batch_size=2, protected=[7])
    with pytest.raises(ImportanceError, match="n_windows x seqlen"):
        ablation_curve(model, ids[0], batch_size=2)
    torch.manual_seed(0)
    cohere = transformers.CohereForCausalLM(transformers.CohereConfig(
        vocab_size=320, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        logit_scale=0.5)).eval()
    with pytest.raises(ResumeError, match="head_logits"):  # scales its logits: not reproduced, refused
        ablation_curve(cohere, ids, batch_size=2)
