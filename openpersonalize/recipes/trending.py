"""aws-trending-now: the items whose interaction rate rises fastest, the same list for everyone.

Time is cut into windows of ``trend_discovery_frequency`` ending at the latest event seen.
An item's trend compares its (weighted) event count in the latest complete window with its
baseline: the mean count of the `TrendingNowModel.history_windows` windows before, the more
recent ones weighing more (halving every two windows). The score is the Poisson z-score
``(latest - baseline) / sqrt(baseline + 1)``: growth measured in the noise of the baseline,
so a jump from 0 to 1 event does not outrank one from 100 to 300, and a steadily popular
item scores about 0. Windows before the first event are not counted as quiet ones.

The per-window counts are learned state, so `refresh_counts` can fold streamed events in
and roll the windows forward without retraining; as in the service, the list changes when a
window completes, at the trend discovery frequency.
"""

from __future__ import annotations

from typing import Self

import numpy as np

from openpersonalize.data.interactions import InteractionData
from openpersonalize.recipes.base import Model

__all__ = ["FREQUENCIES", "TrendingNowModel"]

#: trend_discovery_frequency values and their window length in seconds.
FREQUENCIES: dict[str, int] = {
    "30 minutes": 30 * 60,
    "1 hour": 60 * 60,
    "2 hours": 2 * 60 * 60,
    "3 hours": 3 * 60 * 60,
    "1 day": 24 * 60 * 60,
}
#: Breaks ties (items with the same growth, e.g. no events lately) by all-time popularity;
#: small enough never to reorder items whose growth differs meaningfully.
_POPULARITY_TIE_BREAK = 1e-3


class TrendingNowModel(Model):
    """Growth of each item's event rate between time windows; see the module docstring.

    Learned arrays: ``counts_`` (windows x items; row 0 is the window still open, row 1 the
    latest complete one, older rows after it), ``popularity_`` (all-time summed weights) and
    ``trend_`` (the scores). Scalars: ``window_seconds_``, ``window_end_`` (end of the latest
    complete window, epoch seconds) and ``first_timestamp_``.
    """

    #: Complete windows before the latest one that form the baseline.
    history_windows: int = 6

    def __init__(self, trend_discovery_frequency: str = "2 hours") -> None:
        self.trend_discovery_frequency = trend_discovery_frequency

    def fit(self, data: InteractionData) -> Self:
        if self.trend_discovery_frequency not in FREQUENCIES:
            raise ValueError(
                f"trend_discovery_frequency must be one of {', '.join(FREQUENCIES)}, "
                f"not {self.trend_discovery_frequency!r}"
            )
        self.window_seconds_ = float(FREQUENCIES[self.trend_discovery_frequency])
        timestamps = data.timestamps.astype(np.float64)
        self.window_end_ = float(timestamps.max(initial=0.0))
        self.first_timestamp_ = float(timestamps.min(initial=self.window_end_))
        self.counts_ = np.zeros((self.history_windows + 2, data.n_items), dtype=np.float32)
        self.popularity_ = np.zeros(data.n_items, dtype=np.float32)
        self.n_users_ = data.n_users
        self.n_items_ = data.n_items
        self._add(data.items, timestamps, data.weights)
        return self

    def refresh_counts(
        self,
        items: np.ndarray,
        timestamps: np.ndarray,
        now: float,
        weights: np.ndarray | None = None,
    ) -> None:
        """Fold newly streamed events in and move the windows up to `now`; no retraining.

        Events in the window still open count once it completes (when `now` passes its end);
        events older than the baseline windows only add to popularity. Item codes outside
        the catalog are ignored. `weights` defaults to 1 per event.
        """
        self._check_fitted()
        items = np.asarray(items, dtype=np.int64).reshape(-1)
        timestamps = np.asarray(timestamps, dtype=np.float64).reshape(-1)
        weights = np.ones(len(items)) if weights is None else np.asarray(weights).reshape(-1)
        # Copies: after `load` the arrays are read-only memory maps.
        self.counts_ = np.array(self.counts_, dtype=np.float32)
        self.popularity_ = np.array(self.popularity_, dtype=np.float32)
        passed = int(np.floor((float(now) - self.window_end_) / self.window_seconds_))
        if passed > 0:
            # Row 0 (open) becomes row 1 (latest complete) and so on; new open rows are empty.
            shifted = np.zeros_like(self.counts_)
            if passed < len(self.counts_):
                shifted[passed:] = self.counts_[: len(self.counts_) - passed]
            self.counts_ = shifted
            self.window_end_ += passed * self.window_seconds_
        if len(timestamps):
            self.first_timestamp_ = min(self.first_timestamp_, float(timestamps.min()))
        self._add(items, timestamps, weights)

    def score(self, users: np.ndarray) -> np.ndarray:
        return np.tile(np.asarray(self.trend_, dtype=np.float32), (len(users), 1))

    def rank(self, user: int, items: np.ndarray) -> np.ndarray:
        # The same for every user: index the scores instead of scoring the catalog.
        self._check_fitted()
        items = np.asarray(items).astype(np.int64, copy=False).reshape(-1)
        known = (items >= 0) & (items < self.n_items_)
        out = np.full(len(items), np.nan, dtype=np.float32)
        out[known] = self.trend_[items[known]]
        return out

    # -- helpers ------------------------------------------------------------------------------

    def _add(self, items: np.ndarray, timestamps: np.ndarray, weights: np.ndarray) -> None:
        """Count events into their windows, then recompute the trend."""
        inside = (items >= 0) & (items < self.n_items_)
        items, timestamps = items[inside], timestamps[inside]
        weights = np.asarray(weights, dtype=np.float64)[inside]
        self.popularity_ += np.bincount(items, weights=weights, minlength=self.n_items_).astype(
            np.float32
        )
        # Row r >= 1 is (end - r * w, end - (r - 1) * w]; anything newer is row 0 (open).
        ago = np.floor((self.window_end_ - timestamps) / self.window_seconds_) + 1
        rows = np.where(timestamps > self.window_end_, 0, ago).astype(np.int64)
        counted = rows < len(self.counts_)
        np.add.at(self.counts_, (rows[counted], items[counted]), weights[counted])
        self.trend_ = self._trend()

    def _trend(self) -> np.ndarray:
        latest = self.counts_[1].astype(np.float64)
        older = self.counts_[2:].astype(np.float64)
        decay = 0.5 ** (np.arange(len(older)) / 2.0)
        # Share of each baseline window after the first event: earlier time is not "quiet".
        ends = self.window_end_ - self.window_seconds_ * np.arange(1, len(older) + 1)
        covered = np.clip((ends - self.first_timestamp_) / self.window_seconds_, 0.0, 1.0)
        exposure = float((decay * covered).sum())
        if exposure > 0:
            baseline = (decay[:, None] * older).sum(axis=0) / exposure
            growth = (latest - baseline) / np.sqrt(baseline + 1.0)
        else:
            growth = np.zeros_like(latest)  # no history before the latest window: no trend yet
        top = float(np.max(self.popularity_, initial=0.0))
        share = self.popularity_ / top if top > 0 else np.zeros_like(latest)
        return (growth + _POPULARITY_TIE_BREAK * share).astype(np.float32)
