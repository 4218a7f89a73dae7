"""Frequently bought together: items that share a basket with a given item.

A basket is one user's purchases with no gap longer than ``basket_gap_seconds`` between
consecutive ones, so a shopping trip is one basket and next month's order is another. (The
Interactions data holds no order or session ID, so time is what marks a basket.) Two items
bought in one basket co-occur ``basket_weight`` times; bought by one buyer at different times,
once -- so a shop whose orders hold one item each (the Retail Demo Store's) still gets what
its buyers also bought, and baskets rank first where they exist. From these counts the
neighbours are computed exactly as aws-sims computes them, with the same popularity discount.
"""

from __future__ import annotations

from typing import Self

import numpy as np
import scipy.sparse as sp

from openpersonalize.data.interactions import InteractionData
from openpersonalize.recipes.sims import NeighbourModel, cooccurrence_neighbours

__all__ = ["BasketModel", "basket_codes"]


class BasketModel(NeighbourModel):
    """Co-purchases within baskets; see the module docstring."""

    def __init__(
        self,
        basket_gap_seconds: int = 3600,
        basket_weight: float = 10.0,
        popularity_discount_factor: float = 0.5,
        min_cointeraction_count: int = 1,
    ) -> None:
        self.basket_gap_seconds = basket_gap_seconds
        self.basket_weight = basket_weight
        self.popularity_discount_factor = popularity_discount_factor
        self.min_cointeraction_count = min_cointeraction_count

    def fit(self, data: InteractionData) -> Self:
        self._learn_history(data)
        baskets = basket_codes(data.users, data.timestamps, int(self.basket_gap_seconds))
        n_baskets = int(baskets.max()) + 1 if len(baskets) else 0
        # Rows: every basket, then every buyer. A pair's count is the sum over rows holding
        # both of the product of their entries, so basket entries of sqrt(weight) count
        # `basket_weight` per basket.
        took = sp.vstack(
            [
                _binary(baskets, data.items, n_baskets, data.n_items)
                * np.sqrt(float(self.basket_weight)),
                _binary(data.users, data.items, data.n_users, data.n_items),
            ]
        ).tocsr()
        indptr, items, scores = cooccurrence_neighbours(
            took,
            min_count=max(int(self.min_cointeraction_count), 1),
            discount=float(self.popularity_discount_factor),
            max_neighbours=int(self.max_neighbours),
        )
        self._set_neighbours(indptr, items, scores)
        return self


def _binary(rows: np.ndarray, items: np.ndarray, n_rows: int, n_items: int) -> sp.csr_matrix:
    """1 where a row (basket or buyer) holds an item, however often it was bought there."""
    matrix = sp.csr_matrix(
        (np.ones(len(rows), dtype=np.float32), (rows, items)), shape=(n_rows, n_items)
    )
    matrix.sum_duplicates()
    matrix.data[:] = 1.0
    return matrix


def basket_codes(users: np.ndarray, timestamps: np.ndarray, gap_seconds: int) -> np.ndarray:
    """A basket number per event: a new basket starts at a user's first event and after every
    gap longer than `gap_seconds` between the user's consecutive events."""
    if len(users) == 0:
        return np.empty(0, dtype=np.int64)
    order = np.lexsort((timestamps, users))
    sorted_users, sorted_times = users[order], timestamps[order].astype(np.int64)
    starts = np.ones(len(order), dtype=bool)
    starts[1:] = (sorted_users[1:] != sorted_users[:-1]) | (np.diff(sorted_times) > gap_seconds)
    codes = np.empty(len(order), dtype=np.int64)
    codes[order] = np.cumsum(starts) - 1
    return codes
