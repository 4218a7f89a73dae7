"""EASE, the closed-form item-item model (Steck, "Embarrassingly Shallow Autoencoders for
Sparse Data", WWW 2019).

For the binary user x item matrix ``X``, EASE learns the item-item weights ``B`` minimizing
``||X - X B||^2 + l2 * ||B||^2`` with a zero diagonal (an item may not predict itself). The
solution is closed-form: with ``P = (X^T X + l2 * I)^-1``, ``B[i, j] = -P[i, j] / P[j, j]``.
A user's score for item ``j`` is ``sum_i x[i] * B[i, j]`` over the items ``i`` of their history.

The inverse costs cubic time and quadratic memory in the number of items, so only items with
at least ``min_events`` events take part (an item seen once co-occurs with one user only and
gets no reliable weights), and only catalogs up to a size the caller chooses should use it.
Each item keeps its ``neighbours`` largest weights (by magnitude): ``B`` is dense, but a few
hundred weights per item carry almost all of its ranking, and the pruned matrix is small
enough to save with the model.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.linalg import lapack
from threadpoolctl import threadpool_limits

from openpersonalize.recipes.base import cores

__all__ = ["item_weights", "n_modelled_items"]


def n_modelled_items(matrix: sp.csr_matrix, min_events: int) -> int:
    """How many items of the users x items `matrix` have at least `min_events` events."""
    return int(np.count_nonzero(matrix.getnnz(axis=0) >= min_events))


def item_weights(
    matrix: sp.csr_matrix, l2: float, neighbours: int, min_events: int = 2
) -> tuple[np.ndarray, np.ndarray]:
    """EASE weights of the users x items `matrix` (any nonzero counts as one event).

    Returns ``(neighbour_items, neighbour_weights)``, each (n_items, neighbours): row ``i``
    holds the items ``j`` with the largest ``|B[i, j]|`` and those weights (at most one fewer
    than the modelled items); items with fewer than `min_events` events have item -1, weight 0.
    """
    n_items = matrix.shape[1]
    modelled = np.flatnonzero(matrix.getnnz(axis=0) >= min_events)
    width = max(min(int(neighbours), len(modelled) - 1), 0)
    neighbour_items = np.full((n_items, width), -1, dtype=np.int32)
    neighbour_weights = np.zeros((n_items, width), dtype=np.float32)
    if width == 0:
        return neighbour_items, neighbour_weights
    binary = sp.csr_matrix(matrix[:, modelled], dtype=np.float32, copy=True)
    binary.data[:] = 1.0
    gram = (binary.T @ binary).toarray().astype(np.float32)
    gram[np.diag_indices_from(gram)] += float(l2)
    with threadpool_limits(limits=cores(), user_api="blas"):
        # Cholesky inverse: the Gram matrix is symmetric positive definite, and this costs
        # half of a general inverse. LAPACK fills the upper triangle only.
        factor, info = lapack.spotrf(gram, lower=False, overwrite_a=True)
        if info == 0:
            inverse, info = lapack.spotri(factor, lower=False, overwrite_c=True)
    if info != 0:
        raise np.linalg.LinAlgError(f"EASE: the Gram matrix is not positive definite ({info})")
    del gram, factor
    inverse = np.triu(inverse) + np.triu(inverse, 1).T
    weights = inverse / -np.diag(inverse)[None, :]
    del inverse
    np.fill_diagonal(weights, 0.0)
    strongest = np.argpartition(-np.abs(weights), width - 1, axis=1)[:, :width]
    neighbour_items[modelled] = modelled[strongest]
    neighbour_weights[modelled] = np.take_along_axis(weights, strongest, axis=1)
    return neighbour_items, neighbour_weights
