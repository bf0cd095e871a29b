"""S, RLS, K and clustering on matrices with known answers."""

import math

import numpy as np
import pytest
import torch

from lorp.select.cluster import affinity, cluster, depth_ordered, members
from lorp.select.rls import RLSError, decay_profile, k_from_rls, rls, score
from lorp.select.similarity import finalize, window_similarity


def test_window_similarity_matches_direct_cosine():
    g = torch.Generator().manual_seed(0)
    states = [torch.randn(2, 5, 7, generator=g) for _ in range(3)]
    got = window_similarity(states)
    for b in range(2):
        for i in range(3):
            for j in range(3):
                cos = torch.nn.functional.cosine_similarity(states[i][b], states[j][b], dim=-1).mean()
                assert got[b, i, j] == pytest.approx(float(cos), abs=1e-6)


def test_finalize_means_windows_and_sets_unit_diagonal():
    total = torch.tensor([[1.6, 1.0], [1.0, 2.0]], dtype=torch.float64)
    s = finalize(total, 2)
    assert s.tolist() == [[1.0, 0.5], [0.5, 1.0]]


def test_rls_known_value():
    s = np.full((4, 4), 0.25)
    np.fill_diagonal(s, 1)
    assert rls(s) == pytest.approx(2.0)  # -log2(0.25)
    assert score(s, None) == {"rls": pytest.approx(2.0), "mean_off_diagonal": pytest.approx(0.25), "k": 2,
                              "k_source": "rls_policy", "num_blocks": 4}


@pytest.mark.parametrize("value, k", [(1.149, 2), (1.0, 2), (0.941, 3), (0.7, 3), (0.685, 4), (0.1, 4)])
def test_k_policy_table(value, k):
    assert k_from_rls(value) == k


def test_rls_undefined_is_an_error_unless_k_forced():
    s = np.full((3, 3), -0.2)
    np.fill_diagonal(s, 1)
    with pytest.raises(RLSError, match="undefined"):
        rls(s)
    assert score(s, 3)["rls"] is None and score(s, 3)["k"] == 3


def test_decay_profile():
    s = np.array([[1, 0.8, 0.2], [0.8, 1, 0.6], [0.2, 0.6, 1]])
    prof = decay_profile(s)
    assert [p["mean_similarity"] for p in prof] == pytest.approx([0.7, 0.2])
    assert prof[-1]["normalised_distance"] == 1.0
    assert -math.log2(np.mean([0.8, 0.2, 0.6])) == pytest.approx(rls(s))


def test_depth_ordered_labels():
    assert depth_ordered(np.array([2, 2, 0, 0, 1, 2])).tolist() == [0, 0, 1, 1, 2, 0]


def test_spectral_clustering_recovers_blocks_in_depth_order():
    s = np.full((8, 8), 0.05)
    for lo, hi in ((0, 3), (3, 6), (6, 8)):
        s[lo:hi, lo:hi] = 0.9
    np.fill_diagonal(s, 1)
    labels = cluster(s, 3)
    assert labels.tolist() == [0, 0, 0, 1, 1, 1, 2, 2]
    assert members(labels) == [[0, 1, 2], [3, 4, 5], [6, 7]]
    assert np.allclose(np.diag(affinity(s)), 1) and affinity(s)[0, 7] == pytest.approx(0.525)


def test_cluster_refuses_impossible_k():
    with pytest.raises(ValueError, match="use 2..3"):
        cluster(np.eye(3), 4)
