"""Budgets: how many blocks a value removes from a model, how its plans are named, which blocks are off limits.

A fraction names the same share of depth on every model (0.2 -> p20, 6 of 30 blocks); an integer is a count.
"""

import math

from lorp.errors import ParamsError


def protected_blocks(n: int, protect_first: bool = True, protect_last: bool = True) -> set[int]:
    return {b for b, on in ((0, protect_first), (n - 1, protect_last)) if on}


def budget_label(value: int | float) -> str:
    """The budget's name in plan and metric names: a fraction names the same share of depth on every model
    (0.2 -> p20), a count is itself (7 -> 7)."""
    return str(value) if isinstance(value, int) else f"p{round(value * 100)}"


def check_budget_values(where: str, values: list[int | float]) -> None:
    for value in values:
        resolve_budget(value, 1_000_000, where=where)
    labels = [budget_label(v) for v in values]
    clash = sorted({label for label in labels if labels.count(label) > 1})
    if clash:
        raise ParamsError(f"{where}: {values} gives the plan name(s) {clash} twice; fractions are named by whole "
                          "percent, so use values that differ by at least 0.01")


def n_prunable(num_layers: int, protect_first: bool, protect_last: bool) -> int:
    return num_layers - int(protect_first) - int(protect_last)


def check_budgets(budgets: list[int | float], num_layers: int, *, protect_first: bool, protect_last: bool,
                  where: str = "allocate.budgets") -> dict[str, int]:
    """{label: blocks} for the model, refusing a budget that leaves no prunable block."""
    resolved = resolve_budgets(budgets, num_layers)
    prunable = n_prunable(num_layers, protect_first, protect_last)
    too_big = [v for v, b in zip(budgets, resolved.values(), strict=True) if b >= prunable]
    if too_big:
        raise ParamsError(
            f"{where} {too_big}: the model has {num_layers} blocks, {prunable} of them prunable "
            f"(protect_first={protect_first}, protect_last={protect_last}); use budgets below {prunable} blocks "
            f"(or fractions below {prunable / num_layers:.2f})")
    return resolved


def resolve_budget(value: int | float, num_layers: int, where: str = "budget") -> int:
    """Blocks to remove: an integer is a count; a number in (0, 1) is a fraction of the depth, rounded half up."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0 or (
            isinstance(value, float) and value >= 1):
        raise ParamsError(f"{where}: {value!r} is neither a block count >= 1 (e.g. 7) nor a fraction of the depth in "
                          "(0, 1) (e.g. 0.2)")
    return value if isinstance(value, int) else max(1, math.floor(value * num_layers + 0.5))


def resolve_budgets(values: list[int | float], num_layers: int) -> dict[str, int]:
    """{label: blocks removed} for a model of num_layers blocks, in the order given."""
    return {budget_label(v): resolve_budget(v, num_layers) for v in values}
