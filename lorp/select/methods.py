"""The one home of every block-selection method: its name and description, what it selects from, how its plans
are named and ordered, and which blocks it may remove. Params, the stages, the study, the bench and the report
ask this registry; a new method is one entry here and its selection rule in `lorp.select.plans`.

Plans are named `<method>-<label>` (label: the budget as params.yaml gave it, `p20` or `7`).
"""

from collections.abc import Callable
from dataclasses import dataclass

from lorp.errors import LorpError
from lorp.select.budgets import protected_blocks


class MethodError(LorpError, ValueError):
    """A method that is not registered."""


class MissingInputError(MethodError):
    """A method was asked for without the measurement it selects by."""


# What a method selects from: S or A of the one capture pass, the block-importance record, a seed, the depth alone,
# or "model": the model in the loop, which select_variants runs on the calibration windows (the variants record).
SELECTS_BY = ("similarity", "angular", "importance", "seed", "depth", "model")


def steps_order(plan: dict) -> list[int]:
    """The blocks of LoRP's allocation steps (Stage 1, then 2), or of lorp_iter's commits, in the order taken."""
    return [step["block"] for step in plan["scores"]["steps"]]


@dataclass(frozen=True)
class Method:
    name: str
    title: str  # the model card's and the report's words for it
    selects_by: str  # one of SELECTS_BY
    keeps_ends: bool  # True: never block 0 or N-1 whatever protect_first/last say; False: honours them
    order: Callable[[dict], list[int]] = lambda plan: list(plan["removed"])  # the order the rule chose its blocks

    @property
    def one_pass(self) -> bool:
        """Selects from the one hidden-state capture pass (S, or A), which every such method shares."""
        return self.selects_by in ("similarity", "angular")

    @property
    def loss_based(self) -> bool:
        """Selects from forward passes with blocks removed (the block-importance record)."""
        return self.selects_by == "importance"

    @property
    def by_model(self) -> bool:
        """Selects with the model in the loop, from its own passes (the variants record of select_variants)."""
        return self.selects_by == "model"


REGISTRY: dict[str, Method] = {m.name: m for m in (
    Method("lorp", "LoRP (locality-aware redundancy pruning)", "similarity", False, steps_order),
    Method("lorp_iter", "iterative LoRP (S re-measured after each removal)", "model", False, steps_order),
    Method("lorp_kcal", "LoRP with K by calibration loss", "model", False, steps_order),
    Method("shortgpt", "ShortGPT (block influence)", "similarity", True,
           lambda plan: sorted(plan["removed"], key=lambda b: -plan["scores"]["block_similarity"][b])),
    Method("streamline", "LLM-Streamline (most similar contiguous run)", "similarity", True),
    Method("angular", "Gromov et al. angular distance (contiguous run, last token)", "angular", True),
    Method("sleb", "SLEB (greedy calibration loss)", "importance", False,
           lambda plan: list(plan["scores"]["sleb_order"])),
    Method("oneshot_ppl", "one-shot perplexity (Shortened LLaMA)", "importance", False,
           lambda plan: list(plan["scores"]["lowest_first"][:plan["budget"]])),
    Method("last", "the blocks before the last (floor)", "depth", True),
    Method("random", "random blocks (seeded floor)", "seed", True),
)}
NAMES = tuple(REGISTRY)  # the display order: params' default, the report's colours
ONE_PASS = tuple(n for n, m in REGISTRY.items() if m.one_pass)
LOSS_BASED = tuple(n for n, m in REGISTRY.items() if m.loss_based)
BY_MODEL = tuple(n for n, m in REGISTRY.items() if m.by_model)


def method(name: str) -> Method:
    if name not in REGISTRY:
        raise MethodError(f"unknown method {name!r}: choose one of {', '.join(NAMES)}")
    return REGISTRY[name]


def plan_name(method_name: str, label: str) -> str:
    return f"{method_name}-{label}"


def split_plan_name(name: str) -> tuple[str, str]:
    """(method, budget label) of a plan name."""
    method_name, _, label = name.rpartition("-")
    return method_name, label


def may_remove(name: str, n: int, protect_first: bool = True, protect_last: bool = True) -> list[int]:
    """The blocks a method may remove from a model of n blocks."""
    ends = (True, True) if method(name).keeps_ends else (protect_first, protect_last)
    return [b for b in range(n) if b not in protected_blocks(n, *ends)]


def selection_order(plan: dict) -> list[int]:
    """A plan's removed blocks in the order its rule chose them: LoRP's Stage-1/2 steps (lorp_kcal's for its K),
    lorp_iter's commits, SLEB's rounds, the one-shot and ShortGPT rankings; depth order for the rules that take a run
    or a set at once."""
    return method(plan["method"]).order(plan)
