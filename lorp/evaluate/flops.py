"""Analytical forward FLOPs per token: the yardstick for the ideal speed-up of depth pruning.

Counted from the config and the module tree, not measured, so it is exact and device-independent. Two attention
conventions: the useful work under the causal (and sliding-window) mask, which the ideal speed-up uses, and the
work with masked-out scores included (every query against all seqlen keys), which is what
torch.utils.flop_counter.FlopCounterMode counts.
"""

from torch import nn
from transformers.pytorch_utils import Conv1D

from lorp.model.blocks import locate_blocks


def linear_macs(model: nn.Module) -> int:
    """Multiply-accumulates per token of every matmul weight: each nn.Linear (and GPT-2 Conv1D) module's weight.

    Counted per module, not per unique parameter: an LM head tied to the embedding is still a full matmul.
    """
    return sum(m.weight.numel() for m in model.modules() if isinstance(m, (nn.Linear, Conv1D)))


def _mean_context(seqlen: int, window: int | None) -> float:
    """Mean number of keys a query attends to over a causal window of seqlen tokens (capped by a sliding window)."""
    cap = window or seqlen
    return sum(min(p, cap) for p in range(1, seqlen + 1)) / seqlen


def attention_flops(model: nn.Module, seqlen: int, *, masked: bool = False) -> float:
    """Per-token FLOPs of attention scores and weighted values, averaged over a causal window of seqlen tokens.

    Per block: QK^T and AV each cost 2 x context x head_dim x n_heads, context = mean attended keys
    ((seqlen + 1) / 2 under a full causal mask; min(position, config.sliding_window) for sliding layers).
    masked=True counts the masked-out scores too (context = seqlen in every layer): what eager attention computes
    before masking, and what FlopCounterMode reports for every attention kernel it counts (it ignores masks).
    """
    if seqlen <= 0:
        return 0.0
    config = model.config.get_text_config()
    n_blocks = len(locate_blocks(model)[1])
    heads = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    window = getattr(config, "sliding_window", None)
    # Per-layer types where the config lists them (Gemma, Qwen, OLMo 3); otherwise a set sliding_window applies to
    # every layer (Mistral, Phi-3).
    default = "sliding_attention" if window else "full_attention"
    layer_types = getattr(config, "layer_types", None) or [default] * n_blocks

    def context(kind: str) -> float:
        return seqlen if masked else _mean_context(seqlen, window if kind == "sliding_attention" else None)

    return sum(4 * head_dim * heads * context(kind) for kind in layer_types[:n_blocks])


def flops_per_token(model: nn.Module, seqlen: int = 0, *, masked: bool = False) -> float:
    """Forward FLOPs per token: 2 x linear_macs (LM head included) + attention_flops(seqlen, masked=masked).

    Convention: the embedding lookup is 0 FLOPs (a gather); norms, activations, softmax, residual adds and RoPE are
    ignored (elementwise, small next to the matmuls). seqlen=0 leaves attention out; the benchmark passes its prefill
    seqlen and the default masked=False (useful FLOPs).
    """
    return 2 * linear_macs(model) + attention_flops(model, seqlen, masked=masked)
