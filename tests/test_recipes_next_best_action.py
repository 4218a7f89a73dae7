"""aws-next-best-action's model on seeded data with a known answer (no server)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow as pa

from openpersonalize.recipes.base import Model
from openpersonalize.recipes.next_best_action import (
    DAY,
    MAX_ACTIONS,
    MIN_TAKEN,
    NOT_TAKEN,
    TAKEN,
    VIEWED,
    ActionData,
    NextBestActionModel,
    build_action_data,
)
from openpersonalize.testing.actions import action_data, generate

SCENARIO = generate(seed=5, n_users=300, held_out_share=0.2)


def codes(data: ActionData, users: list[str]) -> np.ndarray:
    index = {user: code for code, user in enumerate(data.user_ids)}
    return np.array([index[u] for u in users], dtype=np.int32)


def test_each_groups_best_action_ranks_first_even_without_action_history() -> None:
    data = action_data(SCENARIO)
    model = NextBestActionModel().fit(data)
    assert model.scored_
    scores = model.score(codes(data, SCENARIO.held_out))
    assert ((scores >= 0) & (scores <= 1)).all()
    best = data.action_ids[scores.argmax(axis=1)]
    truth = [SCENARIO.best_action(u) for u in SCENARIO.held_out]
    hits = np.mean(best == np.array(truth, dtype=object))
    assert hits >= 0.95
    # The newsletter, everyone's second choice, gets a middling propensity.
    newsletter = list(data.action_ids).index("newsletter")
    assert 0.2 < scores[:, newsletter].mean() < 0.8


def test_action_codes_follow_value_so_ties_go_to_the_higher_value() -> None:
    data = action_data(SCENARIO)
    values = {a: v for a, _, v, _ in SCENARIO.actions}
    assert [values[a] for a in data.action_ids] == sorted(values.values(), reverse=True)


def test_scores_are_zero_until_enough_recent_taken_and_declined_events() -> None:
    data = action_data(SCENARIO)
    taken = np.flatnonzero(data.kinds == TAKEN)
    declined = np.flatnonzero(data.kinds != TAKEN)
    for n_taken, n_declined, scored in ((MIN_TAKEN - 1, 200, False), (MIN_TAKEN, 50, True)):
        keep = np.zeros(len(data.kinds), dtype=bool)
        keep[taken[:n_taken]] = True
        keep[declined[:n_declined]] = True
        model = NextBestActionModel().fit(data.subset(keep))
        assert model.scored_ is scored
        scores = model.score(np.arange(10, dtype=np.int32))
        assert (scores == 0).all() != scored
    # Events older than six weeks before the newest one do not count.
    old = replace(data, timestamps=data.timestamps.copy())
    newest = old.timestamps.max()
    old.timestamps[taken[1:]] = newest - 43 * DAY
    assert not NextBestActionModel().fit(old).scored_


def test_save_and_load_give_the_same_scores_and_fits_are_deterministic(tmp_path: Path) -> None:
    data = action_data(SCENARIO)
    model = NextBestActionModel().fit(data)
    users = np.arange(0, len(data.user_ids), 7, dtype=np.int32)
    model.save(tmp_path / "model")
    loaded = Model.load(tmp_path / "model")
    assert isinstance(loaded, NextBestActionModel)
    np.testing.assert_array_equal(loaded.score(users), model.score(users))
    np.testing.assert_allclose(NextBestActionModel().fit(data).score(users), model.score(users))
    # Streamed events change the user's record without retraining; an unknown user scores too.
    extra = np.zeros(model.n_items_)
    extra[0] = 3
    assert not np.allclose(loaded.score_user(int(users[0]), taken=extra), model.score(users[:1])[0])
    assert (loaded.score_user(-1) > 0).all()


def test_the_optimization_period_decides_whether_a_view_led_to_taking() -> None:
    data = action_data(SCENARIO)
    # One user views an action and takes it ten days later; another only views it.
    events = replace(
        data,
        users=np.array([0, 0, 1], dtype=np.int32),
        actions=np.array([2, 2, 2], dtype=np.int32),
        timestamps=np.array([0, 10 * DAY, 0], dtype=np.int64),
        kinds=np.array([VIEWED, TAKEN, NOT_TAKEN], dtype=np.int8),
    )
    two_weeks = NextBestActionModel(action_optimization_period=14)._labels(events)
    one_week = NextBestActionModel(action_optimization_period=7)._labels(events)
    assert two_weeks.tolist() == [1.0, 1.0, 0.0]
    assert one_week.tolist() == [0.0, 1.0, 0.0]


def test_unknown_duplicate_and_badly_typed_events_are_left_out() -> None:
    data = action_data(SCENARIO)
    tables = SCENARIO.tables()
    events = pa.table(
        {
            "USER_ID": ["u1", "u1", "u1", "u2", "u3"],
            "ACTION_ID": ["newsletter", "newsletter", "no-such-action", "survey", "survey"],
            "TIMESTAMP": pa.array([5, 5, 6, 7, 8], pa.int64()),
            "EVENT_TYPE": ["Taken", "Taken", "Taken", "Clicked", "not taken"],
        }
    )
    built = build_action_data(data.items, tables["Actions"], {"CATEGORY"}, events)
    assert len(built.users) == 2  # one of the two alike, and u3's "not taken"
    assert sorted(built.kinds.tolist()) == [TAKEN, NOT_TAKEN]
    assert set(built.user_ids[built.users]) == {"u1", "u3"}  # new users join the vocabulary


def test_at_most_max_actions_are_considered_the_newest_first() -> None:
    data = action_data(SCENARIO)
    n = MAX_ACTIONS + 5
    actions = pa.table(
        {
            "ACTION_ID": [f"a{i}" for i in range(n)],
            "CATEGORY": ["x"] * n,
            "CREATION_TIMESTAMP": pa.array(range(n), pa.int64()),
        }
    )
    built = build_action_data(data.items, actions, {"CATEGORY"}, None)
    assert built.n_actions == MAX_ACTIONS
    assert {f"a{i}" for i in range(5)}.isdisjoint(set(built.action_ids))
