"""Block-to-block cosine similarity S (method page, eqs. 3-4) and last-token angular distance A, from ONE pass.

A forward pre-hook on every block records the hidden state entering it; each batch's states are
reduced to per-window N x N matrices at once, so no window's states outlive its batch. A serves the
angular-distance baseline (Gromov et al. 2024) without a second calibration pass.
"""

import time
from typing import NamedTuple

import numpy as np
import torch
from tqdm.auto import tqdm

from lorp.errors import LorpError
from lorp.model.blocks import block_input, locate_blocks


class SimilarityError(LorpError, RuntimeError):
    pass


class BlockSimilarity(NamedTuple):
    """What one calibration pass yields: S (diag 1), A (diag 0), both N x N float64, and timing figures."""

    s: np.ndarray
    angular: np.ndarray
    timing: dict


def normalise(x: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    x = x.to(dtype)
    return x / (x.norm(dim=-1, keepdim=True) + 1e-8)


def window_similarity(states: list[torch.Tensor]) -> torch.Tensor:
    """N tensors (B, T, D) of block inputs -> (B, N, N): per window, the token mean of <x̂_i, x̂_j>."""
    x = torch.stack([normalise(s) for s in states], dim=2)  # B, T, N, D
    return (x @ x.transpose(-1, -2)).mean(dim=1)


def window_angular(states: list[torch.Tensor]) -> torch.Tensor:
    """N tensors (B, T, D) -> (B, N, N): arccos(cos)/pi between block inputs at each window's last token.

    Float64, since arccos magnifies rounding where cos is near 1 (adjacent blocks).
    """
    x = torch.stack([normalise(s[:, -1], torch.float64) for s in states], dim=1)  # B, N, D
    return torch.arccos((x @ x.transpose(-1, -2)).clamp(-1.0, 1.0)) / torch.pi


def finalize(total: torch.Tensor, n_windows: int, diagonal: float = 1.0) -> np.ndarray:
    """Window mean of a summed N x N matrix, with its diagonal set exactly (1 for S, 0 for A)."""
    m = (total / n_windows).cpu().numpy()
    np.fill_diagonal(m, diagonal)
    return m


@torch.no_grad()
def block_input_similarity(model, ids: np.ndarray, batch_size: int, progress: bool = True) -> BlockSimilarity:
    """S and A over the windows in ids, and timing figures."""
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
    total_angular = torch.zeros_like(total)
    start = time.perf_counter()
    try:
        batches = range(0, len(ids), batch_size)
        for lo in tqdm(batches, desc="similarity", disable=not progress, unit="batch"):
            batch = torch.as_tensor(ids[lo:lo + batch_size], device=device)
            model.base_model(input_ids=batch, use_cache=False)
            if any(c is None for c in captured):
                raise SimilarityError("some blocks were never called: cannot build S")
            total += window_similarity(captured).double().sum(dim=0)
            total_angular += window_angular(captured).sum(dim=0)
            captured[:] = [None] * n
    finally:
        for h in handles:
            h.remove()
    seconds = time.perf_counter() - start
    tokens = int(ids.size)
    timing = {"windows": len(ids), "tokens": tokens, "seconds": round(seconds, 3),
              "tokens_per_second": round(tokens / seconds, 1)}
    return BlockSimilarity(finalize(total, len(ids)), finalize(total_angular, len(ids), diagonal=0.0), timing)
