"""The recipes' models: the shared conformance suite, plus what is particular to each."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from openpersonalize.data.interactions import InteractionData
from openpersonalize.recipes.als import ALSModel
from openpersonalize.recipes.base import MODEL_FILE, Model, top_k
from openpersonalize.recipes.popularity import PopularityModel
from openpersonalize.testing.conformance import (
    CHECKS,
    ConformanceCase,
    group_of,
    holdout_newest,
    synthetic_interactions,
)

MODELS: dict[str, tuple[Callable[[], Model], bool]] = {
    "popularity": (PopularityModel, False),
    "als": (ALSModel, True),
}


@pytest.fixture(scope="module", params=sorted(MODELS))
def case(request: pytest.FixtureRequest) -> ConformanceCase:
    factory, personalized = MODELS[request.param]
    return ConformanceCase(factory, personalized=personalized)


@pytest.mark.parametrize("check", CHECKS, ids=lambda check: check.__name__)
def test_conformance(case: ConformanceCase, check: Callable[[ConformanceCase], None]) -> None:
    check(case)


def test_the_planted_preference_check_catches_an_unpersonalized_model() -> None:
    case = ConformanceCase(PopularityModel, personalized=True)
    for check_name in ("check_personalized_lists", "check_planted_preference"):
        check = next(c for c in CHECKS if c.__name__ == check_name)
        with pytest.raises(AssertionError):
            check(case)


def ranking_metrics(
    model: Model, train: InteractionData, truth: InteractionData
) -> tuple[float, float]:
    """Mean NDCG@10 and precision@10 over users with held-out events."""
    users = np.unique(truth.users).astype(np.int32)
    items, _ = model.recommend(users, 10, exclude=train.matrix())
    relevant = truth.matrix()
    hits = np.asarray(relevant[np.repeat(users, 10), items.reshape(-1).clip(0)]).reshape(
        items.shape
    )
    hits = (hits > 0) & (items >= 0)
    discount = 1.0 / np.log2(np.arange(2, 12))
    ideal_counts = np.minimum(np.diff(relevant.indptr)[users], 10)
    ideal = np.cumsum(discount)[ideal_counts - 1]
    ndcg = (hits * discount).sum(axis=1) / ideal
    return float(ndcg.mean()), float(hits.mean())


def test_als_clearly_beats_popularity_on_planted_preferences() -> None:
    data = synthetic_interactions(400, 200, 16000, seed=11)
    train, truth = holdout_newest(data, 0.2)
    popularity = ranking_metrics(PopularityModel().fit(train), train, truth)
    als = ranking_metrics(ALSModel().fit(train), train, truth)
    assert als[0] > 1.5 * popularity[0], (als, popularity)  # NDCG@10
    assert als[1] > 1.5 * popularity[1], (als, popularity)  # precision@10


# -- popularity -----------------------------------------------------------------------------------


def test_popularity_scores_are_summed_event_weights() -> None:
    data = events([(0, 1, 1.0), (1, 1, 0.5), (2, 2, 1.0), (0, 0, 0.2), (1, 0, 0.2)], n_items=4)
    model = PopularityModel().fit(data)
    np.testing.assert_allclose(model.popularity_, [0.4, 1.5, 1.0, 0.0], rtol=1e-6)
    items, scores = model.recommend(np.array([0, 2, -1, 99], dtype=np.int32), 3)
    assert (items == [1, 2, 0]).all()  # the same list for known and unknown users
    np.testing.assert_allclose(scores[0], [1.5, 1.0, 0.4], rtol=1e-6)
    items, _ = model.recommend(np.array([0]), 3, exclude=data.matrix())
    assert items.tolist() == [[2, 3, -1]]


# -- ALS ------------------------------------------------------------------------------------------


def test_als_hidden_dimension_sets_the_factors() -> None:
    data = synthetic_interactions(60, 40, 1200, seed=1)
    model = ALSModel(hidden_dimension=32).fit(data)
    assert model.user_factors_.shape == (60, 32) and model.item_factors_.shape == (40, 32)


def test_als_random_state_changes_the_model() -> None:
    data = synthetic_interactions(60, 40, 1200, seed=1)
    first = ALSModel(random_state=1).fit(data).item_factors_
    second = ALSModel(random_state=2).fit(data).item_factors_
    assert not np.array_equal(first, second)


def test_als_users_outside_the_percentiles_are_folded_in() -> None:
    data = synthetic_interactions(240, 160, 9000, seed=3)
    counts = np.bincount(data.users, minlength=data.n_users)
    model = ALSModel(
        min_user_history_length_percentile=0.2, max_user_history_length_percentile=0.8
    ).fit(data)
    left_out = (counts < np.quantile(counts, 0.2)) | (counts > np.quantile(counts, 0.8))
    assert left_out.sum() > 20
    # Their factors come from their own history: recommendations favour their group too.
    users = np.flatnonzero(left_out).astype(np.int32)
    items, _ = model.recommend(users, 10, exclude=data.matrix())
    in_group = group_of(items, 4) == group_of(users, 4)[:, None]
    assert in_group.mean() > 0.6
    assert np.abs(model.user_factors_[users]).sum(axis=1).min() > 0


def test_als_recency_mask_favours_recent_taste() -> None:
    # Half the users move from group 0 to group 1 for their last events, the other half the
    # other way round; with the recency mask, the new taste should lead their lists.
    rng = np.random.default_rng(5)
    n_users, n_items, old, new = 120, 60, 30, 10
    rows = []
    for user in range(n_users):
        for position in range(old + new):
            group = user % 2 if position < old else 1 - user % 2
            rows.append((user, 2 * int(rng.integers(0, n_items // 2)) + group, 1.0, position))
    data = events(rows, n_items=n_items)

    def new_taste_share(recency_mask: bool) -> float:
        model = ALSModel(bptt=4, recency_mask=recency_mask).fit(data)
        users = np.arange(n_users)
        items, _ = model.recommend(users, 5, exclude=data.matrix())
        return float((group_of(items, 2) == 1 - group_of(users, 2)[:, None]).mean())

    assert new_taste_share(True) > new_taste_share(False) + 0.2


def test_als_cold_users_and_empty_data_are_scored_by_popularity() -> None:
    data = events([(0, 1, 1.0), (1, 1, 1.0), (1, 2, 1.0)], n_items=4, n_users=3)
    model = ALSModel(hidden_dimension=32).fit(data)
    items, scores = model.recommend(np.array([2, -1], dtype=np.int32), 2)  # user 2 has no events
    assert items.tolist() == [[1, 2], [1, 2]]
    np.testing.assert_allclose(scores, [[2.0, 1.0], [2.0, 1.0]])
    empty = ALSModel(hidden_dimension=32).fit(events([], n_items=3, n_users=2))
    items, scores = empty.recommend(np.array([0]), 2)
    assert items.tolist() == [[0, 1]] and (scores == 0).all()


# -- the base class -------------------------------------------------------------------------------


def test_top_k_orders_by_score_then_item_and_drops_minus_infinity() -> None:
    scores = np.array(
        [[0.5, 2.0, 0.5, -np.inf, 1.0], [-np.inf, -np.inf, np.nan, 3.0, -np.inf]],
        dtype=np.float32,
    )
    items, values = top_k(scores, 4)
    assert items.tolist() == [[1, 4, 0, 2], [3, -1, -1, -1]]
    assert np.isnan(values[1, 1:]).all() and values[0].tolist() == [2.0, 1.0, 0.5, 0.5]
    items, values = top_k(scores, 7)  # wider than the catalog
    assert items.shape == (2, 7) and (items[:, 5:] == -1).all()


def test_load_refuses_another_class_and_never_unpickles(tmp_path: Path) -> None:
    data = synthetic_interactions(30, 20, 300, seed=2)
    PopularityModel().fit(data).save(tmp_path / "model")
    with pytest.raises(ValueError, match="PopularityModel"):
        ALSModel.load(tmp_path / "model")
    assert isinstance(Model.load(tmp_path / "model"), PopularityModel)
    document = json.loads((tmp_path / "model" / MODEL_FILE).read_text())
    assert document["arrays"] == ["popularity_"] and document["params"] == {}
    np.save(tmp_path / "model" / "popularity_.npy", np.array([object()]), allow_pickle=True)
    with pytest.raises(ValueError):
        Model.load(tmp_path / "model")


def test_unfitted_models_say_so() -> None:
    with pytest.raises(RuntimeError, match="not fitted"):
        ALSModel().recommend(np.array([0]), 5)


def events(
    rows: list[tuple[int, int, float]] | list[tuple[int, int, float, int]],
    *,
    n_items: int,
    n_users: int | None = None,
) -> InteractionData:
    """InteractionData from (user, item, weight[, timestamp]) rows."""
    table = np.array([(*row, 0)[:4] for row in rows], dtype=np.float64).reshape(-1, 4)
    users = table[:, 0].astype(np.int32)
    n_users = n_users if n_users is not None else int(users.max(initial=-1)) + 1
    return InteractionData(
        user_ids=np.array([f"u{i}" for i in range(n_users)], dtype=object),
        item_ids=np.array([f"i{i}" for i in range(n_items)], dtype=object),
        users=users,
        items=table[:, 1].astype(np.int32),
        timestamps=table[:, 3].astype(np.int64),
        weights=table[:, 2].astype(np.float32),
    )


def test_exclusion_accepts_any_sparse_format() -> None:
    data = synthetic_interactions(30, 20, 300, seed=2)
    model = PopularityModel().fit(data)
    users = np.arange(30, dtype=np.int32)
    expected = model.recommend(users, 5, exclude=data.matrix())
    got = model.recommend(users, 5, exclude=sp.coo_matrix(data.matrix()))
    assert np.array_equal(expected[0], got[0])
