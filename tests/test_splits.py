"""Evaluation and validation splits: held-out users, newest events as truth, determinism."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from openpersonalize.data.interactions import InteractionData
from openpersonalize.data.splits import EvaluationSplit, evaluation_split, validation_split


def synthetic(
    n_users: int = 400, n_items: int = 120, n_events: int = 12_000, seed: int = 0
) -> InteractionData:
    """Seeded events in shuffled order, with repeated timestamps and some one-event users."""
    rng = np.random.default_rng(seed)
    users = rng.integers(0, n_users - 20, n_events).astype(np.int32)
    users = np.concatenate([users, np.arange(n_users - 20, n_users, dtype=np.int32)])
    n = len(users)
    return InteractionData(
        user_ids=np.array([f"u{i}" for i in range(n_users)], dtype=object),
        item_ids=np.array([f"i{i}" for i in range(n_items)], dtype=object),
        users=users,
        items=rng.integers(0, n_items, n).astype(np.int32),
        timestamps=rng.integers(0, 5_000, n).astype(np.int64),  # many ties
        weights=np.ones(n, dtype=np.float32),
    )


def event_keys(data: InteractionData) -> set[tuple[int, int, int]]:
    return set(zip(data.users.tolist(), data.items.tolist(), data.timestamps.tolist(), strict=True))


def check_split(data: InteractionData, split: EvaluationSplit, holdout_fraction: float) -> None:
    """Properties every split has, checked with plain loops over users."""
    counts = np.bincount(data.users, minlength=data.n_users)
    train_counts = np.bincount(split.train.users, minlength=data.n_users)
    test = set(split.test_users.tolist())
    assert split.test_users.dtype == np.int32
    assert list(split.test_users) == sorted(test)
    assert len(split.truth) == len(split.test_users)
    # Users who are not held out keep every event.
    for user in range(data.n_users):
        if user not in test:
            assert train_counts[user] == counts[user]
    # Held-out users: oldest events in train, newest events are the truth.
    order = np.lexsort((data.timestamps, data.users))
    for user, truth in zip(split.test_users, split.truth, strict=True):
        assert counts[user] >= 2
        mine = order[data.users[order] == user]  # this user's events, oldest first (stable)
        n = len(mine)
        n_truth = min(max(int(np.floor(holdout_fraction * n + 0.5)), 1), n - 1)
        history, newest = mine[: n - n_truth], mine[n - n_truth :]
        assert train_counts[user] == len(history)
        in_train = split.train.users == user
        assert sorted(split.train.timestamps[in_train].tolist()) == sorted(
            data.timestamps[history].tolist()
        )
        assert split.train.timestamps[in_train].max() <= data.timestamps[newest].min()
        expected = list(dict.fromkeys(data.items[newest].tolist()))  # unique, time order
        assert truth.dtype == np.int32
        assert truth.tolist() == expected
    assert split.train.n_events == data.n_events - sum(
        counts[u] - train_counts[u] for u in split.test_users
    )


def test_hand_made_split() -> None:
    # u0: 10 events -> 9 history, 1 truth; u1: 2 events -> 1 and 1; u2: 1 event, never held out.
    users = np.array([0] * 10 + [1, 1, 2], dtype=np.int32)
    items = np.array([9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 3, 4, 5], dtype=np.int32)
    timestamps = np.array([10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 50, 40, 0], dtype=np.int64)
    data = InteractionData(
        user_ids=np.array(["u0", "u1", "u2"], dtype=object),
        item_ids=np.array([f"i{i}" for i in range(10)], dtype=object),
        users=users,
        items=items,
        timestamps=timestamps,
        weights=np.ones(13, dtype=np.float32),
    )
    split = evaluation_split(data, test_user_fraction=1.0)
    assert split.test_users.tolist() == [0, 1]
    assert [t.tolist() for t in split.truth] == [[9], [3]]  # the newest event of each
    assert split.train.n_events == 11
    assert 10 not in split.train.timestamps and 50 not in split.train.timestamps
    assert split.train.user_ids is data.user_ids  # same vocabularies


def test_truth_keeps_repeats_once_in_time_order() -> None:
    # 10 events, holdout 0.5 -> newest 5: items 4, 2, 4, 7, 2 -> truth [4, 2, 7].
    items = np.array([1, 1, 1, 1, 2, 4, 2, 4, 7, 2], dtype=np.int32)
    data = InteractionData(
        user_ids=np.array(["u"], dtype=object),
        item_ids=np.array([f"i{i}" for i in range(8)], dtype=object),
        users=np.zeros(10, dtype=np.int32),
        items=items,
        timestamps=np.arange(10, dtype=np.int64),
        weights=np.ones(10, dtype=np.float32),
    )
    split = evaluation_split(data, test_user_fraction=1.0, holdout_fraction=0.5)
    assert split.truth[0].tolist() == [4, 2, 7]
    # Item 2 is also in the history (position 5): truth items may repeat history items.
    assert 2 in split.train.items


@pytest.mark.parametrize("holdout", [0.1, 0.25])
def test_split_properties(holdout: float) -> None:
    data = synthetic()
    split = evaluation_split(data, test_user_fraction=0.2, holdout_fraction=holdout, seed=4)
    check_split(data, split, holdout)


def test_truth_events_are_absent_from_train() -> None:
    data = synthetic()
    split = evaluation_split(data, seed=1)
    everything = Counter(zip(data.users.tolist(), data.items.tolist(), strict=True))
    kept = Counter(zip(split.train.users.tolist(), split.train.items.tolist(), strict=True))
    assert not kept - everything  # train is a sub-multiset of the data
    removed = everything - kept
    truth = {
        (int(u), int(i))
        for u, items in zip(split.test_users, split.truth, strict=True)
        for i in items
    }
    assert set(removed) == truth  # exactly the truth events left train
    history = np.bincount(split.train.users, minlength=data.n_users)[split.test_users]
    assert np.all(history >= 1)  # every test user keeps some history


def test_fraction_roughly_honoured_and_one_event_users_never_tested() -> None:
    data = synthetic()
    counts = np.bincount(data.users, minlength=data.n_users)
    eligible = int(np.count_nonzero(counts >= 2))
    split = evaluation_split(data, test_user_fraction=0.1)
    assert len(split.test_users) == round(0.1 * eligible)
    assert np.all(counts[split.test_users] >= 2)
    one_event_users = np.flatnonzero(counts == 1)
    assert len(one_event_users) > 0
    assert not set(one_event_users.tolist()) & set(split.test_users.tolist())
    # The truth is about a tenth of the test users' events.
    n_truth_events = int(counts[split.test_users].sum()) - int(
        np.isin(split.train.users, split.test_users).sum()
    )
    assert n_truth_events == pytest.approx(0.1 * counts[split.test_users].sum(), rel=0.25)


def test_deterministic_by_seed() -> None:
    data = synthetic()
    a = evaluation_split(data, seed=11)
    b = evaluation_split(data, seed=11)
    c = evaluation_split(data, seed=12)
    np.testing.assert_array_equal(a.test_users, b.test_users)
    assert [t.tolist() for t in a.truth] == [t.tolist() for t in b.truth]
    np.testing.assert_array_equal(a.train.users, b.train.users)
    np.testing.assert_array_equal(a.train.timestamps, b.train.timestamps)
    assert a.test_users.tolist() != c.test_users.tolist()


def test_exclude_and_cap() -> None:
    data = synthetic()
    first = evaluation_split(data, test_user_fraction=0.5, seed=2)
    again = evaluation_split(data, test_user_fraction=0.5, seed=2, exclude_users=first.test_users)
    assert not set(first.test_users.tolist()) & set(again.test_users.tolist())
    capped = evaluation_split(data, test_user_fraction=0.5, max_test_users=7)
    assert len(capped.test_users) == 7
    none = evaluation_split(data, test_user_fraction=0.0)
    assert len(none.test_users) == 0 and none.truth == []
    assert none.train.n_events == data.n_events
    with pytest.raises(ValueError, match="between 0 and 1"):
        evaluation_split(data, test_user_fraction=1.5)


def test_validation_split_uses_training_users_only() -> None:
    data = synthetic()
    evaluation = evaluation_split(data, test_user_fraction=0.2, seed=0)
    validation = validation_split(
        evaluation.train, exclude_users=evaluation.test_users, user_fraction=0.2
    )
    assert len(validation.test_users) > 0
    assert not set(validation.test_users.tolist()) & set(evaluation.test_users.tolist())
    check_split(evaluation.train, validation, 0.1)
    # Neither split's truth leaks into the validation training data.
    val_train = event_keys(validation.train)
    for split, source in ((validation, evaluation.train), (evaluation, data)):
        train_of_split = event_keys(split.train)
        truth_events = event_keys(source) - train_of_split
        assert truth_events and not truth_events & val_train


def test_large_split_is_vectorized() -> None:
    # 300k events split quickly enough for a unit test only without per-event Python work.
    data = synthetic(n_users=20_000, n_items=5_000, n_events=300_000, seed=9)
    split = evaluation_split(data, seed=3)
    assert len(split.test_users) == round(0.1 * np.count_nonzero(np.bincount(data.users) >= 2))
    assert sum(len(t) for t in split.truth) > 0
