"""The one base class every recipe's model derives from.

Modelled on scikit-learn's estimator contract and benfred's `implicit`:
hyperparameters are constructor keyword arguments with defaults, stored
unchanged under their own names; everything `fit` learns is an attribute whose
name ends in ``_``. A subclass writes `fit` and `score` (a dense block of
scores for some users); top-k selection, exclusion of seen items, padding,
chunking and persistence are written once, here.
"""

from __future__ import annotations

import importlib
import inspect
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Self

import numpy as np
import scipy.sparse as sp

from openpersonalize.data.interactions import InteractionData

__all__ = ["MODEL_FILE", "Model", "cores", "top_k"]

#: The JSON file `save` writes beside the ``<attribute>.npy`` arrays.
MODEL_FILE = "model.json"
_FORMAT = 1
_SCALARS = (bool, int, float, str, type(None))


class Model:
    """Hyperparameters are constructor keyword arguments with defaults; learned state ends in `_`.

    Subclasses set ``n_users_`` and ``n_items_`` in `fit` and implement `score`. User codes
    outside ``[0, n_users_)`` (for example -1 for a user the vocabulary lacks) are cold users:
    `score` must still answer for them (popularity, typically) rather than fail.
    """

    n_users_: int
    n_items_: int
    #: Scores are computed for a chunk of users at a time, about this many (16 MiB of float32)
    #: whatever the catalog size, so a batch of 100k users never allocates 100k x n_items.
    chunk_elements: int = 1 << 22

    # -- the part a subclass writes -------------------------------------------------------------

    def fit(self, data: InteractionData) -> Self:
        """Learn from `data`; returns self."""
        raise NotImplementedError

    def score(self, users: np.ndarray) -> np.ndarray:
        """A new, writable (len(users), n_items_) float32 block of finite scores, higher better."""
        raise NotImplementedError

    def similar_items(self, item: int, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The `k` items most similar to `item` (never `item` itself), as in `recommend`'s rows."""
        raise NotImplementedError(f"{type(self).__name__} has no notion of item similarity")

    def fold_in(self, items: np.ndarray, weights: np.ndarray) -> np.ndarray | None:
        """Scores (n_items_,) for a history given at request time (item codes, event weights),
        without retraining; None where the model cannot (serving then uses `score`)."""
        return None

    def user_affinity(self, items: np.ndarray) -> np.ndarray:
        """(n_users_,) each user's mean score over `items` (item codes): how likely each user
        is to interact with them, for user segments. Computed a chunk of users at a time."""
        self._check_fitted()
        items = np.asarray(items, dtype=np.int64).reshape(-1)
        out = np.empty(self.n_users_, dtype=np.float32)
        step = max(1, self.chunk_elements // max(self.n_items_, 1))
        for start in range(0, self.n_users_, step):
            users = np.arange(start, min(start + step, self.n_users_), dtype=np.int32)
            out[start : start + len(users)] = self.score(users)[:, items].mean(axis=1)
        return out

    def refresh(self, data: InteractionData, user_ids: np.ndarray, item_ids: np.ndarray) -> Self:
        """Training mode UPDATE: a model for `data` that keeps what this one learned.

        `user_ids` / `item_ids` are this model's vocabularies; `data` may add users and items.
        Models that cannot refresh without a full retrain leave this unimplemented.
        """
        raise NotImplementedError(f"{type(self).__name__} cannot be refreshed without retraining")

    # -- written once for every model -----------------------------------------------------------

    def recommend(
        self,
        users: np.ndarray,
        k: int,
        exclude: sp.csr_matrix | None = None,
        adjust: Callable[[np.ndarray], np.ndarray] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top `k` item codes per user, best first, and their scores.

        Returns ``(len(users), k)`` int32 items (-1 pads rows with fewer candidates) and float32
        scores (nan where padded). An item with a nonzero in ``exclude[user]`` is never returned;
        rows of `exclude` beyond its shape (cold users) exclude nothing. ``adjust`` re-scores
        each block of scores first (an optimization objective).
        """
        self._check_fitted()
        users = np.asarray(users).astype(np.int32, copy=False).reshape(-1)
        k = max(int(k), 0)
        if exclude is not None and not sp.isspmatrix_csr(exclude):
            exclude = sp.csr_matrix(exclude)
        items_out = np.full((len(users), k), -1, dtype=np.int32)
        scores_out = np.full((len(users), k), np.nan, dtype=np.float32)
        if k == 0 or len(users) == 0:
            return items_out, scores_out
        chunk = max(1, self.chunk_elements // max(1, self.n_items_))
        for start in range(0, len(users), chunk):
            block_users = users[start : start + chunk]
            scores = self.score(block_users)
            if adjust is not None:
                scores = adjust(scores)
            if exclude is not None:
                _mask_excluded(scores, block_users, exclude)
            items_out[start : start + chunk], scores_out[start : start + chunk] = top_k(scores, k)
        return items_out, scores_out

    def rank(self, user: int, items: np.ndarray) -> np.ndarray:
        """float32 scores of `user` for the given item codes (nan for codes outside the catalog)."""
        self._check_fitted()
        items = np.asarray(items).astype(np.int64, copy=False).reshape(-1)
        known = (items >= 0) & (items < self.n_items_)
        out = np.full(len(items), np.nan, dtype=np.float32)
        out[known] = self.score(np.array([user], dtype=np.int32))[0, items[known]]
        return out

    @classmethod
    def param_names(cls) -> tuple[str, ...]:
        """The constructor's keyword arguments: the model's hyperparameters."""
        signature = inspect.signature(cls.__init__)
        return tuple(name for name in signature.parameters if name != "self")

    def get_params(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.param_names()}

    def save(self, directory: Path) -> None:
        """Learned arrays as ``<name>.npy``, hyperparameters and scalar state in `MODEL_FILE`."""
        self._check_fitted()
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        state: dict[str, Any] = {}
        arrays: list[str] = []
        for name, value in vars(self).items():
            if not name.endswith("_") or name.startswith("_"):
                continue
            if isinstance(value, np.ndarray):
                # No pickles: an artifact must never be able to run code when it is loaded.
                np.save(directory / f"{name}.npy", np.ascontiguousarray(value), allow_pickle=False)
                arrays.append(name)
            elif isinstance(value, np.generic):
                state[name] = value.item()
            elif isinstance(value, _SCALARS):
                state[name] = value
            else:
                raise TypeError(f"{type(self).__name__}.{name} cannot be saved: {type(value)}")
        cls = type(self)
        document = {
            "format": _FORMAT,
            "model": f"{cls.__module__}:{cls.__qualname__}",
            "params": _jsonable(self.get_params()),
            "state": state,
            "arrays": arrays,
        }
        (directory / MODEL_FILE).write_text(json.dumps(document, indent=1, sort_keys=True))

    @classmethod
    def load(cls, directory: Path) -> Model:
        """The model `save` wrote, arrays memory-mapped read-only.

        Called on `Model` itself it returns whichever subclass was saved.
        """
        directory = Path(directory)
        document = json.loads((directory / MODEL_FILE).read_text())
        if document.get("format") != _FORMAT:
            raise ValueError(f"{directory}: unknown model format {document.get('format')!r}")
        saved = _import_model(document["model"])
        if cls is not Model and saved is not cls:
            raise ValueError(f"{directory} holds a {saved.__name__}, not a {cls.__name__}")
        model = saved(**document["params"])
        for name, value in document["state"].items():
            setattr(model, name, value)
        for name in document["arrays"]:
            setattr(model, name, _load_array(directory / f"{name}.npy"))
        return model

    def __repr__(self) -> str:
        params = ", ".join(f"{name}={value!r}" for name, value in self.get_params().items())
        return f"{type(self).__name__}({params})"

    def _check_fitted(self) -> None:
        if not hasattr(self, "n_items_"):
            raise RuntimeError(f"{type(self).__name__} is not fitted yet; call fit first")


def top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row: the `k` best columns (int32, best first) and their scores; -inf or nan is absent.

    Absent or missing candidates come back as item -1 with score nan, always at the row's end.
    Equal scores go to the lower item code, so the result is fully determined by the scores.
    """
    scores = np.asarray(scores, dtype=np.float32)
    n, m = scores.shape
    items_out = np.full((n, k), -1, dtype=np.int32)
    scores_out = np.full((n, k), np.nan, dtype=np.float32)
    width = min(k, m)
    if width == 0 or n == 0:
        return items_out, scores_out
    if np.isnan(scores).any():  # argpartition would rank nan above everything
        scores = np.where(np.isnan(scores), np.float32(-np.inf), scores)
    if width < m:
        # Partition so the `width` largest land in the last columns: O(m) per row, no full sort.
        candidates = np.argpartition(scores, m - width, axis=1)[:, m - width :]
        _prefer_lower_codes_on_ties(scores, candidates)
    else:
        candidates = np.broadcast_to(np.arange(m), (n, m))
    top = np.take_along_axis(scores, candidates, axis=1)
    order = np.lexsort((candidates, -top), axis=1)  # primary: score descending; then item code
    top = np.take_along_axis(top, order, axis=1)
    chosen = np.take_along_axis(candidates, order, axis=1)
    present = top > -np.inf
    items_out[:, :width] = np.where(present, chosen, -1)
    scores_out[:, :width] = np.where(present, top, np.nan)
    return items_out, scores_out


def _prefer_lower_codes_on_ties(scores: np.ndarray, candidates: np.ndarray) -> None:
    """Where equal scores straddle the cut, keep the lowest codes among them (in place).

    argpartition picks an arbitrary subset of equal scores at the boundary; popularity has
    many equal counts, and the choice must not depend on the partition algorithm.
    """
    width = candidates.shape[1]
    threshold = np.take_along_axis(scores, candidates, axis=1).min(axis=1, keepdims=True)
    split = np.flatnonzero((scores >= threshold).sum(axis=1) > width)
    if len(split) == 0:
        return
    block, cut = scores[split], threshold[split]
    greater = block > cut
    equal = block == cut
    needed = width - greater.sum(axis=1, keepdims=True)
    keep = greater | (equal & (np.cumsum(equal, axis=1) <= needed))
    candidates[split] = np.nonzero(keep)[1].reshape(len(split), width)


def _mask_excluded(scores: np.ndarray, users: np.ndarray, exclude: sp.csr_matrix) -> None:
    """Set -inf where ``exclude[user, item]`` is nonzero, for every row of the block at once."""
    rows = np.flatnonzero((users >= 0) & (users < exclude.shape[0]))
    if len(rows) == 0:
        return
    block = exclude[users[rows]]
    row_of = np.repeat(rows, np.diff(block.indptr))
    cols = block.indices
    # Explicit zeros stored in the matrix exclude nothing; columns beyond the catalog are ignored.
    keep = (block.data != 0) & (cols < scores.shape[1])
    scores[row_of[keep], cols[keep]] = -np.inf


def _load_array(path: Path) -> np.ndarray:
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError:
        # numpy cannot memory-map an array with no elements; such arrays cost nothing to read.
        return np.load(path, allow_pickle=False)


def _import_model(path: str) -> type[Model]:
    module_name, _, qualname = path.partition(":")
    target: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        target = getattr(target, part)
    if not (isinstance(target, type) and issubclass(target, Model)):
        raise TypeError(f"{path} is not a Model")
    return target


def _jsonable(params: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in params.items():
        if isinstance(value, np.generic):
            value = value.item()
        if not isinstance(value, _SCALARS):
            raise TypeError(f"hyperparameter {name} must be a plain scalar, got {type(value)}")
        out[name] = value
    return out


def cores() -> int:
    """CPU cores this process may use (models size their thread pools by it)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1
