"""The hot path's one-row top-k picks exactly what the models' batched top_k picks: the best
allowed items, equal scores to the lower item code, -inf and nan never; its score
normalization is the plain softmax formula."""

from __future__ import annotations

import math

import numpy as np

from openpersonalize.recipes.base import top_k
from openpersonalize.serving.engine import _top, codes_of, normalized


def test_one_row_top_matches_top_k() -> None:
    rng = np.random.default_rng(0)
    for _ in range(3000):
        n = int(rng.integers(1, 60))
        scores = rng.integers(0, 6, n).astype(np.float32)  # few values: many ties at the cut
        scores[rng.random(n) < 0.1] = -np.inf
        scores[rng.random(n) < 0.05] = np.nan
        # Every item allowed (no filter) takes a path of its own.
        allowed = rng.random(n) < 0.8 if rng.random() < 0.7 else np.ones(n, dtype=bool)
        k = int(rng.integers(1, 70))
        candidates = np.flatnonzero(allowed)
        # Codes come in any order (a candidate index gives them cluster by cluster).
        codes = codes_of(allowed) if rng.random() < 0.5 else rng.permutation(candidates)
        if len(candidates) == 0:
            assert _top(scores, codes, k) == []
            continue
        expected_codes, _ = top_k(scores[candidates][None, :], min(k, len(candidates)))
        expected = [int(candidates[c]) for c in expected_codes[0] if c >= 0]
        assert _top(scores, codes, k) == expected

def test_normalized_is_the_softmax_over_allowed_items() -> None:
    rng = np.random.default_rng(1)
    for n, offset in ((1, 0.0), (7, 3.0), (9742, -40.0), (100_000, 0.5)):
        scores = (rng.standard_normal(n) * rng.uniform(0.01, 5) + offset).astype(np.float32)
        for allowed in (np.ones(n, dtype=bool), rng.random(n) < 0.3):
            if not allowed.any():
                continue
            chosen = scores[allowed].astype(np.float64)
            scale = float(np.std(chosen)) or 1.0
            shift, got_scale = normalized(scores, codes_of(allowed))
            assert math.isclose(got_scale, scale, rel_tol=1e-4)
            total = np.exp((chosen - shift) / got_scale).sum()
            assert math.isclose(total, 1.0, rel_tol=1e-4)
