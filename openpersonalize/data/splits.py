"""Hold-out splits for offline metrics, the way the service evaluates a solution version.

A seeded random share of users is held out. For each held-out user the events are sorted by
time: the oldest part (90 % by default) stays in the training data as the user's history, the
newest part (at least one event) is the truth that recommendations are scored against.
Everyone else's events are training data in full.

Choices:

* Only users with two or more events can be held out (one event cannot be both history and
  truth); the user fraction is a share of those users.
* A held-out user keeps at least one history event, and gives at least one truth event:
  ``n_truth = clip(round(holdout_fraction * n), 1, n - 1)`` (halves round up).
* Events with equal timestamps keep their order in the data (stable sort), so a split is a
  pure function of the data and the seed.
* Truth items the user also has in their history stay in the truth, as the service scores
  all of the newest events; a recipe that never re-recommends seen items will miss them.
  The truth lists each item once, in the order of its first truth event.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from openpersonalize.data.interactions import InteractionData

__all__ = ["EvaluationSplit", "evaluation_split", "validation_split"]


@dataclass
class EvaluationSplit:
    """Training data plus the held-out users and their truth items."""

    train: InteractionData  # everyone's events except the held-out users' newest ones
    test_users: np.ndarray  # int32 user codes of the held-out users, ascending
    truth: list[np.ndarray]  # per test user: int32 item codes of their newest events

    @property
    def n_test_users(self) -> int:
        return len(self.test_users)


def evaluation_split(
    data: InteractionData,
    *,
    test_user_fraction: float = 0.1,
    holdout_fraction: float = 0.1,
    seed: int = 0,
    exclude_users: np.ndarray | None = None,
    max_test_users: int | None = None,
) -> EvaluationSplit:
    """Hold out ``test_user_fraction`` of the eligible users (never ``exclude_users``)."""
    _check_fraction("test_user_fraction", test_user_fraction)
    _check_fraction("holdout_fraction", holdout_fraction)
    counts = np.bincount(data.users, minlength=data.n_users)
    eligible = counts >= 2
    if exclude_users is not None and len(exclude_users):
        eligible[np.asarray(exclude_users, dtype=np.int64)] = False
    candidates = np.flatnonzero(eligible)
    n_test = _n_test_users(len(candidates), test_user_fraction, max_test_users)
    rng = np.random.default_rng(seed)
    chosen = rng.choice(candidates, size=n_test, replace=False) if n_test else candidates[:0]
    test_users = np.sort(chosen).astype(np.int32)
    return _hold_out(data, test_users, counts, holdout_fraction)


def validation_split(
    train: InteractionData,
    *,
    exclude_users: np.ndarray | None = None,
    user_fraction: float = 0.1,
    holdout_fraction: float = 0.1,
    seed: int = 1,
    max_users: int | None = None,
) -> EvaluationSplit:
    """The same procedure carved out of ``train`` (for HPO's objective).

    Pass the evaluation split's ``test_users`` as ``exclude_users`` so that only training
    users are held out: their history in ``train`` is only the oldest part of their events,
    and their truth must stay unseen by every trial. The returned ``train`` never contains
    a validation truth event.
    """
    return evaluation_split(
        train,
        test_user_fraction=user_fraction,
        holdout_fraction=holdout_fraction,
        seed=seed,
        exclude_users=exclude_users,
        max_test_users=max_users,
    )


def _hold_out(
    data: InteractionData, test_users: np.ndarray, counts: np.ndarray, holdout_fraction: float
) -> EvaluationSplit:
    """Split each test user's events by time into history (kept in train) and truth."""
    is_test = np.zeros(data.n_users, dtype=bool)
    is_test[test_users] = True
    events = np.flatnonzero(is_test[data.users])
    # Sort only the test users' events, by (user, time); lexsort is stable for ties.
    order = np.lexsort((data.timestamps[events], data.users[events]))
    events = events[order]

    n = counts[test_users].astype(np.int64)  # test_users ascending: same order as the sort
    n_truth = np.clip(np.floor(holdout_fraction * n + 0.5), 1, n - 1).astype(np.int64)
    starts = np.cumsum(n) - n
    position = np.arange(len(events), dtype=np.int64) - np.repeat(starts, n)
    truth_events = events[position >= np.repeat(n - n_truth, n)]

    in_truth = np.zeros(data.n_events, dtype=bool)
    in_truth[truth_events] = True
    train = data.subset(~in_truth)

    # Each (user, item) once, at its first truth event; truth_events is sorted by user, time.
    users = data.users[truth_events].astype(np.int64)
    items = data.items[truth_events].astype(np.int64)
    _, first = np.unique(users * max(data.n_items, 1) + items, return_index=True)
    first.sort()
    per_user = np.bincount(np.searchsorted(test_users, users[first]), minlength=len(test_users))
    truth = np.split(items[first].astype(np.int32), np.cumsum(per_user)[:-1])
    if len(test_users) == 0:
        truth = []  # np.split of nothing still gives one (empty) piece
    return EvaluationSplit(train=train, test_users=test_users, truth=truth)


def _n_test_users(n_candidates: int, fraction: float, cap: int | None) -> int:
    """round(fraction * candidates), at least one when any fraction is asked for, capped."""
    if n_candidates == 0 or fraction == 0:
        return 0
    n = max(1, int(np.floor(fraction * n_candidates + 0.5)))
    if cap is not None:
        n = min(n, max(cap, 0))
    return min(n, n_candidates)


def _check_fraction(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be between 0 and 1, got {value}")
