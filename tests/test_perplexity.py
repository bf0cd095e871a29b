"""Perplexity equals a direct computation: exp of the mean next-token NLL over every window's tokens; a plan's
perplexity equals the plain forward's with its blocks skipped."""

import math

import numpy as np
import pytest
import torch
from conftest import tiny_model, tiny_tokenizer
from torch.nn import functional

from lorp.data.sources import evaluation_text
from lorp.data.tokens import tokenize_stream, windows
from lorp.evaluate.perplexity import eval_windows, plan_perplexities, plan_window_nll
from lorp.model.blocks import skip_blocks
from lorp.model.forward import ResumeError, perplexity
from lorp.model.patches import seconds_per_plan

pytestmark = pytest.mark.model  # builds or runs a model: not in make test-fast

TEXT = ("Depth pruning removes whole transformer blocks from a language model. The blocks whose input and output "
        "look alike change the hidden state least, so they are the first candidates to go. ") * 4


def random_ids(n: int = 5, seqlen: int = 16) -> np.ndarray:
    return np.random.default_rng(0).integers(3, 300, size=(n, seqlen))


@torch.no_grad()
def test_uniform_model_has_perplexity_vocab():
    model = tiny_model("llama", vocab_size=50, tie_word_embeddings=False)
    model.lm_head.weight.zero_()  # equal logits: every next token has probability 1 / vocab
    ids = np.random.default_rng(0).integers(0, 50, size=(5, 9))
    result = perplexity(model, ids, batch_size=2)
    assert result["ppl"] == pytest.approx(50.0, rel=1e-6)
    assert (result["tokens"], result["windows"]) == (5 * 8, 5)


@torch.no_grad()
def full_logits_ppl(model, ids: np.ndarray, batch_size: int) -> float:
    """The former computation: each batch's full float32 logits at once."""
    nll = 0.0
    for lo in range(0, len(ids), batch_size):
        batch = torch.as_tensor(ids[lo:lo + batch_size])
        logits = model(input_ids=batch, use_cache=False).logits[:, :-1].float()
        nll += float(functional.cross_entropy(logits.reshape(-1, logits.size(-1)), batch[:, 1:].reshape(-1),
                                              reduction="sum"))
    return math.exp(nll / (ids.shape[0] * (ids.shape[1] - 1)))


def test_chunked_loss_equals_full_logits(arch, monkeypatch):
    monkeypatch.setattr("lorp.model.forward.ROW_BLOCK", 7)  # 7 rows of logits at a time, not all 30
    model, ids = tiny_model(arch), random_ids()
    assert perplexity(model, ids, batch_size=2)["ppl"] == pytest.approx(full_logits_ppl(model, ids, 2), rel=1e-6)


@torch.no_grad()
def test_matches_direct_computation_on_a_short_text(mirror):
    tokenizer, model = tiny_tokenizer(mirror), tiny_model("llama", vocab_size=300)
    ids = windows(tokenize_stream(tokenizer, TEXT), None, 16, None)
    assert len(ids) >= 3
    nll, count = 0.0, 0
    for window in torch.as_tensor(ids):
        logp = torch.log_softmax(model(input_ids=window[None]).logits[0, :-1].double(), dim=-1)
        nll -= float(logp[torch.arange(len(window) - 1), window[1:]].sum())
        count += len(window) - 1
    hf = [float(model(input_ids=w[None], labels=w[None]).loss) for w in torch.as_tensor(ids)]

    result = perplexity(model, ids, batch_size=2)  # an odd window count: the last batch is partial
    assert result["tokens"] == count
    assert result["ppl"] == pytest.approx(math.exp(nll / count), rel=1e-5)
    assert result["ppl"] == pytest.approx(math.exp(sum(hf) / len(hf)), rel=1e-5)  # equal-length windows


def test_eval_windows_are_the_first_non_overlapping_windows(mirror):
    tokenizer = tiny_tokenizer(mirror)
    got = eval_windows(tokenizer, "wikitext2", 16, 3, mirror)
    assert got.shape == (3, 16)
    stream = tokenize_stream(tokenizer, evaluation_text("wikitext2", mirror))
    assert np.array_equal(got.ravel(), stream[:48])


PLANS = {"dense": [], "first": [0], "last": [5], "middle": [2, 4], "middle again": (4, 2), "ends": {0, 5},
         "most": range(1, 6)}


def test_plan_perplexities_equal_skip_blocks(arch):
    model, ids = tiny_model(arch), random_ids()
    got = plan_perplexities(model, ids, PLANS, batch_size=2)
    assert list(got) == list(PLANS) and got["middle"] == got["middle again"]
    for name, blocks in PLANS.items():
        with skip_blocks(model, blocks):
            assert got[name] == pytest.approx(perplexity(model, ids, batch_size=2)["ppl"], rel=1e-5), name


def test_plan_perplexities_refuse_missing_blocks():
    with pytest.raises(ResumeError, match=r"plan blocks \[6\] do not exist: the model has blocks 0..5"):
        plan_perplexities(tiny_model("llama"), random_ids(), {"a": [1], "b": [5, 6]}, batch_size=2)


def test_seconds_per_plan_charges_a_shared_run_once():
    keys = {"a": ("k1",), "b": ("k2",), "a again": ("k1",)}
    assert seconds_per_plan(keys, {("k1",): 2.0, ("k2",): 1.5}) == {"a": 2.0, "b": 1.5, "a again": 0.0}


@torch.no_grad()
def test_each_plan_records_its_own_scoring_time():
    """The per-plan seconds that ppl.json keeps (what scoring a recovered plan adds to evaluate): one entry per
    plan, the dense run timed with the pass that records the states, an identical plan charged nothing."""
    seconds: dict[str, float] = {}
    plans = PLANS | {"dense": []}
    plan_window_nll(tiny_model("llama"), random_ids(), plans, batch_size=2, seconds=seconds)
    assert set(seconds) == set(plans) and seconds["middle again"] == 0.0
    assert all(seconds[name] > 0 for name in plans if name != "middle again")
    plan_window_nll(tiny_model("llama"), random_ids(), plans, batch_size=2, seconds=seconds)  # a second set adds
    assert seconds["middle again"] == 0.0 and all(seconds[name] > 0 for name in plans if name != "middle again")
