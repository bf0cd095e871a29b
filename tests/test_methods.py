"""The method registry (lorp.select.methods) and its selection rules (lorp.select.plans): every registered method has
a rule, plan names round-trip, each method removes only the blocks it may, and a wrong method or a missing input is
refused with the fix named."""

import functools
import itertools

import numpy as np
import pytest

from lorp.errors import LorpError
from lorp.params.config import METHODS, Params
from lorp.select.baselines import BudgetError
from lorp.select.methods import (
    BY_MODEL,
    LOSS_BASED,
    NAMES,
    ONE_PASS,
    REGISTRY,
    SELECTS_BY,
    MethodError,
    MissingInputError,
    may_remove,
    method,
    plan_name,
    selection_order,
    split_plan_name,
)
from lorp.select.plans import SELECTORS, Inputs, plan, plans
from lorp.select.variants import iterative, k_by_loss

N = 6
S6 = np.array([[1.0, 0.9, 0.5, 0.1, 0.1, 0.1],
               [0.9, 1.0, 0.7, 0.2, 0.1, 0.1],
               [0.5, 0.7, 1.0, 0.4, 0.2, 0.1],
               [0.1, 0.2, 0.4, 1.0, 0.8, 0.6],
               [0.1, 0.1, 0.2, 0.8, 1.0, 0.6],
               [0.1, 0.1, 0.1, 0.6, 0.6, 1.0]])
L6 = np.array([0, 0, 0, 1, 1, 1])
A6 = 1.0 - S6  # an angular distance: small where S is large
HONOURS_PROTECT = ("lorp", "lorp_iter", "lorp_kcal", "sleb", "oneshot_ppl")
KEEPS_ENDS = ("shortgpt", "streamline", "angular", "last", "random")


def importance(protect_first: bool = True, protect_last: bool = True) -> dict:
    """A block-importance record as score_blocks writes it: protected blocks unscored (None), out of SLEB's order."""
    scored = [b for b in range(N) if not (b == 0 and protect_first or b == N - 1 and protect_last)]
    ppl = [12.0, 15.0, 11.0, 14.0, 13.0, 16.0]
    return {"ablation_ppl": [ppl[b] if b in scored else None for b in range(N)], "dense_ppl": 10.0,
            "sleb_order": sorted(scored, key=lambda b: -ppl[b]), "sleb_ppl": [20.0 + i for i in range(len(scored))]}


@functools.cache
def variants(protect_first: bool = True, protect_last: bool = True) -> dict:
    """A variants record as select_variants writes it, at every budget the protection allows, with the model left
    out: lorp_iter re-measures S as the rows and columns of S6 left (no removal changes another block), lorp_kcal's
    calibration PPL is made up (the number of removed blocks plus the first). The budgets stop one below the
    prunable blocks, as params allow: lorp_iter's last step clusters the blocks left, two at least."""
    rule = {"random_state": 0, "protect_first": protect_first, "protect_last": protect_last}
    counts = range(1, N - protect_first - protect_last)

    def left(chosen: frozenset[int]) -> np.ndarray:
        keep = [b for b in range(N) if b not in chosen]
        return S6[np.ix_(keep, keep)]

    return {"lorp_iter": {"plans": {str(n): iterative(S6, left, n, force_k=2, **rule) for n in counts}},
            "lorp_kcal": {"plans": k_by_loss(S6, list(counts), [2, 3], lambda orders: {
                frozenset(o): len(o) + min(o) for o in orders}, rls_k=2, **rule)}}


def inputs(protect_first: bool = True, protect_last: bool = True) -> Inputs:
    return Inputs(S6, L6, angular=A6, importance=importance(protect_first, protect_last), seed=0,
                  protect_first=protect_first, protect_last=protect_last,
                  variants=variants(protect_first, protect_last))


def test_every_registered_method_has_a_rule_and_a_known_input():
    assert SELECTORS.keys() == REGISTRY.keys()
    assert NAMES == tuple(REGISTRY) == ("lorp", "lorp_iter", "lorp_kcal", "shortgpt", "streamline", "angular", "sleb",
                                        "oneshot_ppl", "last", "random")
    assert all(m.selects_by in SELECTS_BY and m.title and method(name) is m for name, m in REGISTRY.items())
    assert set(HONOURS_PROTECT) | set(KEEPS_ENDS) == set(NAMES)
    assert ONE_PASS == ("lorp", "shortgpt", "streamline", "angular")  # the one hidden-state capture pass
    assert LOSS_BASED == ("sleb", "oneshot_ppl")  # the block-importance record
    assert BY_MODEL == ("lorp_iter", "lorp_kcal")  # the variants record
    assert METHODS == NAMES and Params().allocate.methods == list(NAMES)  # params' choices and default


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("label", ["p20", "p27", "7", "1"])
def test_plan_names_round_trip(name, label):
    full = plan_name(name, label)
    assert full == f"{name}-{label}"
    assert split_plan_name(full) == (name, label)
    assert plan(name, inputs(), 1, label=label)["name"] == full


def test_plans_are_named_by_label_or_count():
    out = plans(inputs(), ["oneshot_ppl", "lorp"], {"p20": 1, "p34": 2})
    assert [(p["name"], p["label"], p["budget"]) for p in out] == [
        ("oneshot_ppl-p20", "p20", 1), ("oneshot_ppl-p34", "p34", 2), ("lorp-p20", "p20", 1), ("lorp-p34", "p34", 2)]
    assert [split_plan_name(p["name"]) for p in out] == [(p["method"], p["label"]) for p in out]
    assert [p["name"] for p in plans(inputs(), ["last"], [3, 1])] == ["last-1", "last-3"]


@pytest.mark.parametrize("protect_first, protect_last", list(itertools.product([True, False], repeat=2)))
def test_may_remove_honours_protection_only_for_the_methods_that_take_it(protect_first, protect_last):
    expected = [b for b in range(N) if not (b == 0 and protect_first or b == N - 1 and protect_last)]
    for name in HONOURS_PROTECT:
        assert may_remove(name, N, protect_first, protect_last) == expected, name
    for name in KEEPS_ENDS:
        assert may_remove(name, N, protect_first, protect_last) == [1, 2, 3, 4], name
    assert may_remove("lorp", N) == may_remove("shortgpt", N) == [1, 2, 3, 4]  # both protected by default


@pytest.mark.parametrize("protect_first, protect_last", list(itertools.product([True, False], repeat=2)))
@pytest.mark.parametrize("name", NAMES)
def test_each_rule_reaches_exactly_the_blocks_it_may_remove(name, protect_first, protect_last):
    """At the largest budget a method's plan removes every block may_remove allows (the variants: the largest their
    record has, one fewer, only blocks it allows); one more is refused."""
    allowed = may_remove(name, N, protect_first, protect_last)
    given = inputs(protect_first, protect_last)
    largest = len(allowed) - (name in BY_MODEL)
    p = plan(name, given, largest)
    assert set(p["removed"]) <= set(allowed) and len(p["removed"]) == largest
    assert sorted(p["removed"] + p["kept"]) == list(range(N))
    with pytest.raises(BudgetError):
        plan(name, given, len(allowed) + 1)


def old_selection_order(plan: dict) -> list[int]:
    """lorp.allocate.selection_order as it was before the registry (commit c6faeff), the reference."""
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


@pytest.mark.parametrize("budget", [1, 2, 3, 4])
def test_selection_order_is_the_old_one_for_every_method(budget):
    for p in plans(inputs(), [n for n in NAMES if n not in BY_MODEL], [budget]):
        order = selection_order(p)
        assert order == old_selection_order(p), p["name"]
        assert sorted(order) == p["removed"] and len(order) == budget


@pytest.mark.parametrize("budget", [1, 2, 3])
def test_the_variants_are_ordered_by_their_steps(budget):
    """lorp_iter's commits; lorp_kcal's LoRP steps at the K it chose."""
    for p in plans(inputs(), list(BY_MODEL), [budget]):
        assert selection_order(p) == [step["block"] for step in p["scores"]["steps"]]
        assert sorted(selection_order(p)) == p["removed"] and len(p["removed"]) == budget


def test_an_unknown_method_is_refused_naming_the_choices():
    choices = "lorp, lorp_iter, lorp_kcal, shortgpt, streamline, angular, sleb, oneshot_ppl, last, random"
    for call in (lambda: method("shortgtp"), lambda: plan("shortgtp", inputs(), 1),
                 lambda: may_remove("shortgtp", N), lambda: selection_order({"method": "shortgtp", "removed": [1]})):
        with pytest.raises(MethodError, match=f"unknown method 'shortgtp': choose one of {choices}") as err:
            call()
        assert isinstance(err.value, LorpError) and isinstance(err.value, ValueError)


@pytest.mark.parametrize("name, missing, message", [
    ("angular", "angular", r"'angular' needs the last-token angular distance matrix A from extract_similarities "
                           r"\(angular=...\); none was given"),
    ("sleb", "importance", r"'sleb' needs the block-importance record from score_blocks \(importance=...\)"),
    ("oneshot_ppl", "importance", r"'oneshot_ppl' needs the block-importance record from score_blocks"),
    ("random", "seed", r"'random' needs a random seed \(seed=...\)"),
    ("lorp", "labels", r"'lorp' needs the cluster labels from the cluster stage \(labels=...\)"),
    ("lorp_iter", "variants", r"'lorp_iter' needs the variants record from select_variants \(variants=...\)"),
    ("lorp_kcal", "variants", r"'lorp_kcal' needs the variants record from select_variants \(variants=...\)"),
])
def test_a_method_missing_its_input_is_refused_naming_where_it_comes_from(name, missing, message):
    with pytest.raises(MissingInputError, match=message) as err:
        plan(name, inputs()._replace(**{missing: None}), 1)
    assert isinstance(err.value, MethodError) and isinstance(err.value, LorpError)


@pytest.mark.parametrize("name", ["lorp", "shortgpt", "streamline", "last"])
def test_methods_read_only_their_own_input(name):
    """S, clusters and depth are enough: no angular matrix, importance record or seed is asked for."""
    assert plan(name, Inputs(S6, L6), 2)["removed"] == plan(name, inputs(), 2)["removed"]
