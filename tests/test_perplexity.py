"""Perplexity equals a direct computation: exp of the mean next-token NLL over every window's tokens."""

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from conftest import tiny_model, tiny_tokenizer

from lorp.data import evaluation_text
from lorp.perplexity import eval_windows, perplexity
from lorp.tokens import tokenize_stream, windows

TEXT = ("Depth pruning removes whole transformer blocks from a language model. The blocks whose input and output "
        "look alike change the hidden state least, so they are the first candidates to go. ") * 4


class Uniform(torch.nn.Module):
    """Equal logits everywhere: every next token has probability 1 / vocab, so perplexity is exactly vocab."""

    def __init__(self, vocab: int):
        super().__init__()
        self.vocab, self.anchor = vocab, torch.nn.Parameter(torch.zeros(1))

    def forward(self, input_ids, use_cache=False):
        return SimpleNamespace(logits=torch.zeros(*input_ids.shape, self.vocab))


def test_uniform_model_has_perplexity_vocab():
    ids = np.random.default_rng(0).integers(0, 50, size=(5, 9))
    result = perplexity(Uniform(50), ids, batch_size=2)
    assert result["ppl"] == pytest.approx(50.0, rel=1e-6)
    assert (result["tokens"], result["windows"]) == (5 * 8, 5)


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
    got = eval_windows(tokenizer, "wikitext2", 16, 3)
    assert got.shape == (3, 16)
    stream = tokenize_stream(tokenizer, evaluation_text("wikitext2"))
    assert np.array_equal(got.ravel(), stream[:48])
