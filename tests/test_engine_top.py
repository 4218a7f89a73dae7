"""The hot path's one-row top-k picks exactly what the models' batched top_k picks: the best
allowed items, equal scores to the lower item code, -inf and nan never."""

from __future__ import annotations

import numpy as np

from openpersonalize.recipes.base import top_k
from openpersonalize.serving.engine import _top


def test_one_row_top_matches_top_k() -> None:
    rng = np.random.default_rng(0)
    for _ in range(3000):
        n = int(rng.integers(1, 60))
        scores = rng.integers(0, 6, n).astype(np.float32)  # few values: many ties at the cut
        scores[rng.random(n) < 0.1] = -np.inf
        scores[rng.random(n) < 0.05] = np.nan
        allowed = rng.random(n) < 0.8
        k = int(rng.integers(1, 70))
        candidates = np.flatnonzero(allowed)
        if len(candidates) == 0:
            assert _top(scores, allowed, k) == []
            continue
        codes, _ = top_k(scores[candidates][None, :], min(k, len(candidates)))
        expected = [int(candidates[c]) for c in codes[0] if c >= 0]
        assert _top(scores, allowed, k) == expected
