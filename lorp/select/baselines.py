"""The baselines LoRP is compared with. Each returns (removed blocks, sorted; scores that chose them).

ShortGPT and LLM-Streamline come from the same S as LoRP (method page, sec. 7) and angular distance from the A of
that same pass; SLEB and one-shot PPL read the block-importance record (calibration loss with blocks removed);
last and random need no measurement at all. None of them removes block 0 or block N-1.
"""

import numpy as np

from lorp.errors import LorpError


class BudgetError(LorpError, ValueError):
    """A budget a selection rule cannot meet; the message names the largest that works or what to rerun."""


def shortgpt(s: np.ndarray, budget: int) -> tuple[list[int], dict]:
    """Remove the n blocks whose input and output are most alike (lowest Block Influence 1 - s_i)."""
    n = len(s)
    scores = [float("-inf")] + [float(s[i, i + 1]) for i in range(1, n - 1)]
    if budget > n - 2:
        raise BudgetError(f"ShortGPT can remove at most {n - 2} of {n} blocks, asked {budget}")
    # Largest score first; Python's sort is stable, so ties keep the lower index first.
    order = sorted(range(n - 1), key=lambda i: -scores[i])
    chosen = sorted(order[:budget])
    return chosen, {"block_similarity": scores}


def run_starts(n: int, budget: int, method: str) -> range:
    """Starts s of the runs [s, s+n) that spare block 0 and block N-1."""
    starts = range(1, n - budget)
    if not starts:
        raise BudgetError(f"{method} needs budget <= {n - 2} for {n} blocks, asked {budget}")
    return starts


def streamline(s: np.ndarray, budget: int) -> tuple[list[int], dict]:
    """Remove the contiguous run [s, s+n) whose entry and exit states are most alike."""
    starts = run_starts(len(s), budget, "Streamline")
    scores = {st: float(s[st, st + budget]) for st in starts}
    best = max(starts, key=lambda st: (scores[st], -st))
    return list(range(best, best + budget)), {"run_similarity": {str(k): v for k, v in scores.items()}, "start": best}


def angular(a: np.ndarray, budget: int) -> tuple[list[int], dict]:
    """Gromov et al. 2024: remove the run [s, s+n) with the least last-token angular distance A[s, s+n]."""
    starts = run_starts(len(a), budget, "Angular")
    distances = {st: float(a[st, st + budget]) for st in starts}
    best = min(starts, key=lambda st: (distances[st], st))
    return list(range(best, best + budget)), {"run_distance": {str(k): v for k, v in distances.items()},
                                              "start": best}


def last(n_blocks: int, budget: int) -> tuple[list[int], dict]:
    """Remove the n blocks just before the final one: the deep blocks are reputedly the most redundant."""
    start = run_starts(n_blocks, budget, "last")[-1]
    return list(range(start, start + budget)), {"rule": "the blocks right before the final block", "start": start}


def random_blocks(n_blocks: int, budget: int, seed: int) -> tuple[list[int], dict]:
    """Remove n blocks drawn uniformly from 1..N-2: the floor any informed selection must beat."""
    if budget > n_blocks - 2:
        raise BudgetError(f"random can remove at most {n_blocks - 2} of {n_blocks} blocks, asked {budget}")
    draw = np.random.default_rng(seed).choice(np.arange(1, n_blocks - 1), size=budget, replace=False)
    return sorted(int(b) for b in draw), {"rule": "uniform without replacement over blocks 1..N-2", "seed": seed,
                                          "draw": [int(b) for b in draw]}


def ranked(scores: list[float | None], budget: int) -> tuple[list[int], dict]:
    """Remove the n blocks of lowest score (ties: lower index); a None score marks a protected block."""
    candidates = [i for i, v in enumerate(scores) if v is not None]
    if budget > len(candidates):
        raise BudgetError(f"only {len(candidates)} of {len(scores)} blocks are scored (the others are protected), "
                          f"asked {budget}: use a budget of at most {len(candidates)}")
    order = sorted(candidates, key=lambda i: scores[i])  # stable: ties keep the lower index first
    return sorted(order[:budget]), {"lowest_first": order}


def oneshot_ppl(importance: dict, budget: int) -> tuple[list[int], dict]:
    """Remove the n blocks whose removal alone raises calibration perplexity least."""
    removed, ranking = ranked(importance["ablation_ppl"], budget)
    return removed, {"ablation_ppl": importance["ablation_ppl"], "dense_ppl": importance["dense_ppl"], **ranking}


def sleb(importance: dict, budget: int) -> tuple[list[int], dict]:
    """SLEB (Song et al. 2024): the first n blocks of the greedy order, each the least harmful after the ones before."""
    order = importance["sleb_order"]
    if budget > len(order):
        raise BudgetError(f"sleb has a greedy order of {len(order)} blocks; rerun score_blocks with rounds >= {budget}")
    return sorted(order[:budget]), {"sleb_order": order[:budget], "sleb_ppl": importance["sleb_ppl"][:budget]}
