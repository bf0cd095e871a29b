"""ShortGPT and LLM-Streamline selections, computed from the same S as LoRP (method page, sec. 7)."""

import numpy as np


def shortgpt(s: np.ndarray, budget: int) -> tuple[list[int], dict]:
    """Remove the n blocks whose input and output are most alike (lowest Block Influence 1 - s_i)."""
    n = len(s)
    scores = [float("-inf")] + [float(s[i, i + 1]) for i in range(1, n - 1)]
    if budget > n - 2:
        raise ValueError(f"ShortGPT can remove at most {n - 2} of {n} blocks, asked {budget}")
    # Largest score first; Python's sort is stable, so ties keep the lower index first.
    order = sorted(range(n - 1), key=lambda i: -scores[i])
    chosen = sorted(order[:budget])
    return chosen, {"block_similarity": scores}


def streamline(s: np.ndarray, budget: int) -> tuple[list[int], dict]:
    """Remove the contiguous run [s, s+n) whose entry and exit states are most alike."""
    n = len(s)
    starts = range(1, n - budget)
    if not starts:
        raise ValueError(f"Streamline needs budget <= {n - 2} for {n} blocks, asked {budget}")
    scores = {st: float(s[st, st + budget]) for st in starts}
    best = max(starts, key=lambda st: (scores[st], -st))
    return list(range(best, best + budget)), {"run_similarity": {str(k): v for k, v in scores.items()}, "start": best}
