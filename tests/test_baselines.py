"""Angular, last, random, one-shot PPL and SLEB selections on hand-built inputs whose answers are known by hand."""

import numpy as np
import pytest

from lorp.errors import LorpError
from lorp.select.baselines import BudgetError, angular, last, oneshot_ppl, random_blocks, ranked, sleb
from lorp.select.methods import MissingInputError, selection_order
from lorp.select.plans import Inputs, plan, plans


def dist(n: int, entries: dict[tuple[int, int], float], fill: float = 0.9) -> np.ndarray:
    a = np.full((n, n), fill)
    for (i, j), v in entries.items():
        a[i, j] = a[j, i] = v
    np.fill_diagonal(a, 0.0)
    return a


# Budget 2 on 7 blocks: starts 1..4; A[0, 2] is the smallest but would remove block 0.
A7 = dist(7, {(0, 2): 0.01, (1, 3): 0.2, (2, 4): 0.3, (3, 5): 0.2, (4, 6): 0.5})
# Protected blocks 0 and 5 carry None; blocks 2 and 4 tie at the lowest score.
IMPORTANCE = {"ablation_ppl": [None, 30.0, 12.0, 20.0, 12.0, None], "dense_ppl": 10.0,
              "sleb_order": [4, 2, 1, 3], "sleb_ppl": [12.0, 15.0, 22.0, 40.0]}


def test_angular_takes_the_closest_run_and_the_lowest_start_on_ties():
    removed, scores = angular(A7, 2)
    assert removed == [1, 2]  # A[1,3] = A[3,5] = 0.2: the lowest start wins
    assert scores["start"] == 1 and set(scores["run_distance"]) == {"1", "2", "3", "4"}
    a = A7.copy()
    a[4, 6] = a[6, 4] = 0.1
    assert angular(a, 2)[0] == [4, 5]
    assert angular(a, 5)[0] == [1, 2, 3, 4, 5]


def test_last_removes_the_blocks_before_the_final_one():
    assert last(10, 3)[0] == [6, 7, 8]
    assert last(10, 8)[0] == list(range(1, 9))


def test_random_is_seeded_and_spares_first_and_last():
    draws = [random_blocks(8, 3, seed)[0] for seed in range(50)]
    assert all(len(set(d)) == 3 and d == sorted(d) and 0 not in d and 7 not in d for d in draws)
    assert random_blocks(8, 3, 7) == random_blocks(8, 3, 7)
    assert random_blocks(32, 7, 0)[0] != random_blocks(32, 7, 1)[0]
    assert random_blocks(8, 6, 3)[0] == [1, 2, 3, 4, 5, 6]


@pytest.mark.parametrize("budget, expected", [(1, [2]), (2, [2, 4]), (3, [2, 3, 4]), (4, [1, 2, 3, 4])])
def test_ranked_takes_the_lowest_scores_never_a_protected_block(budget, expected):
    removed, scores = ranked(IMPORTANCE["ablation_ppl"], budget)
    assert removed == expected
    assert scores["lowest_first"] == [2, 4, 3, 1]


def test_oneshot_ppl_records_the_ablation_scores():
    removed, scores = oneshot_ppl(IMPORTANCE, 2)
    assert removed == [2, 4]
    assert scores["ablation_ppl"] == IMPORTANCE["ablation_ppl"] and scores["dense_ppl"] == 10.0


def test_sleb_takes_the_prefix_of_the_greedy_order():
    removed, scores = sleb(IMPORTANCE, 3)
    assert removed == [1, 2, 4]
    assert scores == {"sleb_order": [4, 2, 1], "sleb_ppl": [12.0, 15.0, 22.0]}


@pytest.mark.parametrize("call, message", [
    (lambda: angular(A7, 6), "Angular needs budget <= 5 for 7 blocks, asked 6"),
    (lambda: last(7, 6), "last needs budget <= 5 for 7 blocks, asked 6"),
    (lambda: random_blocks(7, 6, 0), "random can remove at most 5 of 7 blocks, asked 6"),
    (lambda: ranked(IMPORTANCE["ablation_ppl"], 5), "only 4 of 6 blocks are scored .* use a budget of at most 4"),
    (lambda: sleb(IMPORTANCE, 5), "sleb has a greedy order of 4 blocks; rerun score_blocks with rounds >= 5"),
])
def test_budgets_beyond_reach_are_refused(call, message):
    with pytest.raises(BudgetError, match=message) as err:
        call()
    assert isinstance(err.value, LorpError)


S6 = np.eye(6)
L6 = np.array([0, 0, 0, 1, 1, 1])


@pytest.mark.parametrize("method, kwargs, message", [
    ("sleb", {}, "'sleb' needs the block-importance record from score_blocks"),
    ("oneshot_ppl", {"angular": A7[:6, :6]}, "'oneshot_ppl' needs the block-importance record"),
    ("angular", {"importance": IMPORTANCE}, "'angular' needs the last-token angular distance matrix A"),
    ("random", {}, r"'random' needs a random seed \(seed=...\)"),
])
def test_a_method_without_its_input_is_refused(method, kwargs, message):
    with pytest.raises(MissingInputError, match=message):
        plan(method, Inputs(S6, L6, protect_first=True, protect_last=True, **kwargs), 1)


def test_plans_dispatch_all_eight_methods():
    methods = ["lorp", "shortgpt", "streamline", "angular", "sleb", "oneshot_ppl", "last", "random"]
    inputs = Inputs(S6, L6, angular=A7[:6, :6], importance=IMPORTANCE, seed=0, protect_first=True, protect_last=True)
    out = plans(inputs, methods, [2])
    by_method = {p["method"]: p for p in out}
    assert [p["name"] for p in out] == [f"{m}-2" for m in methods]
    assert by_method["angular"]["removed"] == [1, 2] and by_method["angular"]["scores"]["start"] == 1
    assert by_method["sleb"]["removed"] == [2, 4] and by_method["oneshot_ppl"]["removed"] == [2, 4]
    assert by_method["last"]["removed"] == [3, 4]
    assert by_method["random"]["removed"] == random_blocks(6, 2, 0)[0]
    for p in out:
        assert p["scores"] and sorted(p["removed"] + p["kept"]) == list(range(6))
        assert 0 not in p["removed"] and 5 not in p["removed"]


def test_selection_order_follows_each_rule():
    s = np.eye(6)
    for i in range(5):
        s[i, i + 1] = s[i + 1, i] = [0.1, 0.9, 0.5, 0.8, 0.2][i]
    importance = {"ablation_ppl": [None, 12.0, 10.0, 11.0, 15.0, None], "dense_ppl": 9.0,
                  "sleb_order": [3, 1, 2], "sleb_ppl": [10.0, 11.0, 13.0]}
    labels = np.array([0, 0, 0, 1, 1, 1])
    inputs = Inputs(s, labels, importance=importance, protect_first=True, protect_last=True)
    methods = ["shortgpt", "oneshot_ppl", "sleb", "last", "lorp"]
    by = {p["name"]: selection_order(p) for p in plans(inputs, methods, [2])}
    assert by["shortgpt-2"] == [1, 3]  # S[1,2] = 0.9 before S[3,4] = 0.8
    assert by["oneshot_ppl-2"] == [2, 3]  # the lowest single-block PPL first
    assert by["sleb-2"] == [3, 1]  # SLEB's rounds
    assert by["last-2"] == [3, 4]  # depth order
    lorp_plan = plans(Inputs(s, labels, protect_first=True, protect_last=True), ["lorp"], [2])[0]
    assert by["lorp-2"] == [step["block"] for step in lorp_plan["scores"]["steps"]]
    assert sorted(by["lorp-2"]) == lorp_plan["removed"]
