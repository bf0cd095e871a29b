"""Spectral clustering of blocks on the affinity (S + 1) / 2 (method page, eq. 7)."""

import numpy as np


def affinity(s: np.ndarray) -> np.ndarray:
    a = (s + 1.0) / 2.0
    np.fill_diagonal(a, 1.0)
    return a


def depth_ordered(labels: np.ndarray) -> np.ndarray:
    """Rename cluster ids in order of first appearance going deeper: block 0's cluster becomes 0."""
    mapping: dict[int, int] = {}
    for label in labels:
        mapping.setdefault(int(label), len(mapping))
    return np.array([mapping[int(label)] for label in labels], dtype=int)


def cluster(s: np.ndarray, k: int, random_state: int = 0) -> np.ndarray:
    if not 2 <= k <= len(s):
        raise ValueError(f"K={k} clusters is impossible for {len(s)} blocks: use 2..{len(s)}")
    from sklearn.cluster import SpectralClustering  # heavy: only clustering pays for it

    model = SpectralClustering(n_clusters=k, affinity="precomputed", assign_labels="kmeans",
                               random_state=random_state)
    return depth_ordered(model.fit_predict(affinity(s)))


def members(labels: np.ndarray) -> list[list[int]]:
    return [[int(i) for i in np.flatnonzero(labels == k)] for k in range(int(labels.max()) + 1)]
