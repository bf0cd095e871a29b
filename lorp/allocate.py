"""LoRP's budget allocation across clusters (method page, sec. 6, eqs. 8-11), and the plan table.

Followed to the letter, ties included: candidates keep depth order among equal r(l); Stage 2
takes the lowest cluster id among equal residual redundancy.
"""

from collections.abc import Mapping
from typing import TypeVar

import numpy as np

from lorp import baselines
from lorp.baselines import BudgetError
from lorp.cluster import members as cluster_members
from lorp.errors import LorpError

NEG_INF = float("-inf")
T = TypeVar("T")


class MissingInputError(LorpError, ValueError):
    """A method was asked for without the measurement it selects by."""


def protected_blocks(n: int, protect_first: bool = True, protect_last: bool = True) -> set[int]:
    return {b for b, on in ((0, protect_first), (n - 1, protect_last)) if on}


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


NEEDS = {"angular": "the last-token angular distance matrix A from extract_similarities (angular=...)",
         "sleb": "the block-importance record from score_blocks (importance=...)",
         "oneshot_ppl": "the block-importance record from score_blocks (importance=...)",
         "random": "a random seed (seed=...)"}


def required(method: str, value: T | None) -> T:
    """The input a method selects by, or a refusal naming where it comes from."""
    if value is None:
        raise MissingInputError(f"method {method!r} needs {NEEDS[method]}; none was given")
    return value


def select(method: str, s: np.ndarray, budget: int, labels: np.ndarray | None, protect_first: bool,
           protect_last: bool, angular: np.ndarray | None, importance: dict | None,
           seed: int | None) -> tuple[list[int], dict]:
    """One method's (removed blocks, scores that chose them)."""
    match method:
        case "lorp":
            return lorp(s, labels, budget, protect_first, protect_last)
        case "shortgpt":
            return baselines.shortgpt(s, budget)
        case "streamline":
            return baselines.streamline(s, budget)
        case "angular":
            return baselines.angular(required(method, angular), budget)
        case "sleb":
            return baselines.sleb(required(method, importance), budget)
        case "oneshot_ppl":
            return baselines.oneshot_ppl(required(method, importance), budget)
        case "last":
            return baselines.last(len(s), budget)
        case "random":
            return baselines.random_blocks(len(s), budget, required(method, seed))
    raise ValueError(f"unknown method {method!r}")


def plan(method: str, s: np.ndarray, budget: int, labels: np.ndarray | None, protect_first: bool,
         protect_last: bool, *, angular: np.ndarray | None = None, importance: dict | None = None,
         seed: int | None = None, label: str | None = None) -> dict:
    """One plan record, named <method>-<label> (label: the budget as params.yaml gave it, default its count);
    angular, importance and seed are needed only by the methods that select by them."""
    removed, scores = select(method, s, budget, labels, protect_first, protect_last, angular, importance, seed)
    n = len(s)
    label = label or str(budget)
    return {"name": f"{method}-{label}", "method": method, "label": label, "budget": budget, "num_blocks": n,
            "removed": removed, "kept": [b for b in range(n) if b not in removed], "scores": scores}


def plans(s: np.ndarray, labels: np.ndarray, methods: list[str], budgets: Mapping[str, int] | list[int],
          protect_first: bool, protect_last: bool, *, angular: np.ndarray | None = None,
          importance: dict | None = None, seed: int | None = None) -> list[dict]:
    """Every method x budget; budgets {label: blocks} (params' resolved budgets) or plain counts."""
    named = budgets if isinstance(budgets, Mapping) else {str(b): b for b in sorted(budgets)}  # = budget_label
    return [plan(m, s, b, labels, protect_first, protect_last, angular=angular, importance=importance, seed=seed,
                 label=label) for m in methods for label, b in named.items()]


def selection_order(plan: dict) -> list[int]:
    """A plan's removed blocks in the order its rule chose them: LoRP's Stage-1/2 steps, SLEB's rounds, the
    one-shot and ShortGPT rankings; depth order for the rules that take a run or a set at once."""
    scores, removed = plan["scores"], plan["removed"]
    match plan["method"]:
        case "lorp":
            return [step["block"] for step in scores["steps"]]
        case "sleb":
            return list(scores["sleb_order"])
        case "oneshot_ppl":
            return list(scores["lowest_first"][:plan["budget"]])
        case "shortgpt":
            return sorted(removed, key=lambda b: -scores["block_similarity"][b])
    return list(removed)
