"""aws-sims: item-to-item collaborative filtering from co-occurrence in user histories.

Two items co-occur once for every user whose history holds both. The similarity of a
candidate ``j`` to a query item ``i`` is their co-occurrence count divided by
``popularity(j) ** popularity_discount_factor`` (popularity: the users who took ``j``), so 0
ranks by raw counts and 1 by ``P(i | j)``, which keeps hits from being everyone's neighbour.

The recipe's hyperparameters:

* ``popularity_discount_factor`` (0..1): the exponent above.
* ``min_cointeraction_count``: pairs that co-occur fewer times are not neighbours.
* ``min_user_history_length_percentile`` / ``max_user_history_length_percentile``: users
  whose event count lies outside these percentiles (of users with events) are left out of
  the co-occurrence counts; very heavy users (bots, crawlers) would otherwise relate
  everything to everything.
* ``min_item_interaction_count_percentile`` / ``max_item_interaction_count_percentile``:
  items whose event count lies outside these percentiles (of items with events) are left
  out: they get no neighbours and are nobody's neighbour.

Only the best `NeighbourModel.max_neighbours` neighbours of each item are kept, as CSR
arrays, so the artifact grows with the catalog, not with its square. `similar_items` lists
the neighbours and then the rest of the catalog by popularity (scored below the weakest
neighbour), so an item without neighbours still gets a list.
"""

from __future__ import annotations

from typing import Self

import numpy as np
import scipy.sparse as sp

from openpersonalize.data.interactions import InteractionData
from openpersonalize.recipes.base import Model, top_k

__all__ = ["NeighbourModel", "SimsModel", "within_percentiles"]


class NeighbourModel(Model):
    """A model that is a sparse item-to-item similarity: top neighbours per item as CSR arrays.

    Subclasses compute the neighbours in `fit` and call `_learn_history` and
    `_set_neighbours`; scoring, `similar_items` and `fold_in` are written here. A user's score
    for an item is the summed similarity of the item to the user's history (each item counted
    once, at its strongest event weight); items no history item reaches, and users without a
    history, are scored by popularity, below every reached item.
    """

    #: Neighbours kept per item: enough for any page of related items after filtering.
    max_neighbours: int = 200

    # -- state shared by every neighbour model ---------------------------------------------------

    def _learn_history(self, data: InteractionData) -> None:
        """n_users_, n_items_, popularity_ and the per-user history as CSR arrays."""
        self.__dict__.pop("_similarity", None)  # caches of a previous fit
        self.__dict__.pop("_history", None)
        history = _strongest_weights(data)
        self.history_indptr_ = history.indptr.astype(np.int64)
        self.history_items_ = history.indices.astype(np.int32)
        self.history_weights_ = history.data.astype(np.float32)
        self.popularity_ = np.bincount(
            data.items, weights=data.weights.astype(np.float64), minlength=data.n_items
        ).astype(np.float32)
        self.n_users_ = data.n_users
        self.n_items_ = data.n_items

    def _set_neighbours(self, indptr: np.ndarray, items: np.ndarray, scores: np.ndarray) -> None:
        self.neighbour_indptr_ = np.asarray(indptr, dtype=np.int64)
        self.neighbour_items_ = np.asarray(items, dtype=np.int32)
        self.neighbour_scores_ = np.asarray(scores, dtype=np.float32)

    # -- scoring ------------------------------------------------------------------------------

    def score(self, users: np.ndarray) -> np.ndarray:
        users = np.asarray(users)
        known = (users >= 0) & (users < self.n_users_)
        reached = np.zeros((len(users), self.n_items_), dtype=np.float32)
        if known.any():
            history = self._history_matrix()[users[known]]
            reached[known] = (history @ self._similarity_matrix()).toarray()
        return _with_popularity_fallback(reached, self._popularity_share())

    def fold_in(self, items: np.ndarray, weights: np.ndarray) -> np.ndarray | None:
        """Summed similarity to a history given at request time (each item once, strongest)."""
        self._check_fitted()
        items = np.asarray(items, dtype=np.int64).reshape(-1)
        weights = np.asarray(weights, dtype=np.float32).reshape(-1)
        inside = (items >= 0) & (items < self.n_items_)
        if not inside.any():
            return None
        strongest = np.zeros(self.n_items_, dtype=np.float32)
        np.maximum.at(strongest, items[inside], weights[inside])
        reached = (sp.csr_matrix(strongest[None, :]) @ self._similarity_matrix()).toarray()
        return _with_popularity_fallback(reached, self._popularity_share())[0]

    def similar_items(self, item: int, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The item's neighbours by similarity, then the rest of the catalog by popularity."""
        self._check_fitted()
        reached = np.zeros((1, self.n_items_), dtype=np.float32)
        if 0 <= item < self.n_items_:
            start, stop = self.neighbour_indptr_[item], self.neighbour_indptr_[item + 1]
            reached[0, self.neighbour_items_[start:stop]] = self.neighbour_scores_[start:stop]
        scores = _with_popularity_fallback(reached, self._popularity_share())
        if 0 <= item < self.n_items_:
            scores[0, item] = -np.inf
        items, values = top_k(scores, k)
        return items[0], values[0]

    def neighbours(self, item: int) -> tuple[np.ndarray, np.ndarray]:
        """The stored neighbours of `item` (codes and similarities, best first); empty if none."""
        self._check_fitted()
        if not 0 <= item < self.n_items_:
            return np.empty(0, dtype=np.int32), np.empty(0, dtype=np.float32)
        start, stop = self.neighbour_indptr_[item], self.neighbour_indptr_[item + 1]
        return (
            np.array(self.neighbour_items_[start:stop]),
            np.array(self.neighbour_scores_[start:stop]),
        )

    # -- caches (not saved: names start with "_"; rebuilt from the arrays after load) ---------

    def _similarity_matrix(self) -> sp.csr_matrix:
        matrix = self.__dict__.get("_similarity")
        if matrix is None:
            matrix = sp.csr_matrix(
                (self.neighbour_scores_, self.neighbour_items_, self.neighbour_indptr_),
                shape=(self.n_items_, self.n_items_),
            )
            self._similarity = matrix
        return matrix

    def _history_matrix(self) -> sp.csr_matrix:
        matrix = self.__dict__.get("_history")
        if matrix is None:
            matrix = sp.csr_matrix(
                (self.history_weights_, self.history_items_, self.history_indptr_),
                shape=(self.n_users_, self.n_items_),
            )
            self._history = matrix
        return matrix

    def _popularity_share(self) -> np.ndarray:
        top = float(np.max(self.popularity_, initial=0.0))
        share = np.asarray(self.popularity_, dtype=np.float32)
        return share / top if top > 0 else np.zeros_like(share)


class SimsModel(NeighbourModel):
    """Co-occurrence counts with a popularity discount; see the module docstring."""

    #: Co-occurrence entries computed at once (memory bound: ~16 bytes each while it runs).
    pair_block: int = 1 << 23

    def __init__(
        self,
        popularity_discount_factor: float = 0.5,
        min_cointeraction_count: int = 3,
        min_user_history_length_percentile: float = 0.005,
        max_user_history_length_percentile: float = 0.995,
        min_item_interaction_count_percentile: float = 0.01,
        max_item_interaction_count_percentile: float = 0.9,
    ) -> None:
        self.popularity_discount_factor = popularity_discount_factor
        self.min_cointeraction_count = min_cointeraction_count
        self.min_user_history_length_percentile = min_user_history_length_percentile
        self.max_user_history_length_percentile = max_user_history_length_percentile
        self.min_item_interaction_count_percentile = min_item_interaction_count_percentile
        self.max_item_interaction_count_percentile = max_item_interaction_count_percentile

    def fit(self, data: InteractionData) -> Self:
        self._learn_history(data)
        kept_users = within_percentiles(
            np.bincount(data.users, minlength=data.n_users),
            float(self.min_user_history_length_percentile),
            float(self.max_user_history_length_percentile),
        )
        kept_items = within_percentiles(
            np.bincount(data.items, minlength=data.n_items),
            float(self.min_item_interaction_count_percentile),
            float(self.max_item_interaction_count_percentile),
        )
        self.trained_users_ = kept_users
        self.trained_items_ = kept_items
        took = _took(data, kept_users, kept_items)
        indptr, items, scores = cooccurrence_neighbours(
            took,
            min_count=max(int(self.min_cointeraction_count), 1),
            discount=float(self.popularity_discount_factor),
            max_neighbours=int(self.max_neighbours),
            pair_block=int(self.pair_block),
        )
        self._set_neighbours(indptr, items, scores)
        return self


def cooccurrence_neighbours(
    took: sp.csr_matrix,
    *,
    min_count: int,
    discount: float,
    max_neighbours: int,
    pair_block: int = 1 << 23,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Top neighbours per item of a binary users x items matrix, as CSR (indptr, items, scores).

    score(i, j) = co-occurrences(i, j) / popularity(j) ** discount, for pairs with at least
    `min_count` co-occurrences. The counts come from sparse products over blocks of items,
    each block sized so its products stay under `pair_block` entries.
    """
    n_items = took.shape[1]
    by_item = took.T.tocsr()  # items x users
    popularity = np.diff(took.tocsc().indptr).astype(np.float64)
    with np.errstate(divide="ignore"):
        discount_of = np.where(popularity > 0, popularity ** -float(discount), 0.0)
    # An item's row of counts costs one product per event of each of its users.
    cost = by_item @ np.diff(took.indptr).astype(np.float64)
    bounds = _blocks(cost, pair_block)
    rows_out: list[np.ndarray] = []
    items_out: list[np.ndarray] = []
    scores_out: list[np.ndarray] = []
    for start, stop in zip(bounds[:-1], bounds[1:], strict=True):
        counts = (by_item[start:stop] @ took).tocsr()
        rows = np.repeat(np.arange(start, stop, dtype=np.int64), np.diff(counts.indptr))
        cols = counts.indices.astype(np.int64)
        keep = (cols != rows) & (counts.data >= min_count)
        rows, cols = rows[keep], cols[keep]
        scores = (counts.data[keep] * discount_of[cols]).astype(np.float32)
        chosen = _best_per_row(rows, cols, scores, max_neighbours)
        rows_out.append(rows[chosen])
        items_out.append(cols[chosen])
        scores_out.append(scores[chosen])
    rows = np.concatenate(rows_out) if rows_out else np.empty(0, dtype=np.int64)
    indptr = np.concatenate(([0], np.cumsum(np.bincount(rows, minlength=n_items))))
    items = np.concatenate(items_out) if items_out else np.empty(0, dtype=np.int64)
    scores = np.concatenate(scores_out) if scores_out else np.empty(0, dtype=np.float32)
    return indptr.astype(np.int64), items.astype(np.int32), scores.astype(np.float32)


def within_percentiles(counts: np.ndarray, low: float, high: float) -> np.ndarray:
    """Codes with events whose count lies within the [low, high] percentiles of those counts."""
    active = counts > 0
    if not active.any():
        return active
    lowest, highest = np.quantile(counts[active], [min(low, high), max(low, high)])
    return active & (counts >= lowest) & (counts <= highest)


# -- helpers ----------------------------------------------------------------------------------


def _took(data: InteractionData, users: np.ndarray, items: np.ndarray) -> sp.csr_matrix:
    """Binary users x items: 1 where a kept user has an event on a kept item."""
    keep = users[data.users] & items[data.items]
    took = sp.csr_matrix(
        (np.ones(int(keep.sum()), dtype=np.float32), (data.users[keep], data.items[keep])),
        shape=(data.n_users, data.n_items),
    )
    took.sum_duplicates()
    took.data[:] = 1.0  # a user counts once per pair, however often they came back
    return took


def _strongest_weights(data: InteractionData) -> sp.csr_matrix:
    """users x items, each pair's strongest event weight (a purchase outweighs its clicks)."""
    key = data.users.astype(np.int64) * max(data.n_items, 1) + data.items
    order = np.lexsort((data.weights, key))
    last = np.ones(len(order), dtype=bool)
    last[:-1] = key[order][1:] != key[order][:-1]
    pick = order[last]
    return sp.csr_matrix(
        (data.weights[pick].astype(np.float32), (data.users[pick], data.items[pick])),
        shape=(data.n_users, data.n_items),
    )


def _blocks(cost: np.ndarray, budget: int) -> np.ndarray:
    """Boundaries [0, ..., n] splitting rows into consecutive blocks of about `budget` cost."""
    n = len(cost)
    if n == 0:
        return np.array([0], dtype=np.int64)
    total = np.cumsum(cost)
    cuts = np.searchsorted(total, np.arange(1, int(total[-1] // max(budget, 1)) + 1) * budget)
    return np.unique(np.concatenate(([0], np.clip(cuts, 1, n), [n]))).astype(np.int64)


def _best_per_row(rows: np.ndarray, cols: np.ndarray, scores: np.ndarray, n: int) -> np.ndarray:
    """Indices of each row's `n` best entries, by row, then score descending, then column."""
    order = np.lexsort((cols, -scores, rows))
    sorted_rows = rows[order]
    first = np.searchsorted(sorted_rows, sorted_rows, side="left")
    return order[np.arange(len(order)) - first < n]


def _with_popularity_fallback(reached: np.ndarray, share: np.ndarray) -> np.ndarray:
    """Reached items keep their score; the others get popularity below the row's weakest one.

    Popularity is scaled to at most half the smallest positive score of the row (1 where
    nothing was reached), so one ranking holds both and every score stays finite.
    """
    positive = reached > 0
    weakest = np.where(positive, reached, np.inf).min(axis=1, keepdims=True)
    scale = np.where(np.isfinite(weakest), 0.5 * weakest, 1.0).astype(np.float32)
    return np.where(positive, reached, scale * share[None, :]).astype(np.float32)
