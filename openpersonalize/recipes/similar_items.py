"""aws-similar-items: co-occurrence blended with item-metadata similarity.

Each item gets two representations, each compressed by a seeded truncated SVD:

* from interactions: its row of the items x users matrix (1 where the user took it, users
  scaled by ``1 / sqrt(history length)`` so heavy users do not relate everything), reduced to
  ``item_id_hidden_dim`` dimensions. The dot product of two rows is their (user-weighted)
  co-occurrence, so the SVD keeps its strongest patterns and smooths the sparse rest.
* from the Items dataset: categorical columns one-hot (``|``-separated values split),
  numeric columns standardized, textual columns as TF-IDF bags of words; each column is
  scaled to unit norm so each counts equally, then reduced to ``item_metadata_hidden_dim``.

The similarity of two items is ``w * cos(interactions) + (1 - w) * cos(metadata)`` with
``w = interaction_weight``, divided by ``popularity(candidate) ** popularity_discount_factor``.
An item without events (a cold item) has no interaction part, so its neighbours come from
its metadata alone; that is what lets new items be recommended from day one.

Neighbours are computed by exact dot products over blocks of items (quadratic in the
catalog: fine to some 10^5 items); only the best `max_neighbours` per item are kept.
"""

from __future__ import annotations

from typing import Self

import numpy as np
import scipy.sparse as sp

from openpersonalize.data.interactions import InteractionData
from openpersonalize.recipes.base import top_k
from openpersonalize.recipes.features import metadata_features, reduce_dimensions
from openpersonalize.recipes.sims import NeighbourModel

__all__ = ["SimilarItemsModel"]


class SimilarItemsModel(NeighbourModel):
    """Interaction and metadata embeddings blended; see the module docstring.

    ``interaction_weight`` is an internal setting, not a recipe hyperparameter.
    """

    def __init__(
        self,
        popularity_discount_factor: float = 0.0,
        item_id_hidden_dim: int = 100,
        item_metadata_hidden_dim: int = 100,
        interaction_weight: float = 0.5,
        random_state: int = 0,
    ) -> None:
        self.popularity_discount_factor = popularity_discount_factor
        self.item_id_hidden_dim = item_id_hidden_dim
        self.item_metadata_hidden_dim = item_metadata_hidden_dim
        self.interaction_weight = interaction_weight
        self.random_state = random_state

    def fit(self, data: InteractionData) -> Self:
        self._learn_history(data)
        took = _user_weighted(data)
        from_events = _unit_rows(
            reduce_dimensions(took.T.tocsr(), int(self.item_id_hidden_dim), self.random_state)
        )
        features = metadata_features(data.item_metadata, data.item_column_kinds, data.n_items)
        from_metadata = _unit_rows(
            reduce_dimensions(features, int(self.item_metadata_hidden_dim), self.random_state)
        )
        weight = float(np.clip(self.interaction_weight, 0.0, 1.0))
        if from_metadata.shape[1] == 0:
            weight = 1.0  # nothing else to blend with
        elif from_events.shape[1] == 0:
            weight = 0.0
        # Concatenated and scaled so one dot product is the blend of the two cosines.
        embedding = np.hstack(
            [np.sqrt(weight) * from_events, np.sqrt(1.0 - weight) * from_metadata]
        ).astype(np.float32)
        users_per_item = np.diff(took.tocsc().indptr).astype(np.float64)
        discount = np.maximum(users_per_item, 1.0) ** -float(self.popularity_discount_factor)
        self._set_neighbours(
            *_nearest(embedding, discount.astype(np.float32), int(self.max_neighbours))
        )
        return self


def _user_weighted(data: InteractionData) -> sp.csr_matrix:
    """Binary users x items, each user's row scaled by 1 / sqrt(its distinct items)."""
    took = sp.csr_matrix(
        (np.ones(data.n_events, dtype=np.float32), (data.users, data.items)),
        shape=(data.n_users, data.n_items),
    )
    took.sum_duplicates()
    took.data[:] = 1.0
    per_user = np.diff(took.indptr).astype(np.float32)
    took.data /= np.sqrt(np.repeat(per_user, np.diff(took.indptr)))
    return took


# -- neighbours -------------------------------------------------------------------------------


def _nearest(
    embedding: np.ndarray, discount: np.ndarray, n: int, cells: int = 1 << 22
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each item's best `n` positive-scored neighbours as CSR arrays (indptr, items, scores)."""
    n_items = embedding.shape[0]
    chunk = max(1, cells // max(n_items, 1))
    counts = np.zeros(n_items, dtype=np.int64)
    items_out: list[np.ndarray] = []
    scores_out: list[np.ndarray] = []
    for start in range(0, n_items, chunk):
        block = embedding[start : start + chunk] @ embedding.T
        block *= discount[None, :]
        rows = np.arange(len(block))
        block[rows, start + rows] = -np.inf  # never an item's own neighbour
        block[block <= 0] = -np.inf  # unrelated or opposed: not a neighbour
        items, scores = top_k(block, min(n, n_items))
        found = items >= 0  # top_k pads absent candidates with -1 at the row's end
        counts[start : start + len(block)] = found.sum(axis=1)
        items_out.append(items[found])
        scores_out.append(scores[found])
    indptr = np.concatenate(([0], np.cumsum(counts)))
    if not items_out:
        return indptr, np.empty(0, dtype=np.int32), np.empty(0, dtype=np.float32)
    return indptr, np.concatenate(items_out), np.concatenate(scores_out)


def _unit_rows(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return np.divide(matrix, norms, out=np.zeros_like(matrix), where=norms > 0)
