"""LoRP's budget allocation across clusters (method page, sec. 6, eqs. 8-11).

Followed to the letter, ties included: candidates keep depth order among equal r(l); Stage 2
takes the lowest cluster id among equal residual redundancy.
"""

import numpy as np

from lorp.select.baselines import BudgetError
from lorp.select.budgets import protected_blocks
from lorp.select.cluster import members as cluster_members

NEG_INF = float("-inf")


def member_redundancy(s: np.ndarray, labels: np.ndarray) -> list[float]:
    """r(l): mean similarity of block l to the other members of its cluster; -inf for a singleton."""
    groups = cluster_members(labels)
    r = []
    for block, label in enumerate(labels):
        others = [m for m in groups[label] if m != block]
        r.append(float(np.mean([s[block, m] for m in others])) if others else NEG_INF)
    return r


def residual_redundancy(s: np.ndarray, remaining: list[int]) -> float:
    """mu_k: mean S over pairs of the cluster's not-yet-chosen members; -inf below two."""
    if len(remaining) < 2:
        return NEG_INF
    i, j = np.triu_indices(len(remaining), k=1)
    idx = np.asarray(remaining)
    return float(s[idx[i], idx[j]].mean())


def lorp(s: np.ndarray, labels: np.ndarray, budget: int, protect_first: bool = True,
         protect_last: bool = True) -> tuple[list[int], dict]:
    n = len(s)
    protected = protected_blocks(n, protect_first, protect_last)
    if budget > n - len(protected):
        raise BudgetError(f"budget {budget} exceeds the {n - len(protected)} non-protected blocks of {n}")
    groups = cluster_members(labels)
    r = member_redundancy(s, labels)
    # sorted() is stable: equal r keeps increasing depth.
    candidates = [sorted((m for m in g if m not in protected), key=lambda m: -r[m]) for g in groups]
    chosen: list[int] = []
    steps: list[dict] = []

    def take(k: int, stage: int, mu: float | None = None) -> None:
        block = candidates[k].pop(0)
        chosen.append(block)
        steps.append({"stage": stage, "cluster": k, "block": block, "r": r[block], "mu": mu})

    for k in range(len(groups)):  # Stage 1: coverage
        if len(chosen) < budget and candidates[k]:
            take(k, 1)
    while len(chosen) < budget:  # Stage 2: residual allocation
        best, best_mu = None, NEG_INF
        for k in range(len(groups)):
            if not candidates[k]:
                continue
            mu = residual_redundancy(s, [m for m in groups[k] if m not in chosen])
            if best is None or mu > best_mu:  # strict: ties keep the lowest k
                best, best_mu = k, mu
        if best is None:
            raise BudgetError(f"budget {budget} cannot be met: no candidates left")
        take(best, 2, None if best_mu == NEG_INF else best_mu)
    return sorted(chosen), {"member_redundancy": r, "steps": steps}
