"""An inverted-file (IVF) index over item factors, so large catalogs are not scored in full.

Scoring a user against every item is one matrix-vector product, memory-bound: 100k items of
149 float32 factors is 60 MB read per request. Grouping the items into about sqrt(n)/2 k-means
clusters and scoring only the items of the clusters whose centroids score best for the user
reads a twentieth of that, and finds nearly all of the exact top items (the clusters near the
user's direction hold them). Scores of the candidates are exact; items outside them are not
scored at all.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

MIN_ITEMS = 50_000  # below this a full product is already fast (and exact)
CANDIDATE_FRACTION = 0.05  # score at least this share of the catalog per request
KMEANS_ITERATIONS = 8
# Clusters: half of sqrt(n) (about 160 of 630 items for 100k). Fewer, larger clusters mean fewer
# probes per request (each a Python-level step) for the same share of the catalog scored.
CLUSTERS_PER_SQRT_ITEMS = 0.5
KMEANS_SAMPLE = 20_000  # items the centroids are fitted on; all items are then assigned
SMALL_CLUSTER = 4.0  # a cluster under 1/SMALL_CLUSTER of the mean size is never probed alone


class ClusteredItems:
    """Item factors grouped by k-means cluster, each cluster a contiguous block."""

    def __init__(self, item_factors: np.ndarray, seed: int = 0) -> None:
        factors = np.ascontiguousarray(item_factors, dtype=np.float32)
        n_items = len(factors)
        n_clusters = max(1, int(round(np.sqrt(n_items) * CLUSTERS_PER_SQRT_ITEMS)))
        centroids = _kmeans(factors, n_clusters, np.random.default_rng(seed))
        assignment = _nearest(factors, centroids)
        sizes = np.bincount(assignment, minlength=n_clusters)
        # Trained factors are skewed: besides ordinary clusters k-means leaves many tiny ones
        # (a few items each, often ones that score high). Probing them one by one would cost
        # a Python-level step per few items, so their items form one block at the front that
        # every request scores in a single product, and only the others are probed.
        small = sizes < len(factors) / n_clusters / SMALL_CLUSTER
        rank = np.empty(n_clusters, dtype=np.int64)
        rank[np.argsort(~small, kind="stable")] = np.arange(n_clusters)
        self.order = np.argsort(rank[assignment], kind="stable").astype(np.int64)
        self.always = int(sizes[small].sum())  # items of the front block
        large = np.flatnonzero(~small)
        self.offsets = self.always + np.concatenate([[0], np.cumsum(sizes[large])]).astype(np.int64)
        self.factors = factors[self.order]  # cluster-contiguous copy: each probe is one slice
        self.centroids = centroids[large]
        self.n_items = n_items

    def scores(self, user_vector: np.ndarray, min_candidates: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores, candidate codes): exact scores for the items of the best clusters (at
        least ``min_candidates`` items, and at least CANDIDATE_FRACTION of the catalog), -inf
        for every other item; and the codes of the items scored, so that what follows works
        on them alone rather than on the whole catalog."""
        wanted = max(min_candidates, int(self.n_items * CANDIDATE_FRACTION))
        spans = [(0, self.always)] if self.always else []
        if len(self.centroids) and wanted > self.always:
            ranked_clusters = np.argsort(-(self.centroids @ user_vector))
            sizes = np.diff(self.offsets)[ranked_clusters]
            probes = int(np.searchsorted(np.cumsum(sizes), wanted - self.always)) + 1
            chosen = ranked_clusters[:probes]
            starts, ends = self.offsets[chosen].tolist(), self.offsets[chosen + 1].tolist()
            spans += list(zip(starts, ends, strict=True))
        codes = np.concatenate([self.order[start:end] for start, end in spans])
        scores = np.full(self.n_items, -np.inf, dtype=np.float32)
        scores[codes] = np.concatenate(
            [self.factors[start:end] @ user_vector for start, end in spans]
        )
        return scores, codes


def _kmeans(factors: np.ndarray, n_clusters: int, rng: np.random.Generator) -> np.ndarray:
    """Lloyd's k-means on a sample of the items; empty clusters re-seeded from the sample."""
    sample = factors[rng.choice(len(factors), min(len(factors), KMEANS_SAMPLE), replace=False)]
    centroids = sample[rng.choice(len(sample), n_clusters, replace=False)].copy()
    for _ in range(KMEANS_ITERATIONS):
        assignment = _nearest(sample, centroids)
        counts = np.bincount(assignment, minlength=n_clusters)
        members = sp.csr_matrix(
            (np.ones(len(sample), dtype=np.float32), (assignment, np.arange(len(sample)))),
            shape=(n_clusters, len(sample)),
        )
        sums = np.asarray(members @ sample)
        filled = counts > 0
        centroids[filled] = sums[filled] / counts[filled, None]
        empty = np.flatnonzero(~filled)
        centroids[empty] = sample[rng.choice(len(sample), len(empty), replace=False)]
    return centroids


def _nearest(points: np.ndarray, centroids: np.ndarray, batch: int = 8192) -> np.ndarray:
    """Index of the nearest centroid (Euclidean) per point, in batches to bound memory."""
    squared_norms = np.einsum("ij,ij->i", centroids, centroids)
    out = np.empty(len(points), dtype=np.int64)
    for start in range(0, len(points), batch):
        block = points[start : start + batch]
        out[start : start + batch] = np.argmin(squared_norms - 2.0 * block @ centroids.T, axis=1)
    return out
