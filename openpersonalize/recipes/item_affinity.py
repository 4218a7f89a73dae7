"""aws-item-affinity and aws-item-attribute-affinity: user segments from calibrated ALS scores.

A segment ranks *users* for one item (or a set of items), so a user's scores must be
comparable with other users' scores. Raw ALS scores ``x_u . y_i`` are not: heavy users have
larger factors and score high for everything, which makes a segment little better than a
list of the most active users. Here each user's scores become a probability distribution
over the items that user has not interacted with yet:

    log P(u's next item is i) = s_ui / temperature - log sum_{j unseen by u} exp(s_uj / temperature)

and a user's affinity to a set of items is ``log P(u's next item is one of them)``. The
normalizer runs over *unseen* items only: a user who has already taken most of what they
like has little probability left to spend, and one with much still to discover has more.
That is most of the gain. On ML-100K and ml-latest-small, with each user's newest 20 % held
out, the top 1 % of users ranked this way hold on average 1.5x / 1.2x the share of an item's
later interactions that the most active users hold; raw ALS scores hold 1.0x / 0.6x
(``benchmarks/segments.py``, docs/benchmarks.md).

Hyperparameters are ALS's (`ALSModel`), plus ``temperature``, an internal setting rather than
a recipe hyperparameter. How sharp the distribution should be depends on the scale of the
scores, which depends on the data: too low and a few confident items take all of a user's
probability, too high and only the count of unseen items is left. So by default (None) `fit`
chooses it: it holds out each user's newest 20 % of the training events (the split
GetSolutionMetrics uses), fits on the rest, and keeps the temperature of `TEMPERATURES` whose
segments find the most of the held-out interactions (`metrics.segments.segment_metrics`),
then fits on all the data. It sees only the data `fit` is given, so an evaluation's
held-out events never steer it.
"""

from __future__ import annotations

from typing import Self

import numpy as np
import scipy.sparse as sp

from openpersonalize.data.interactions import InteractionData
from openpersonalize.metrics.segments import held_out_newest, segment_metrics
from openpersonalize.recipes.als import ALSModel
from openpersonalize.recipes.base import _mask_excluded

__all__ = ["TEMPERATURES", "ItemAffinityModel"]

#: The temperatures `fit` chooses among when none is given.
TEMPERATURES = (0.05, 0.1, 0.2, 0.35, 0.6, 1.0, 1.7, 3.0)  # about x1.7 apart
#: At most this many held-out items measure each temperature (a sample, for large catalogs).
_VALIDATION_ITEMS = 1000


class ItemAffinityModel(ALSModel):
    """ALS whose `user_affinity` is each user's calibrated log-probability of the items."""

    def __init__(
        self,
        hidden_dimension: int = 149,
        bptt: int = 32,
        recency_mask: bool = True,
        min_user_history_length_percentile: float = 0.0,
        max_user_history_length_percentile: float = 0.99,
        regularization: float = 50.0,
        iterations: int = 10,
        alpha: float = 10.0,
        recency_floor: float = 0.1,
        temperature: float | None = None,
        random_state: int = 0,
    ) -> None:
        super().__init__(
            hidden_dimension=hidden_dimension,
            bptt=bptt,
            recency_mask=recency_mask,
            min_user_history_length_percentile=min_user_history_length_percentile,
            max_user_history_length_percentile=max_user_history_length_percentile,
            regularization=regularization,
            iterations=iterations,
            alpha=alpha,
            recency_floor=recency_floor,
            random_state=random_state,
        )
        self.temperature = temperature

    def fit(self, data: InteractionData) -> Self:
        if self.temperature is None:
            self.temperature_ = self._validated_temperature(data)
        else:
            self.temperature_ = float(self.temperature)
        super().fit(data)
        self.log_normalizer_ = self._log_normalizers(data.matrix(), (self.temperature_,))[0]
        return self

    def refresh(self, data: InteractionData, user_ids: np.ndarray, item_ids: np.ndarray) -> Self:
        """ALS's refresh; the temperature stays the one chosen when the model was trained."""
        super().refresh(data, user_ids, item_ids)
        self.log_normalizer_ = self._log_normalizers(data.matrix(), (self.temperature_,))[0]
        return self

    def user_affinity(self, items: np.ndarray) -> np.ndarray:
        """(n_users_,) log P(each user's next interaction is one of `items`), by the factors.

        Users without events get the items' share of all event weights (smoothed): the same
        probability for each of them, the best guess without a history.
        """
        self._check_fitted()
        items = np.asarray(items, dtype=np.int64).reshape(-1)
        out = np.empty(self.n_users_, dtype=np.float32)
        if len(items) == 0:
            out[:] = -np.inf
            return out
        user_factors = np.asarray(self.user_factors_)
        chosen = np.asarray(self.item_factors_)[items].astype(np.float64).T
        step = max(1, self.chunk_elements // len(items))
        for start in range(0, self.n_users_, step):
            stop = min(start + step, self.n_users_)
            logits = (user_factors[start:stop] @ chosen) / float(self.temperature_)
            out[start:stop] = _log_sum_exp(logits) - self.log_normalizer_[start:stop]
        popularity = np.asarray(self.popularity_, dtype=np.float64) + 1.0
        cold = ~np.asarray(self.warm_users_)
        out[cold] = np.log(popularity[items].sum()) - np.log(popularity.sum())
        return out

    def _validated_temperature(self, data: InteractionData) -> float:
        """The temperature of `TEMPERATURES` whose segments best find each user's newest
        events, for a model fitted on the older ones (1.0 when nothing can be held out)."""
        train, users, items = held_out_newest(data)
        if len(users) == 0:
            return 1.0
        candidates = np.unique(items)
        if len(candidates) > _VALIDATION_ITEMS:
            rng = np.random.default_rng(int(self.random_state))
            sample = rng.choice(candidates, _VALIDATION_ITEMS, replace=False)
            keep = np.isin(items, sample)
            users, items = users[keep], items[keep]
        inner = type(self)(**{**self.get_params(), "temperature": TEMPERATURES[0]}).fit(train)
        normalizers = inner._log_normalizers(train.matrix(), TEMPERATURES)
        recalls = []
        for temperature, normalizer in zip(TEMPERATURES, normalizers, strict=True):
            inner.temperature_, inner.log_normalizer_ = temperature, normalizer
            recalls.append(segment_metrics(inner, train, users, items)["recall"])
        return TEMPERATURES[int(np.argmax(recalls))]

    def _log_normalizers(self, seen: sp.csr_matrix, temperatures: tuple[float, ...]) -> np.ndarray:
        """(len(temperatures), n_users_): per user, log sum of exp(score / temperature) over
        the items they have not had; the scores are computed once for all temperatures.

        A user who has had every item keeps the sum over all items (nothing is left to
        normalize over; their affinities are then merely low, not undefined).
        """
        user_factors = np.asarray(self.user_factors_)
        item_factors_t = np.asarray(self.item_factors_).T
        normalizers = np.empty((len(temperatures), self.n_users_), dtype=np.float64)
        step = max(1, self.chunk_elements // max(self.n_items_, 1))
        for start in range(0, self.n_users_, step):
            users = np.arange(start, min(start + step, self.n_users_), dtype=np.int32)
            scores = (user_factors[users] @ item_factors_t).astype(np.float64)
            unseen = np.zeros_like(scores)
            _mask_excluded(unseen, users, seen)  # 0 where unseen, -inf where seen
            nothing_left = np.isneginf(unseen).all(axis=1)
            unseen[nothing_left] = 0.0
            for row, temperature in enumerate(temperatures):
                normalizers[row, users] = _log_sum_exp(scores / temperature + unseen)
        return normalizers


def _log_sum_exp(logits: np.ndarray) -> np.ndarray:
    """Per row, log(sum(exp(logits))) without overflow; -inf entries count as zero terms.
    (scipy's logsumexp costs more than the sum itself when called once per item.)"""
    if logits.shape[1] <= 1:
        return logits[:, 0].copy() if logits.shape[1] else np.full(len(logits), -np.inf)
    peak = logits.max(axis=1, keepdims=True)
    return peak[:, 0] + np.log(np.exp(logits - peak).sum(axis=1))
