"""Plans: each registered method's selection rule run on its inputs, as the records plans.json holds."""

from collections.abc import Callable, Mapping
from typing import NamedTuple

import numpy as np

from lorp.select import baselines
from lorp.select.allocate import lorp
from lorp.select.methods import REGISTRY, MissingInputError, may_remove, method, plan_name


class Inputs(NamedTuple):
    """Everything a selection rule may read; each method reads only what its `selects_by` names."""

    s: np.ndarray
    labels: np.ndarray | None = None
    angular: np.ndarray | None = None
    importance: dict | None = None
    seed: int | None = None
    protect_first: bool = True
    protect_last: bool = True
    variants: dict | None = None


# Where each optional input comes from, for the refusal when a rule needs it and it is missing.
ORIGINS = {"labels": "the cluster labels from the cluster stage (labels=...)",
           "angular": "the last-token angular distance matrix A from extract_similarities (angular=...)",
           "importance": "the block-importance record from score_blocks (importance=...)",
           "seed": "a random seed (seed=...)",
           "variants": "the variants record from select_variants (variants=...)"}


def _needs(method: str, inputs: Inputs, field: str):
    value = getattr(inputs, field)
    if value is None:
        raise MissingInputError(f"method {method!r} needs {ORIGINS[field]}; none was given")
    return value


def variant(name: str, inputs: Inputs, budget: int) -> tuple[list[int], dict]:
    """A model-in-the-loop method's plan, as `lorp.select.variants` computed it for this budget."""
    allowed = len(may_remove(name, len(inputs.s), inputs.protect_first, inputs.protect_last))
    if budget > allowed:
        raise baselines.BudgetError(f"budget {budget} exceeds the {allowed} non-protected blocks of {len(inputs.s)}")
    plans = _needs(name, inputs, "variants").get(name, {}).get("plans", {})
    if str(budget) not in plans:
        raise MissingInputError(f"method {name!r} needs its plan for {budget} blocks in {ORIGINS['variants']}, which "
                                f"has {sorted(plans, key=int)}: rerun select_variants with {name} in allocate.methods")
    chosen = plans[str(budget)]
    return list(chosen["removed"]), {k: v for k, v in chosen.items() if k != "removed"}


# Each registered method's rule: (inputs, budget) -> (removed blocks, the scores that chose them).
SELECTORS: dict[str, Callable[[Inputs, int], tuple[list[int], dict]]] = {
    "lorp": lambda i, b: lorp(i.s, _needs("lorp", i, "labels"), b, i.protect_first, i.protect_last),
    "lorp_iter": lambda i, b: variant("lorp_iter", i, b),
    "lorp_kcal": lambda i, b: variant("lorp_kcal", i, b),
    "shortgpt": lambda i, b: baselines.shortgpt(i.s, b),
    "streamline": lambda i, b: baselines.streamline(i.s, b),
    "angular": lambda i, b: baselines.angular(_needs("angular", i, "angular"), b),
    "sleb": lambda i, b: baselines.sleb(_needs("sleb", i, "importance"), b),
    "oneshot_ppl": lambda i, b: baselines.oneshot_ppl(_needs("oneshot_ppl", i, "importance"), b),
    "last": lambda i, b: baselines.last(len(i.s), b),
    "random": lambda i, b: baselines.random_blocks(len(i.s), b, _needs("random", i, "seed")),
}
if SELECTORS.keys() != REGISTRY.keys():
    raise ImportError(f"lorp.select.plans has rules for {sorted(SELECTORS)} but the registry lists {sorted(REGISTRY)}")


def plan(name: str, inputs: Inputs, budget: int, label: str | None = None) -> dict:
    """One plan record: the method's removed and kept blocks and the scores that chose them."""
    method(name)
    removed, scores = SELECTORS[name](inputs, budget)
    n = len(inputs.s)
    label = label or str(budget)
    return {"name": plan_name(name, label), "method": name, "label": label, "budget": budget, "num_blocks": n,
            "removed": removed, "kept": [b for b in range(n) if b not in removed], "scores": scores}


def plans(inputs: Inputs, methods: list[str], budgets: Mapping[str, int] | list[int]) -> list[dict]:
    """Every method x budget; budgets {label: blocks} (params' resolved budgets) or plain counts."""
    named = budgets if isinstance(budgets, Mapping) else {str(b): b for b in sorted(budgets)}
    return [plan(m, inputs, b, label) for m in methods for label, b in named.items()]
