"""Offline ranking metrics as GetSolutionMetrics reports them (spec section 7).

Every metric is computed from one boolean hit matrix, ``hit[u, j]`` = the j-th
recommendation for test user u is one of u's truth items, built with numpy set operations
(no Python loop per user). Definitions, with K in (5, 10, 25) and positions from 1:

* ``precision_at_K`` = hits in the top K / K (always K, even when fewer truth items exist);
* ``normalized_discounted_cumulative_gain_at_K`` = sum of ``1/log(1 + position)`` over hits
  in the top K, divided by the same sum for ``min(|truth|, K)`` hits at the top;
* ``mean_reciprocal_rank_at_25`` = 1 / position of the first hit in the top 25, 0 if none;
* ``coverage`` = distinct items recommended in anyone's top 25 / ``n_items`` (the items of
  Interactions and Items together, i.e. the item vocabulary).

Averages run over test users with a non-empty truth (an empty truth has no ideal ranking).
An item recommended twice to one user counts once, at its first position. Padding (-1) is
never a hit and never covered.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = [
    "CUTOFFS",
    "EXTENDED_METRIC_NAMES",
    "METRIC_NAMES",
    "average_rewards",
    "extended_metrics",
    "ranking_metrics",
]

CUTOFFS = (5, 10, 25)
_DEPTH = max(CUTOFFS)

METRIC_NAMES = (
    "coverage",
    "mean_reciprocal_rank_at_25",
    "normalized_discounted_cumulative_gain_at_5",
    "normalized_discounted_cumulative_gain_at_10",
    "normalized_discounted_cumulative_gain_at_25",
    "precision_at_5",
    "precision_at_10",
    "precision_at_25",
)
EXTENDED_METRIC_NAMES = METRIC_NAMES + tuple(
    f"{name}_at_{k}" for name in ("recall", "hit_rate") for k in CUTOFFS
)

# 1/log2(1 + position) for positions 1.._DEPTH; the log base cancels out in the ratio.
_DISCOUNT = 1.0 / np.log2(np.arange(2, _DEPTH + 2, dtype=np.float64))
_IDEAL = np.concatenate(([0.0], np.cumsum(_DISCOUNT)))  # _IDEAL[m]: m hits at the top


def ranking_metrics(
    recommended: np.ndarray, truth: Sequence[np.ndarray], n_items: int
) -> dict[str, float]:
    """The service's metrics (METRIC_NAMES) of top-25 lists against each user's truth.

    ``recommended``: (n_test_users, >= 25) item codes, best first, -1 for padding (fewer
    columns are padded). ``truth[u]``: item codes of test user u's held-out events.
    """
    top, hit, n_truth = _hit_matrix(recommended, truth)
    return _service_metrics(top, hit, n_truth, n_items)


def extended_metrics(
    recommended: np.ndarray, truth: Sequence[np.ndarray], n_items: int
) -> dict[str, float]:
    """ranking_metrics plus our own recall_at_K and hit_rate_at_K (not the service's).

    ``recall_at_K`` = hits in the top K / |truth|; ``hit_rate_at_K`` = share of users with
    at least one hit in the top K.
    """
    top, hit, n_truth = _hit_matrix(recommended, truth)
    metrics = _service_metrics(top, hit, n_truth, n_items)
    scored = n_truth > 0
    hit, n_truth = hit[scored], n_truth[scored]
    for k in CUTOFFS:
        hits = hit[:, :k].sum(axis=1)
        metrics[f"recall_at_{k}"] = float(np.mean(hits / n_truth)) if len(hits) else 0.0
    for k in CUTOFFS:
        hits = hit[:, :k].any(axis=1)
        metrics[f"hit_rate_at_{k}"] = float(np.mean(hits)) if len(hits) else 0.0
    return metrics


def _service_metrics(
    top: np.ndarray, hit: np.ndarray, n_truth: np.ndarray, n_items: int
) -> dict[str, float]:
    """METRIC_NAMES from the hit matrix, averaged over users with a non-empty truth."""
    metrics = {"coverage": _coverage(top, n_items)}
    scored = n_truth > 0
    hit, n_truth = hit[scored], n_truth[scored]
    if not len(n_truth):
        metrics.update({name: 0.0 for name in METRIC_NAMES[1:]})
        return metrics

    any_hit = hit.any(axis=1)
    first = hit.argmax(axis=1)  # first True, or 0 when none (masked by any_hit)
    metrics["mean_reciprocal_rank_at_25"] = float(np.mean(np.where(any_hit, 1.0 / (first + 1), 0)))
    for k in CUTOFFS:
        dcg = hit[:, :k] @ _DISCOUNT[:k]
        ideal = _IDEAL[np.minimum(n_truth, k)]
        metrics[f"normalized_discounted_cumulative_gain_at_{k}"] = float(np.mean(dcg / ideal))
    for k in CUTOFFS:
        metrics[f"precision_at_{k}"] = float(np.mean(hit[:, :k].sum(axis=1) / k))
    return {name: metrics[name] for name in METRIC_NAMES}


def _hit_matrix(
    recommended: np.ndarray, truth: Sequence[np.ndarray]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(top-25 item codes, boolean hit matrix, distinct truth items per user)."""
    rec = np.asarray(recommended)
    if rec.ndim != 2:
        raise ValueError("recommended must be a 2-D array (test users x positions)")
    if rec.shape[0] != len(truth):
        raise ValueError(f"recommended has {rec.shape[0]} rows but truth has {len(truth)} users")
    n_users = rec.shape[0]
    top = np.full((n_users, _DEPTH), -1, dtype=np.int64)
    width = min(rec.shape[1], _DEPTH)
    top[:, :width] = rec[:, :width]

    lengths = np.fromiter((len(t) for t in truth), dtype=np.int64, count=n_users)
    flat = (
        np.concatenate([np.asarray(t, dtype=np.int64).ravel() for t in truth])
        if n_users
        else np.empty(0, dtype=np.int64)
    )
    owner = np.repeat(np.arange(n_users, dtype=np.int64), lengths)
    valid_truth = flat >= 0
    flat, owner = flat[valid_truth], owner[valid_truth]
    # One int64 key per (user, item) pair; the stride exceeds every item code.
    stride = int(max(flat.max(initial=-1), top.max(initial=-1))) + 1
    truth_keys = np.unique(owner * stride + flat)
    n_truth = np.bincount(truth_keys // max(stride, 1), minlength=n_users)

    valid = top >= 0
    keys = np.arange(n_users, dtype=np.int64)[:, None] * stride + top
    hit = valid & np.isin(keys, truth_keys)
    # A repeated recommendation counts once: keep only each key's first position.
    flat_keys = np.where(valid, keys, -1).ravel()
    _, first = np.unique(flat_keys, return_index=True)
    first_mask = np.zeros(flat_keys.shape, dtype=bool)
    first_mask[first] = True
    hit &= first_mask.reshape(hit.shape)
    return top, hit, n_truth


def _coverage(top: np.ndarray, n_items: int) -> float:
    if n_items <= 0:
        return 0.0
    recommended = np.unique(top[top >= 0])
    return float(len(recommended) / n_items)


def average_rewards(
    recommended: np.ndarray, truth: Sequence[np.ndarray], rewards: np.ndarray
) -> float:
    """``average_rewards_at_k`` (only with an optimizationObjective): per test user, the mean
    reward (the objective attribute, e.g. PRICE) of the top-25 recommendations the user went
    on to interact with, over the mean reward of the 25 most rewarding items (what a list
    chasing reward alone would offer); averaged over the users with such interactions and
    capped at 1, so it lies in (0, 1] (0 when no recommendation was taken up).
    """
    top, hit, _ = _hit_matrix(recommended, truth)
    best = float(np.sort(rewards)[-_DEPTH:].mean()) if len(rewards) else 0.0
    hits_per_user = hit.sum(axis=1)
    taken_up = hits_per_user > 0
    if best <= 0 or not taken_up.any():
        return 0.0
    gained = np.where(hit, rewards[np.maximum(top, 0)], 0.0).sum(axis=1)
    return float(min(np.mean(gained[taken_up] / hits_per_user[taken_up]) / best, 1.0))
