"""The IVF candidate index for large catalogs: exact scores for candidates, near-exact top items."""

from __future__ import annotations

import numpy as np

from openpersonalize.serving.candidates import CANDIDATE_FRACTION, ClusteredItems


def _taste_factors(
    rng: np.random.Generator, n: int, dim: int = 32
) -> tuple[np.ndarray, np.ndarray]:
    """Item factors around 40 taste directions, and those directions (users look like them)."""
    tastes = rng.normal(size=(40, dim)).astype(np.float32)
    items = tastes[rng.integers(0, 40, n)] + 0.7 * rng.normal(size=(n, dim))
    return items.astype(np.float32), tastes


def test_candidates_hold_the_exact_top_items_with_exact_scores() -> None:
    rng = np.random.default_rng(0)
    items, tastes = _taste_factors(rng, 20_000)
    index = ClusteredItems(items)
    recalls = []
    for taste in tastes[:20]:
        user = (taste + 0.5 * rng.normal(size=taste.shape)).astype(np.float32)
        exact = items @ user
        approx, codes = index.scores(user, min_candidates=100)
        scored = np.isfinite(approx)
        # The codes given are exactly the items scored, each once.
        assert sorted(codes.tolist()) == np.flatnonzero(scored).tolist()
        # Only a slice of the catalog is scored, and what is scored is scored exactly.
        assert CANDIDATE_FRACTION * len(items) <= scored.sum() < 0.5 * len(items)
        np.testing.assert_allclose(approx[scored], exact[scored], rtol=1e-4, atol=1e-4)
        top_exact = set(np.argsort(-exact)[:25].tolist())
        top_approx = set(np.argsort(-approx)[:25].tolist())
        recalls.append(len(top_exact & top_approx) / 25)
    assert np.mean(recalls) >= 0.9


def test_every_item_belongs_to_exactly_one_cluster() -> None:
    items, _ = _taste_factors(np.random.default_rng(1), 5_000)
    index = ClusteredItems(items)
    assert sorted(index.order.tolist()) == list(range(len(items)))
    # The tiny clusters' items come first, as one block; then the probed clusters, in order.
    assert index.offsets[0] == index.always and index.offsets[-1] == len(items)
    assert len(index.offsets) == len(index.centroids) + 1
    np.testing.assert_array_equal(index.factors, items[index.order])


def test_asking_for_more_candidates_than_items_scores_everything() -> None:
    items, _ = _taste_factors(np.random.default_rng(2), 3_000)
    user = np.ones(items.shape[1], dtype=np.float32)
    scores, codes = ClusteredItems(items).scores(user, min_candidates=10_000)
    np.testing.assert_allclose(scores, items @ user, rtol=1e-4, atol=1e-4)
    assert sorted(codes.tolist()) == list(range(len(items)))


def test_skewed_factors_keep_the_top_items() -> None:
    """Trained factors crowd near the origin (items with few events) while the items users
    like most stand out; k-means then leaves those in tiny clusters, which must still be
    scored."""
    rng = np.random.default_rng(3)
    n, dim = 60_000, 32
    items = (0.05 * rng.normal(size=(n, dim))).astype(np.float32)
    strong = rng.choice(n, 600, replace=False)
    items[strong] = rng.normal(size=(600, dim)).astype(np.float32) * 2
    index = ClusteredItems(items)
    recalls = []
    for _ in range(30):
        user = rng.normal(size=dim).astype(np.float32)
        approx, codes = index.scores(user, min_candidates=100)
        assert len(codes) < 0.5 * n
        exact_top = set(np.argsort(-(items @ user))[:25].tolist())
        recalls.append(len(exact_top & set(np.argsort(-approx)[:25].tolist())) / 25)
    assert np.mean(recalls) >= 0.9  # 0.76 when tiny clusters are probed like the others
