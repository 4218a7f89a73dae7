"""The HRNN recipes (GRU session models): the conformance suite plus what is particular to them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pyarrow as pa
import pytest

from openpersonalize.data.interactions import InteractionData
from openpersonalize.recipes import hrnn
from openpersonalize.recipes.base import Model
from openpersonalize.recipes.hrnn import HRNNColdstartModel, HRNNMetadataModel, HRNNModel
from openpersonalize.testing.conformance import (
    CHECKS,
    ConformanceCase,
    group_of,
    synthetic_interactions,
)

N_GROUPS = 4
DAY = 86_400
TINY = dict(
    hidden_dimension=16, bptt=10, epochs=3, min_steps=100, learning_rate=0.02, batch_size=32
)


def with_genres(data: InteractionData) -> InteractionData:
    """`data` plus an Items GENRE column naming each item's planted group, and a Users one."""
    items = pa.table({"GENRE": [f"g{g}" for g in group_of(np.arange(data.n_items), N_GROUPS)]})
    users = pa.table({"TASTE": [f"t{g}" for g in group_of(np.arange(data.n_users), N_GROUPS)]})
    return replace(
        data,
        item_metadata=items,
        item_column_kinds={"GENRE": "categorical"},
        user_metadata=users,
        user_column_kinds={"TASTE": "categorical"},
    )


DATA = with_genres(synthetic_interactions(240, 160, 9000, 7))
MODELS: dict[str, type[HRNNModel]] = {
    "aws-hrnn": HRNNModel,
    "aws-hrnn-metadata": HRNNMetadataModel,
    "aws-hrnn-coldstart": HRNNColdstartModel,
}


# aws-hrnn-metadata runs the same code as aws-hrnn-coldstart, without the cold-item mask.
@pytest.fixture(scope="module", params=["aws-hrnn", "aws-hrnn-coldstart"])
def case(request: pytest.FixtureRequest) -> ConformanceCase:
    model_class = MODELS[request.param]
    return ConformanceCase(lambda: model_class(**TINY), personalized=True, data=DATA)


@pytest.mark.parametrize("check", CHECKS, ids=lambda check: check.__name__)
def test_conformance(case: ConformanceCase, check: Callable[[ConformanceCase], None]) -> None:
    check(case)


@pytest.fixture(scope="module")
def data() -> InteractionData:
    return with_genres(synthetic_interactions(120, 60, 3000, seed=3))


@pytest.fixture(scope="module")
def coldstart(data: InteractionData) -> HRNNColdstartModel:
    return HRNNColdstartModel(**TINY).fit(data)


def test_save_load_round_trip_keeps_user_metadata_and_fold_in(
    coldstart: HRNNColdstartModel, tmp_path: Path
) -> None:
    coldstart.save(tmp_path / "model")
    loaded = Model.load(tmp_path / "model")
    assert isinstance(loaded, HRNNColdstartModel)
    assert loaded.get_params() == coldstart.get_params()
    users = np.arange(-1, coldstart.n_users_ + 1, dtype=np.int32)
    np.testing.assert_array_equal(loaded.score(users), coldstart.score(users))
    session = np.array([3, 7, 11], dtype=np.int32)
    np.testing.assert_array_equal(
        loaded.fold_in(session, np.ones(3)), coldstart.fold_in(session, np.ones(3))
    )


def test_fold_in_follows_the_session_and_its_order(data: InteractionData) -> None:
    model = HRNNModel(**TINY).fit(data)
    warm = np.arange(model.n_items_ - 2)
    ones, zeros = warm[warm % 4 == 1][:8], warm[warm % 4 == 0][:8]
    toward_one = model.fold_in(ones, np.ones(len(ones)))
    assert toward_one is not None and toward_one.shape == (model.n_items_,)
    in_group = warm % 4 == 1
    assert toward_one[warm][in_group].mean() > toward_one[warm][~in_group].mean()
    toward_zero = model.fold_in(zeros, np.ones(len(zeros)))
    assert toward_zero is not None
    assert toward_one[warm][in_group].mean() > toward_zero[warm][in_group].mean()
    assert not np.allclose(model.fold_in(ones[::-1], np.ones(8)), toward_one)  # a sequence
    assert model.fold_in(np.array([-1, model.n_items_]), np.ones(2)) is None


def test_coldstart_recommends_cold_items_to_users_of_their_genre(
    coldstart: HRNNColdstartModel, data: InteractionData
) -> None:
    cold = np.flatnonzero(np.bincount(data.items, minlength=data.n_items) == 0)
    assert len(cold) == 2 and coldstart.cold_items(data)[cold].all()
    for item in cold:
        group = group_of(item, N_GROUPS)
        users = np.arange(data.n_users)
        mine = group_of(users, N_GROUPS) == group
        scores = coldstart.score(users)[:, item]
        assert scores[mine].mean() > scores[~mine].mean() + 0.5 * scores.std()


def test_without_coldstart_cold_items_rank_low(data: InteractionData) -> None:
    """aws-hrnn-metadata keeps a learned ID embedding for every item: items without events
    were only ever negatives, so they sink; coldstart lifts them by their metadata."""
    cold = np.flatnonzero(np.bincount(data.items, minlength=data.n_items) == 0)
    users = np.arange(data.n_users)
    matching = group_of(users, N_GROUPS)[:, None] == group_of(cold, N_GROUPS)[None, :]

    def items_above_cold(model: Model) -> np.ndarray:
        """(users, cold items): how many items each user scores above each cold item."""
        scores = model.score(users)
        return (scores[:, None, :] > scores[:, cold][:, :, None]).sum(axis=2)

    lifted = items_above_cold(HRNNColdstartModel(**TINY).fit(data))
    sunk = items_above_cold(HRNNMetadataModel(**TINY).fit(data))
    assert lifted[matching].mean() < 0.5 * sunk[matching].mean()


def test_cold_items_by_interactions_and_recency(
    data: InteractionData, monkeypatch: pytest.MonkeyPatch
) -> None:
    counts = np.bincount(data.items, minlength=data.n_items)
    # Item 5 arrives ten days after the rest (the synthetic events span about two days).
    late = replace(data, timestamps=np.where(data.items == 5, 864_000, 0) + data.timestamps)
    few_enough = HRNNColdstartModel(cold_start_max_interactions=int(counts[5]))
    expected = counts == 0
    expected[5] = True
    np.testing.assert_array_equal(few_enough.cold_items(late), expected)
    too_many = HRNNColdstartModel(cold_start_max_interactions=int(counts[5]) - 1)
    np.testing.assert_array_equal(too_many.cold_items(late), counts == 0)
    forever = HRNNColdstartModel(cold_start_max_interactions=3, cold_start_max_duration=1e9)
    np.testing.assert_array_equal(forever.cold_items(data), counts <= 3)

    # currentTime: recency counts back from the clock, which the test sets (not the wall's):
    # a day after item 5 arrived it is still new; a month after, nothing is.
    newest = float(late.timestamps.max())
    for clock, cold in ((newest + DAY, expected), (newest + 30 * DAY, counts == 0)):
        monkeypatch.setattr(hrnn, "time", SimpleNamespace(time=lambda clock=clock: clock))
        few = HRNNColdstartModel(
            cold_start_max_interactions=int(counts[5]), cold_start_relative_from="currentTime"
        )
        np.testing.assert_array_equal(few.cold_items(late), cold)


def test_metadata_changes_the_model_and_plain_hrnn_ignores_it(data: InteractionData) -> None:
    plain = replace(data, item_metadata=None, user_metadata=None)
    users = np.arange(data.n_users, dtype=np.int32)
    with_metadata = HRNNMetadataModel(**TINY).fit(data)
    without = HRNNMetadataModel(**TINY).fit(plain)
    assert with_metadata.user_features_.shape[1] > 0 and without.user_features_.shape[1] == 0
    assert not np.array_equal(with_metadata.score(users), without.score(users))
    np.testing.assert_array_equal(
        HRNNModel(**TINY).fit(data).score(users), HRNNModel(**TINY).fit(plain).score(users)
    )


def test_history_percentiles_leave_users_out_of_training(data: InteractionData) -> None:
    users = np.arange(data.n_users, dtype=np.int32)
    everyone = HRNNModel(**TINY, max_user_history_length_percentile=1.0).fit(data)
    fewer = HRNNModel(**TINY, max_user_history_length_percentile=0.5).fit(data)
    assert not np.array_equal(everyone.item_vectors_, fewer.item_vectors_)
    # Users left out of training are still scored from their own history.
    heavy = int(np.argmax(np.bincount(data.users)))
    assert not np.array_equal(fewer.score(users)[heavy], fewer.popularity_)


def test_recency_mask_changes_the_model(data: InteractionData) -> None:
    masked = HRNNModel(**{**TINY, "epochs": 1}).fit(data)
    flat = HRNNModel(**{**TINY, "epochs": 1}, recency_mask=False).fit(data)
    assert not np.array_equal(masked.item_vectors_, flat.item_vectors_)
