"""Selection rules on hand-built S with answers worked out by hand from the method page."""

import numpy as np
import pytest

from lorp.select.allocate import lorp, member_redundancy, residual_redundancy
from lorp.select.baselines import BudgetError, shortgpt, streamline
from lorp.select.plans import Inputs, plans


def sym(n: int, entries: dict[tuple[int, int], float], fill: float = 0.1) -> np.ndarray:
    s = np.full((n, n), fill)
    for (i, j), v in entries.items():
        s[i, j] = s[j, i] = v
    np.fill_diagonal(s, 1.0)
    return s


# Two clusters {0,1,2} {3,4,5}; r(1)=0.8, r(2)=0.6, r(3)=r(4)=0.7 (a tie), blocks 0 and 5 protected.
S6 = sym(6, {(0, 1): 0.9, (0, 2): 0.5, (1, 2): 0.7, (3, 4): 0.8, (3, 5): 0.6, (4, 5): 0.6})
L6 = np.array([0, 0, 0, 1, 1, 1])


def test_member_redundancy_by_hand():
    r = member_redundancy(S6, L6)
    assert r[1] == pytest.approx(0.8) and r[2] == pytest.approx(0.6)
    assert r[3] == pytest.approx(0.7) and r[4] == pytest.approx(0.7)


@pytest.mark.parametrize("budget, expected", [
    (1, [1]),           # Stage 1 visits cluster 0 first
    (2, [1, 3]),        # one per cluster; r tie 3 vs 4 keeps depth order
    (3, [1, 3, 4]),     # Stage 2: mu_0 = S[0,2] = 0.5 < mu_1 = S[4,5] = 0.6
    (4, [1, 2, 3, 4]),  # every prunable block
])
def test_lorp_stages(budget, expected):
    assert lorp(S6, L6, budget)[0] == expected


def test_lorp_stage2_tie_takes_lowest_cluster():
    s = S6.copy()
    s[4, 5] = s[5, 4] = 0.5  # mu_1 = 0.5 = mu_0; r(4) = 0.65 < r(3) = 0.7
    assert lorp(s, L6, 3)[0] == [1, 2, 3]


def test_lorp_budget_beyond_prunable_is_refused():
    with pytest.raises(BudgetError, match="exceeds the 4 non-protected blocks"):
        lorp(S6, L6, 5)


def test_lorp_singleton_and_all_minus_inf_fallback():
    # No protection; clusters {0,1} {2,3} {4}. After Stage 1 (0, 2, 4) each cluster with candidates has a
    # single remaining member (mu = -inf), so Stage 2 takes the lowest cluster id: block 1.
    s = sym(5, {(0, 1): 0.6, (2, 3): 0.9})
    labels = np.array([0, 0, 1, 1, 2])
    r = member_redundancy(s, labels)
    assert r[4] == float("-inf")
    removed, scores = lorp(s, labels, 4, protect_first=False, protect_last=False)
    assert removed == [0, 1, 2, 4]
    assert [st["block"] for st in scores["steps"]] == [0, 2, 4, 1]
    assert scores["steps"][-1]["stage"] == 2 and scores["steps"][-1]["mu"] is None


def test_lorp_singleton_candidate_comes_last_within_budget():
    # Protected 0 and 4; clusters {0,1} {2} {3,4}; Stage 1 takes the singleton's only candidate too.
    s = sym(5, {(0, 1): 0.8, (3, 4): 0.7})
    assert lorp(s, np.array([0, 0, 1, 2, 2]), 2)[0] == [1, 2]
    assert lorp(s, np.array([0, 0, 1, 2, 2]), 3)[0] == [1, 2, 3]


def test_residual_redundancy():
    assert residual_redundancy(S6, [0, 2]) == pytest.approx(0.5)
    assert residual_redundancy(S6, [3]) == float("-inf")
    assert residual_redundancy(S6, [3, 4, 5]) == pytest.approx((0.8 + 0.6 + 0.6) / 3)


# s_i = S[i, i+1]: i=1 0.9, i=2 0.5, i=3 0.9, i=4 0.7; block 0 and block 5 are never chosen.
S_CHAIN = sym(6, {(0, 1): 0.99, (1, 2): 0.9, (2, 3): 0.5, (3, 4): 0.9, (4, 5): 0.7})


@pytest.mark.parametrize("budget, expected", [(1, [1]), (2, [1, 3]), (3, [1, 3, 4]), (4, [1, 2, 3, 4])])
def test_shortgpt(budget, expected):
    removed, scores = shortgpt(S_CHAIN, budget)
    assert removed == expected
    assert scores["block_similarity"][0] == float("-inf")


def test_shortgpt_refuses_too_large_budget():
    with pytest.raises(ValueError, match="at most 4"):
        shortgpt(S_CHAIN, 5)


def test_streamline_takes_best_run_and_smallest_start_on_ties():
    s = sym(7, {(1, 3): 0.8, (2, 4): 0.6, (3, 5): 0.8, (4, 6): 0.3})
    removed, scores = streamline(s, 2)
    assert removed == [1, 2]  # c_1 = c_3 = 0.8: the smallest start wins
    assert set(scores["run_similarity"]) == {"1", "2", "3", "4"}  # s = 1 .. N-n-1: never block 0 or N-1
    s[4, 6] = s[6, 4] = 0.95
    assert streamline(s, 2)[0] == [4, 5]
    assert streamline(s, 5)[0] == [1, 2, 3, 4, 5]


def test_plans_cover_every_method_and_budget():
    out = plans(Inputs(S6, L6, protect_first=True, protect_last=True), ["lorp", "shortgpt", "streamline"], [2, 1])
    assert [p["name"] for p in out] == ["lorp-1", "lorp-2", "shortgpt-1", "shortgpt-2", "streamline-1", "streamline-2"]
    for p in out:
        assert sorted(p["removed"] + p["kept"]) == list(range(6)) and len(p["removed"]) == p["budget"]
