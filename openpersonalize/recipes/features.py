"""Item and user metadata as numbers, shared by the recipes that use metadata.

`metadata_features` turns the Items (or Users) columns a solution trains on into a sparse
matrix with one row per vocabulary code: categorical columns one-hot (``|``-separated values
split), numeric columns standardized, textual columns TF-IDF. `reduce_dimensions` compresses
such a matrix to a few dense columns (a truncated SVD), and `dense_metadata_features` does
both. aws-similar-items, aws-user-personalization (cold items) and aws-hrnn-metadata /
aws-hrnn-coldstart all featurize metadata through this module, so an item means the same
to each of them.

`users_within_history_percentiles` is the ``min/max_user_history_length_percentile``
featurization of the HRNN family and its successors.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import scipy.sparse as sp
from scipy.sparse.linalg import svds

__all__ = [
    "dense_metadata_features",
    "metadata_features",
    "predict_from_features",
    "reduce_dimensions",
    "users_within_history_percentiles",
]

#: Distinct words kept per textual column (the most widespread ones).
MAX_VOCABULARY = 50_000
#: Matrices up to this many cells are decomposed densely: exact and faster than ARPACK.
_DENSE_SVD_CELLS = 1 << 22


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


def dense_metadata_features(
    table: pa.Table | None, kinds: dict[str, str], n_rows: int, dim: int, seed: int
) -> np.ndarray:
    """`metadata_features` reduced to at most `dim` dense float32 columns (none without any)."""
    return reduce_dimensions(metadata_features(table, kinds, n_rows), dim, seed)


def predict_from_features(
    features: np.ndarray, targets: np.ndarray, known: np.ndarray, regularization: float = 1.0
) -> np.ndarray:
    """Every row's `targets` predicted from its `features` by a ridge regression (with an
    unpenalized intercept) fitted on the rows where `known` is true. float32, like `targets`.

    The cold-start map: fitted on items with events (features -> learned item factors), it
    gives items without events factors from their metadata.
    """
    design = np.hstack([features, np.ones((len(features), 1))]).astype(np.float64)
    fitted = design[known]
    penalty = np.full(design.shape[1], float(regularization))
    penalty[-1] = 0.0  # the intercept: the mean of the known targets, not shrunk
    system = fitted.T @ fitted + np.diag(penalty)
    weights = np.linalg.lstsq(system, fitted.T @ targets[known].astype(np.float64), rcond=None)[0]
    return (design @ weights).astype(np.float32)


def users_within_history_percentiles(
    events_per_user: np.ndarray, low_percentile: float, high_percentile: float
) -> np.ndarray:
    """Users with events whose history length lies within the given percentiles (inclusive).

    The percentiles are taken over users that have events; users without events are never in.
    """
    active = events_per_user > 0
    if not active.any():
        return active
    low, high = np.quantile(
        events_per_user[active], [float(low_percentile), float(high_percentile)]
    )
    return active & (events_per_user >= low) & (events_per_user <= high)


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


def _unit_sparse_rows(matrix: sp.csr_matrix) -> sp.csr_matrix:
    norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1)).ravel())
    scale = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
    return sp.csr_matrix(sp.diags(scale.astype(np.float32)) @ matrix)
