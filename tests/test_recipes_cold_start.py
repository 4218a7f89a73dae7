"""Cold items through metadata: the shared featurizer's regression and iALS's cold-start step."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pyarrow as pa

from openpersonalize.recipes.als import ALSModel
from openpersonalize.recipes.features import (
    predict_from_features,
    users_within_history_percentiles,
)
from openpersonalize.testing.conformance import group_of, synthetic_interactions

N_GROUPS = 4


def test_predict_from_features_recovers_a_linear_map_and_fills_unknown_rows() -> None:
    rng = np.random.default_rng(0)
    features = rng.normal(size=(200, 5))
    truth = features @ rng.normal(size=(5, 3)) + np.array([1.0, -2.0, 0.5])
    known = np.arange(200) < 150
    predicted = predict_from_features(features, truth.astype(np.float32), known, 1e-6)
    assert predicted.dtype == np.float32 and predicted.shape == (200, 3)
    np.testing.assert_allclose(predicted[~known], truth[~known], atol=1e-3)
    # Without features the prediction is the mean of the known rows (the intercept).
    mean_only = predict_from_features(np.zeros((200, 0)), truth.astype(np.float32), known)
    np.testing.assert_allclose(mean_only[0], truth[known].mean(axis=0), atol=1e-4)


def test_users_within_history_percentiles() -> None:
    events = np.array([0, 1, 2, 3, 4, 5, 6, 7, 8, 100])
    np.testing.assert_array_equal(users_within_history_percentiles(events, 0.0, 1.0), events > 0)
    inside = users_within_history_percentiles(events, 0.2, 0.8)
    assert not inside[0] and not inside[-1] and not inside[1] and inside[5]
    assert not users_within_history_percentiles(np.zeros(3, np.int64), 0.0, 1.0).any()


def genres(n_items: int) -> pa.Table:
    return pa.table({"GENRE": [f"g{g}" for g in group_of(np.arange(n_items), N_GROUPS)]})


def test_als_gives_items_without_events_factors_from_their_metadata() -> None:
    data = synthetic_interactions(160, 80, 5000, seed=5)  # items 78 and 79 have no events
    with_genre = replace(data, item_metadata=genres(80), item_column_kinds={"GENRE": "categorical"})
    model = ALSModel(hidden_dimension=16, iterations=5).fit(with_genre)
    users = np.arange(data.n_users)
    scores = model.score(users)
    for item in (78, 79):
        assert np.linalg.norm(model.item_factors_[item]) > 0
        mine = group_of(users, N_GROUPS) == group_of(item, N_GROUPS)
        assert scores[mine, item].mean() > scores[~mine, item].mean()
        # For its own group's users it ranks like an item of that group, not at the bottom.
        beaten = (scores[mine] < scores[mine, item][:, None]).mean()
        assert beaten > 0.5, beaten
    # Excluding the column (trainingDataConfig) leaves them without factors.
    plain = ALSModel(hidden_dimension=16, iterations=5).fit(
        replace(with_genre, item_metadata=genres(80).select([]), item_column_kinds={})
    )
    assert not plain.item_factors_[78:].any()
    np.testing.assert_array_equal(plain.item_factors_[:78], model.item_factors_[:78])


def test_als_update_gives_new_items_without_events_factors_from_their_metadata() -> None:
    data = synthetic_interactions(160, 80, 5000, seed=5)  # items 78 and 79 have no events
    with_genre = replace(data, item_metadata=genres(80), item_column_kinds={"GENRE": "categorical"})
    model = ALSModel(hidden_dimension=16, iterations=5).fit(data)
    model.score(np.arange(data.n_users))  # scoring keeps a copy of the factors made for it
    # trainingMode UPDATE: the previous model knew items 0-77; 78 and 79 arrive in Items only.
    model.refresh(with_genre, data.user_ids, data.item_ids[:78])
    scores = model.score(np.arange(data.n_users))
    np.testing.assert_allclose(
        scores, model.user_factors_ @ model.item_factors_.T, rtol=1e-5, atol=1e-5
    )
    for item in (78, 79):
        assert np.linalg.norm(model.item_factors_[item]) > 0
        mine = group_of(np.arange(data.n_users), N_GROUPS) == group_of(item, N_GROUPS)
        assert scores[mine, item].mean() > scores[~mine, item].mean()
