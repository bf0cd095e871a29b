"""The analytical FLOPs model against an independent count, the models' own attention masks, and
torch.utils.flop_counter.FlopCounterMode, on the tiny architectures."""

import pytest
import torch
from conftest import tiny_model
from torch import nn
from torch.utils.flop_counter import FlopCounterMode
from transformers.pytorch_utils import Conv1D

from lorp.evaluate.flops import attention_flops, flops_per_token, linear_macs

pytestmark = pytest.mark.model  # builds or runs a model: not in make test-fast

BATCH, SEQLEN = 2, 12  # SEQLEN > the tiny sliding window (4), so windows bind


def _head_dim(cfg) -> int:
    return getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads


def expected_flops(model, seqlen: int) -> float:
    """Independent count: every Linear / Conv1D weight (LM head too) + full-causal or sliding attention per block."""
    cfg = model.config
    linear = sum(m.in_features * m.out_features for m in model.modules() if isinstance(m, nn.Linear))
    linear += sum(m.nx * m.nf for m in model.modules() if isinstance(m, Conv1D))
    default = "sliding_attention" if getattr(cfg, "sliding_window", None) else "full_attention"
    types = getattr(cfg, "layer_types", None) or [default] * cfg.num_hidden_layers
    attn = 0.0
    for kind in types:
        keys = [min(p, cfg.sliding_window) if kind == "sliding_attention" else p for p in range(1, seqlen + 1)]
        attn += 4 * _head_dim(cfg) * cfg.num_attention_heads * sum(keys) / seqlen
    return 2 * linear + attn


def _forward(model, **kwargs):
    ids = torch.randint(3, model.config.vocab_size, (BATCH, SEQLEN), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        return model(input_ids=ids, use_cache=False, **kwargs)


def test_flops_convention(arch):
    model = tiny_model(arch)
    cfg = model.config
    head = model.get_output_embeddings()
    assert isinstance(head, nn.Linear) and head.weight.numel() == cfg.vocab_size * cfg.hidden_size  # even when tied
    linear = sum(m.weight.numel() for m in model.modules() if isinstance(m, (nn.Linear, Conv1D)))
    assert flops_per_token(model) == 2 * linear
    assert flops_per_token(model, SEQLEN) == pytest.approx(expected_flops(model, SEQLEN))
    if arch == "llama":  # full causal mask: mean context (L + 1) / 2
        extra = cfg.num_hidden_layers * 4 * _head_dim(cfg) * cfg.num_attention_heads * (SEQLEN + 1) / 2
        assert flops_per_token(model, SEQLEN) == pytest.approx(2 * linear + extra)


def test_causal_context_matches_the_masks(arch):
    """Useful attention FLOPs are 4 x head_dim per (query, key) pair the model's own mask lets through.

    Eager attention probabilities are exactly 0 where masked (causal or sliding window) and > 0 elsewhere, so
    counting them layer by layer checks attention_flops' mean context and layer types against the forward pass.
    """
    model = tiny_model(arch, attn_implementation="eager")
    pairs = sum(int((a > 0).sum()) for a in _forward(model, output_attentions=True).attentions)  # all heads, layers
    useful = 4 * _head_dim(model.config) * pairs / (BATCH * SEQLEN)
    assert attention_flops(model, SEQLEN) == pytest.approx(useful, rel=1e-12)


def test_matches_flop_counter(arch):
    """FlopCounterMode (2 x m x n x k per mm / addmm / bmm) of one forward = flops_per_token(masked=True), exactly.

    - Linear layers (mm, addmm): 2 x linear_macs per token, the LM head included though tied; the embedding is a
      gather, 0 FLOPs in both.
    - Attention (bmm): eager attention computes the whole SEQLEN x SEQLEN score matrix and masks it afterwards, so
      the counter sees SEQLEN keys per query in every layer, sliding or not, over all query heads (GQA repeats K/V).
      The useful count, masked=False, is lower by exactly the masked-out scores (test above).
    - Nothing else, so no remainder: RoPE's angles are a broadcast product (positions x inv_freq) in the installed
      transformers, not a matmul; norms, softmax and activations are elementwise and uncounted.
    Eager, because the counter has no formula for the CPU SDPA kernel (attention under sdpa would count 0); its CUDA
    SDPA / FlashAttention formulas ignore the causal mask too, so masked=True is their counterpart as well.
    """
    model = tiny_model(arch, attn_implementation="eager")
    with FlopCounterMode(display=False) as counter:
        _forward(model)
    by_op = {str(op): n for op, n in counter.get_flop_counts()["Global"].items()}
    tokens = BATCH * SEQLEN
    assert by_op.get("aten.mm", 0) + by_op.get("aten.addmm", 0) == 2 * linear_macs(model) * tokens
    assert by_op.get("aten.bmm", 0) == attention_flops(model, SEQLEN, masked=True) * tokens
    assert counter.get_total_flops() == flops_per_token(model, SEQLEN, masked=True) * tokens
