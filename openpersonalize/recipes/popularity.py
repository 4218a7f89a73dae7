"""aws-popularity-count: the most popular items, the same list for every user."""

from __future__ import annotations

from typing import Self

import numpy as np

from openpersonalize.data.interactions import InteractionData
from openpersonalize.recipes.base import Model

__all__ = ["PopularityModel"]


class PopularityModel(Model):
    """Scores an item by the summed weights of its events.

    The weights already carry the solution's eventsConfig, so a purchase worth 1.0 counts
    more than a click worth 0.2. Every user, known or not, gets the same scores; only the
    excluded items differ. The recipe has no hyperparameters.
    """

    def __init__(self) -> None:
        pass

    def fit(self, data: InteractionData) -> Self:
        self.popularity_ = np.bincount(
            data.items, weights=data.weights.astype(np.float64), minlength=data.n_items
        ).astype(np.float32)
        self.n_users_ = data.n_users
        self.n_items_ = data.n_items
        return self

    def score(self, users: np.ndarray) -> np.ndarray:
        return np.tile(np.asarray(self.popularity_, dtype=np.float32), (len(users), 1))

    def rank(self, user: int, items: np.ndarray) -> np.ndarray:
        # The same for every user: index the counts directly instead of scoring the catalog.
        self._check_fitted()
        items = np.asarray(items).astype(np.int64, copy=False).reshape(-1)
        known = (items >= 0) & (items < self.n_items_)
        out = np.full(len(items), np.nan, dtype=np.float32)
        out[known] = self.popularity_[items[known]]
        return out
