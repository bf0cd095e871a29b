"""S, A and RLS from the hooked pass equal a direct computation from output_hidden_states."""

import numpy as np
import pytest
import torch
from conftest import tiny_model

from lorp.select.rls import rls
from lorp.select.similarity import SimilarityError, block_input_similarity

pytestmark = pytest.mark.model  # builds or runs a model: not in make test-fast


def block_inputs(model, ids: np.ndarray) -> np.ndarray:
    """hidden_states[l] for l < N is the input of block l: (N, B, T, D) in float64, unit norm per token."""
    n = model.config.num_hidden_layers
    with torch.no_grad():
        hs = model(input_ids=torch.as_tensor(ids), output_hidden_states=True).hidden_states[:n]
    x = np.stack([h.double().numpy() for h in hs])
    return x / (np.linalg.norm(x, axis=-1, keepdims=True) + 1e-8)


def direct_similarity(x: np.ndarray) -> np.ndarray:
    """Per window token mean, then window mean."""
    s = np.einsum("ibtd,jbtd->bij", x, x).mean(axis=0) / x.shape[2]
    np.fill_diagonal(s, 1.0)
    return s


def direct_angular(x: np.ndarray) -> np.ndarray:
    """Per window arccos(cos)/pi at the last token, then window mean (Gromov et al. 2024)."""
    cos = np.einsum("ibd,jbd->bij", x[:, :, -1], x[:, :, -1])
    a = (np.arccos(np.clip(cos, -1, 1)) / np.pi).mean(axis=0)
    np.fill_diagonal(a, 0.0)
    return a


def test_hooked_pass_matches_direct(arch):
    model = tiny_model(arch)
    ids = np.random.default_rng(0).integers(3, 128, size=(5, 24))
    s, a, timing = block_input_similarity(model, ids, batch_size=2, progress=False)  # uneven last batch
    x = block_inputs(model, ids)
    ref = direct_similarity(x)
    assert s.shape == (6, 6) and np.allclose(s, s.T)
    assert np.abs(s - ref).max() <= 1e-5
    assert a.shape == (6, 6) and a.dtype == np.float64 and np.allclose(a, a.T) and (np.diag(a) == 0).all()
    assert np.abs(a - direct_angular(x)).max() <= 1e-5
    assert 0 < a[np.triu_indices(6, 1)].min() and a.max() <= 1
    assert rls(s) == pytest.approx(-np.log2(ref[np.triu_indices(6, 1)].mean()), abs=1e-5)
    assert timing["windows"] == 5 and timing["tokens"] == 120


class _Block(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = torch.nn.Linear(8, 8)

    def forward(self, hidden_states):
        return hidden_states + torch.tanh(self.proj(hidden_states))


class _KeywordDecoder(torch.nn.Module):
    """Calls its blocks as block(hidden_states=h), as some architectures do."""

    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Embedding(16, 8)
        self.layers = torch.nn.ModuleList([_Block() for _ in range(4)])

    def forward(self, input_ids, use_cache=False):
        h = self.embed(input_ids)
        for block in self.layers:
            h = block(hidden_states=h)
        return h


class _Toy(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.model = _KeywordDecoder()

    @property
    def base_model(self):
        return self.model


def test_keyword_hidden_states_are_captured():
    torch.manual_seed(0)
    toy = _Toy()
    ids = np.random.default_rng(1).integers(0, 16, size=(3, 10))
    got = block_input_similarity(toy, ids, 2, progress=False).s
    with torch.no_grad():
        h, states = toy.model.embed(torch.as_tensor(ids)), []
        for block in toy.model.layers:
            states.append(h.double().numpy())
            h = block(h)
    x = np.stack(states)
    x /= np.linalg.norm(x, axis=-1, keepdims=True) + 1e-8
    ref = np.einsum("ibtd,jbtd->bij", x, x).mean(axis=0) / 10
    np.fill_diagonal(ref, 1.0)
    assert np.abs(got - ref).max() <= 1e-5


def test_non_finite_hidden_states_are_reported():
    model = tiny_model("llama")
    with torch.no_grad():
        model.model.layers[2].mlp.down_proj.weight.fill_(float("inf"))
    with pytest.raises(SimilarityError, match="non-finite hidden state entering block 3"):
        block_input_similarity(model, np.ones((1, 8), dtype=np.int64) * 5, 1, progress=False)
