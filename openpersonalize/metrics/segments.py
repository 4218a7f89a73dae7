"""Offline metrics of the USER_SEGMENTATION recipes: `hit` and `recall` at the top 1 % of users.

The service splits each user's interactions 80 % / 20 % for these recipes. Here the newest
20 % of each user's events (at least one, for users with two or more) are held out; the
model trains on the rest. For every held-out item, users are ranked by the model's affinity
to it, leaving out those who already had the item in training (a segment should find the
users who are about to interact). With K = the top 1 % of users (at least 1): `hit` is the
share of items whose top K holds at least one user who interacted with it in the held-out
data, `recall` the mean share of those users found in the top K.
"""

from __future__ import annotations

import math

import numpy as np

from openpersonalize.data.interactions import InteractionData
from openpersonalize.recipes.base import Model

__all__ = ["held_out_newest", "segment_metrics"]

HOLD_OUT = 0.2
TOP_USERS = 0.01


def held_out_newest(
    data: InteractionData, fraction: float = HOLD_OUT
) -> tuple[InteractionData, np.ndarray, np.ndarray]:
    """(training data, held-out user codes, held-out item codes): each user's newest events."""
    order = np.lexsort((np.arange(data.n_events), data.timestamps, data.users))
    users = data.users[order]
    counts = np.bincount(users, minlength=data.n_users)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    rank = np.arange(len(order)) - starts[users]  # 0 = the user's oldest event
    held = np.where(counts >= 2, np.clip(np.round(counts * fraction), 1, counts - 1), 0)
    test = rank >= (counts - held)[users]
    mask = np.zeros(data.n_events, dtype=bool)
    mask[order[test]] = True
    return data.subset(~mask), data.users[mask], data.items[mask]


def segment_metrics(
    model: Model, train: InteractionData, test_users: np.ndarray, test_items: np.ndarray
) -> dict[str, float]:
    k = max(1, math.ceil(TOP_USERS * train.n_users))
    seen = train.matrix().tocsc()
    hits: list[float] = []
    recalls: list[float] = []
    for item in np.unique(test_items):
        truth = set(test_users[test_items == item].tolist())
        scores = np.asarray(model.user_affinity(np.array([item])), dtype=np.float64).copy()
        had = seen.indices[seen.indptr[item] : seen.indptr[item + 1]]
        scores[had] = -np.inf
        truth -= set(had.tolist())
        if not truth:
            continue
        top = np.argpartition(-scores, k - 1)[:k]
        found = len(truth & set(top.tolist()))
        hits.append(float(found > 0))
        recalls.append(found / len(truth))
    if not hits:
        return {"hit": 0.0, "recall": 0.0}
    return {"hit": float(np.mean(hits)), "recall": float(np.mean(recalls))}
