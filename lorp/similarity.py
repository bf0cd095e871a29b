"""Block-to-block cosine similarity S from ONE forward pass (method page, eqs. 3-4).

A forward pre-hook on every block records the hidden state entering it; each batch's states are
reduced to per-window N x N matrices at once, so no window's states outlive its batch.
"""

import time

import numpy as np
import torch
from tqdm.auto import tqdm

from lorp.blocks import block_input, locate_blocks
from lorp.errors import LorpError


class SimilarityError(LorpError, RuntimeError):
    pass


def normalise(x: torch.Tensor) -> torch.Tensor:
    x = x.float()
    return x / (x.norm(dim=-1, keepdim=True) + 1e-8)


def window_similarity(states: list[torch.Tensor]) -> torch.Tensor:
    """N tensors (B, T, D) of block inputs -> (B, N, N): per window, the token mean of <x̂_i, x̂_j>."""
    x = torch.stack([normalise(s) for s in states], dim=2)  # B, T, N, D
    return (x @ x.transpose(-1, -2)).mean(dim=1)


def finalize(sum_s: torch.Tensor, n_windows: int) -> np.ndarray:
    s = (sum_s / n_windows).cpu().numpy()
    np.fill_diagonal(s, 1.0)
    return s


@torch.no_grad()
def block_input_similarity(model, ids: np.ndarray, batch_size: int, progress: bool = True) -> tuple[np.ndarray, dict]:
    """S (N x N, float64, diag 1) over the windows in ids, and timing figures."""
    _, blocks = locate_blocks(model)
    n = len(blocks)
    captured: list[torch.Tensor | None] = [None] * n

    def hook_for(index: int):
        def hook(module, args, kwargs):
            h = block_input(args, kwargs)
            if not torch.isfinite(h).all():
                raise SimilarityError(
                    f"non-finite hidden state entering block {index} (dtype {h.dtype}): the model overflows "
                    "in this precision; set model.dtype: float32 (or bfloat16 on GPU) in params.yaml")
            captured[index] = h
        return hook

    handles = [b.register_forward_pre_hook(hook_for(i), with_kwargs=True) for i, b in enumerate(blocks)]
    device = next(model.parameters()).device
    total = torch.zeros(n, n, dtype=torch.float64, device=device)
    start = time.perf_counter()
    try:
        batches = range(0, len(ids), batch_size)
        for lo in tqdm(batches, desc="similarity", disable=not progress, unit="batch"):
            batch = torch.as_tensor(ids[lo:lo + batch_size], device=device)
            model.base_model(input_ids=batch, use_cache=False)
            if any(c is None for c in captured):
                raise SimilarityError("some blocks were never called: cannot build S")
            total += window_similarity(captured).double().sum(dim=0)
            captured[:] = [None] * n
    finally:
        for h in handles:
            h.remove()
    seconds = time.perf_counter() - start
    tokens = int(ids.size)
    return finalize(total, len(ids)), {"windows": len(ids), "tokens": tokens, "seconds": round(seconds, 3),
                                       "tokens_per_second": round(tokens / seconds, 1)}
