"""aws-item-affinity's model: the conformance suite, plus its calibrated user affinities."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from openpersonalize.data.interactions import InteractionData
from openpersonalize.recipes import catalog
from openpersonalize.recipes.base import Model
from openpersonalize.recipes.item_affinity import TEMPERATURES, ItemAffinityModel
from openpersonalize.testing.conformance import CHECKS, ConformanceCase, synthetic_interactions


def small(**overrides: object) -> ItemAffinityModel:
    return ItemAffinityModel(hidden_dimension=32, **overrides)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def data() -> InteractionData:
    return synthetic_interactions(240, 160, 9000, 7)


@pytest.fixture(scope="module")
def fitted(data: InteractionData) -> ItemAffinityModel:
    return small().fit(data)


@pytest.fixture(scope="module")
def case() -> ConformanceCase:
    return ConformanceCase(small, personalized=True)


@pytest.mark.parametrize("check", CHECKS, ids=lambda check: check.__name__)
def test_conformance(case: ConformanceCase, check: Callable[[ConformanceCase], None]) -> None:
    check(case)


def test_both_segmentation_recipes_train_this_model() -> None:
    for name in ("aws-item-affinity", "aws-item-attribute-affinity"):
        assert catalog.model_class(catalog.RECIPES[name]) is ItemAffinityModel


def unseen_log_probabilities(model: ItemAffinityModel, data: InteractionData) -> np.ndarray:
    """users x items: user_affinity of each single item, -inf where the user had it."""
    table = np.stack([model.user_affinity(np.array([item])) for item in range(data.n_items)], 1)
    table = table.astype(np.float64)
    table[data.matrix().toarray() > 0] = -np.inf
    return table


def test_each_user_s_affinities_are_a_distribution_over_unseen_items(
    fitted: ItemAffinityModel, data: InteractionData
) -> None:
    table = unseen_log_probabilities(fitted, data)
    total = np.log(np.exp(table).sum(axis=1))
    np.testing.assert_allclose(total, 0.0, atol=1e-4)
    # Users are ranked on a common scale: not everyone's best item gets the same value.
    assert np.ptp(table.max(axis=1)) > 0.1


def test_a_set_of_items_gets_the_probability_of_any_of_them(fitted: ItemAffinityModel) -> None:
    first, second = fitted.user_affinity(np.array([3])), fitted.user_affinity(np.array([10]))
    both = fitted.user_affinity(np.array([3, 10]))
    np.testing.assert_allclose(both, np.logaddexp(first, second), rtol=1e-5, atol=1e-5)
    assert (fitted.user_affinity(np.array([], dtype=np.int64)) == -np.inf).all()


def test_a_focused_user_s_probability_goes_to_what_is_left_of_their_taste() -> None:
    # Two tastes: items 0-7 and items 8-15, as 58 other users show. User 0 took six items of
    # the first, so most of their probability is on the two left (6 and 7); user 1 took
    # items of both tastes and has much of both left, so theirs is spread out.
    rows = [(0, i) for i in range(6)] + [(1, i) for i in (0, 1, 8, 9, 10, 11, 12, 13)]
    rng = np.random.default_rng(0)
    for fan in range(2, 60):
        rows += [(fan, fan % 2 * 8 + int(k)) for k in rng.choice(8, 5, replace=False)]
    data = InteractionData(
        user_ids=np.array([f"u{u}" for u in range(60)], dtype=object),
        item_ids=np.array([f"i{i}" for i in range(16)], dtype=object),
        users=np.array([u for u, _ in rows], dtype=np.int32),
        items=np.array([i for _, i in rows], dtype=np.int32),
        timestamps=np.arange(len(rows), dtype=np.int64),
        weights=np.ones(len(rows), dtype=np.float32),
    )
    model = ItemAffinityModel(hidden_dimension=8, regularization=1.0, temperature=0.2).fit(data)
    left = np.exp(model.user_affinity(np.array([6, 7])))
    assert left[0] > 0.5 > left[1]


def test_the_temperature_is_chosen_on_held_out_training_events_unless_given(
    fitted: ItemAffinityModel, data: InteractionData
) -> None:
    assert fitted.temperature is None and fitted.temperature_ in TEMPERATURES
    fixed = small(temperature=0.5).fit(data)
    assert fixed.temperature_ == 0.5
    np.testing.assert_allclose(
        np.log(np.exp(unseen_log_probabilities(fixed, data)).sum(axis=1)), 0.0, atol=1e-4
    )


def test_users_without_events_get_the_items_share_of_event_weights() -> None:
    data = synthetic_interactions(60, 30, 900, 3)
    data = data.subset(data.users != 5)  # user 5 stays in the vocabulary without events
    model = small(temperature=1.0).fit(data)
    counts = np.bincount(data.items, weights=data.weights, minlength=data.n_items) + 1.0
    expected = np.log(counts[[2, 7]].sum() / counts.sum())
    assert model.user_affinity(np.array([2, 7]))[5] == pytest.approx(expected, rel=1e-5)


def test_save_and_load_keep_the_affinities(fitted: ItemAffinityModel, tmp_path: Path) -> None:
    fitted.save(tmp_path)
    loaded = Model.load(tmp_path)
    assert isinstance(loaded, ItemAffinityModel)
    for items in (np.array([4]), np.array([1, 2, 9])):
        np.testing.assert_array_equal(loaded.user_affinity(items), fitted.user_affinity(items))


def test_refresh_renormalizes_over_the_new_data(data: InteractionData) -> None:
    older = data.subset(data.timestamps < np.quantile(data.timestamps, 0.7))
    model = small(temperature=1.0).fit(older)
    model.refresh(data, data.user_ids, data.item_ids)
    assert model.temperature_ == 1.0
    total = np.log(np.exp(unseen_log_probabilities(model, data)).sum(axis=1))
    np.testing.assert_allclose(total, 0.0, atol=1e-4)
