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
import pyarrow as pa
import pyarrow.compute as pc
import scipy.sparse as sp
from scipy.sparse.linalg import svds

from openpersonalize.data.interactions import InteractionData
from openpersonalize.recipes.base import top_k
from openpersonalize.recipes.sims import NeighbourModel

__all__ = ["SimilarItemsModel", "metadata_features", "reduce_dimensions"]

#: Distinct words kept per textual column (the most widespread ones).
MAX_VOCABULARY = 50_000
#: Matrices up to this many cells are decomposed densely: exact and faster than ARPACK.
_DENSE_SVD_CELLS = 1 << 22


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


def reduce_dimensions(matrix: sp.spmatrix, dim: int, seed: int) -> np.ndarray:
    """Rows of `matrix` as at most `dim` dense columns whose dot products approximate theirs.

    A truncated SVD (rows scaled by the singular values); exact when the matrix has no more
    than `dim` columns or rows. No columns at all when the matrix is empty.
    """
    matrix = sp.csr_matrix(matrix, dtype=np.float64)
    rows, cols = matrix.shape
    if matrix.nnz == 0 or dim <= 0:
        return np.zeros((rows, 0), dtype=np.float32)
    if cols <= dim:
        return matrix.toarray().astype(np.float32)  # already small enough: keep it exact
    if rows <= dim:
        # The Gram matrix's eigenvectors give the same dot products in `rows` dimensions.
        values, vectors = np.linalg.eigh((matrix @ matrix.T).toarray())
        return (vectors * np.sqrt(np.maximum(values, 0.0))).astype(np.float32)
    if rows * cols <= _DENSE_SVD_CELLS:
        u, s, _ = np.linalg.svd(matrix.toarray(), full_matrices=False)
        return (u[:, :dim] * s[:dim]).astype(np.float32)
    u, s, _ = svds(matrix, k=dim, rng=np.random.default_rng(seed))
    return (u * s).astype(np.float32)


def metadata_features(table: pa.Table | None, kinds: dict[str, str], n_items: int) -> sp.csr_matrix:
    """items x features: each usable column a block of unit-norm rows (zero where null).

    Categorical: one-hot of the ``|``-separated values. Textual: TF-IDF (sublinear term
    frequency) over words shared by at least two items. Numeric (all together, counting as
    one column): z-scores clipped to 3 standard deviations. Other kinds are ignored.
    """
    blocks: list[sp.csr_matrix] = []
    numeric: list[np.ndarray] = []
    if table is not None:
        for name in table.column_names:
            kind = kinds.get(name)
            column = table.column(name)
            if kind == "categorical":
                blocks.append(_categorical(column, n_items))
            elif kind == "textual":
                blocks.append(_textual(column, n_items))
            elif kind == "numeric":
                numeric.append(_standardized(column))
    if numeric:
        values = np.column_stack(numeric) / np.sqrt(len(numeric))
        blocks.append(sp.csr_matrix(values.astype(np.float32)))
    if not blocks:
        return sp.csr_matrix((n_items, 0), dtype=np.float32)
    features = sp.hstack(blocks, format="csr", dtype=np.float32)
    features.eliminate_zeros()
    return features


# -- featurization ----------------------------------------------------------------------------


def _categorical(column: pa.ChunkedArray, n_items: int) -> sp.csr_matrix:
    values = pc.split_pattern(pc.utf8_trim_whitespace(pc.cast(column, pa.string())), "|")
    return _bag(values, n_items, min_items=1, idf=False)


def _textual(column: pa.ChunkedArray, n_items: int) -> sp.csr_matrix:
    lowered = pc.utf8_lower(pc.cast(column, pa.string()))
    words = pc.split_pattern_regex(pc.replace_substring_regex(lowered, r"[^\w]+", " "), " ")
    # A word only one item uses relates that item to nothing; it would only dilute its row.
    return _bag(words, n_items, min_items=2, idf=True)


def _bag(lists: pa.ChunkedArray, n_items: int, *, min_items: int, idf: bool) -> sp.csr_matrix:
    """Unit-norm rows of token counts (TF-IDF weighted when `idf`) from per-item token lists."""
    lists = lists.combine_chunks() if isinstance(lists, pa.ChunkedArray) else lists
    tokens = pc.list_flatten(lists).to_numpy(zero_copy_only=False)
    owners = pc.list_parent_indices(lists).to_numpy(zero_copy_only=False)
    present = tokens != ""
    tokens, owners = tokens[present].astype(str), owners[present].astype(np.int64)
    if len(tokens) == 0:
        return sp.csr_matrix((n_items, 0), dtype=np.float32)
    vocabulary, codes = np.unique(tokens, return_inverse=True)
    counts = sp.csr_matrix(
        (np.ones(len(codes), dtype=np.float32), (owners, codes)),
        shape=(n_items, len(vocabulary)),
    )
    counts.sum_duplicates()
    items_per_token = np.diff(counts.tocsc().indptr)
    wanted = np.flatnonzero(items_per_token >= min_items)
    if len(wanted) > MAX_VOCABULARY:  # the most widespread words say the most about overlap
        wanted = np.sort(
            wanted[np.argsort(-items_per_token[wanted], kind="stable")][:MAX_VOCABULARY]
        )
    counts = counts[:, wanted].tocsr()
    if idf:
        counts.data = 1.0 + np.log(counts.data)
        inverse = np.log((1.0 + n_items) / (1.0 + items_per_token[wanted])) + 1.0
        counts = counts @ sp.diags(inverse.astype(np.float32))
    else:
        counts.data[:] = 1.0
    return _unit_sparse_rows(sp.csr_matrix(counts, dtype=np.float32))


def _standardized(column: pa.ChunkedArray) -> np.ndarray:
    values = pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False).astype(np.float64)
    known = np.isfinite(values)
    if not known.any():
        return np.zeros(len(values))
    mean, spread = values[known].mean(), values[known].std()
    z = (values - mean) / spread if spread > 0 else np.zeros(len(values))
    # Unknown values sit at the mean; clipping keeps one outlier from owning the block.
    return np.where(known, np.clip(z, -3.0, 3.0) / 3.0, 0.0)


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


def _unit_sparse_rows(matrix: sp.csr_matrix) -> sp.csr_matrix:
    norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1)).ravel())
    scale = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
    return sp.csr_matrix(sp.diags(scale.astype(np.float32)) @ matrix)
