"""Representation Locality Score and the granularity K it implies (method page, eqs. 5-6 and sec. 4)."""

import math

import numpy as np

from lorp.errors import LorpError


class RLSError(LorpError, ValueError):
    pass


def mean_off_diagonal(s: np.ndarray) -> float:
    i, j = np.triu_indices(len(s), k=1)
    return float(s[i, j].mean())


def rls(s: np.ndarray) -> float:
    mean = mean_off_diagonal(s)
    if not mean > 0:
        raise RLSError(f"mean off-diagonal similarity is {mean:.4g} <= 0: RLS = -log2(mean) is undefined. "
                       "Check the calibration data and precision, or force K with rls.force_k")
    return -math.log2(mean)


def score(s: np.ndarray, force_k: int | None) -> dict:
    """RLS and K; a forced K stands even where RLS is undefined."""
    try:
        value = rls(s)
    except RLSError:
        if force_k is None:
            raise
        value = None
    k = force_k if force_k is not None else k_from_rls(value)
    return {"rls": value, "mean_off_diagonal": mean_off_diagonal(s), "k": k,
            "k_source": "forced" if force_k is not None else "rls_policy", "num_blocks": len(s)}


def k_from_rls(score: float) -> int:
    if score >= 1.0:
        return 2
    if score >= 0.7:
        return 3
    return 4


def decay_profile(s: np.ndarray) -> list[dict]:
    """Mean similarity at each block distance d (and d normalised by N-1): the locality picture."""
    n = len(s)
    return [{"distance": d, "normalised_distance": round(d / (n - 1), 6),
             "mean_similarity": float(np.diagonal(s, offset=d).mean())} for d in range(1, n)]
