"""SASRec (aws-user-personalization-v2): the conformance suite plus what is particular to it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from openpersonalize.recipes.base import Model
from openpersonalize.recipes.ease import item_weights
from openpersonalize.recipes.sasrec import SASRecModel
from openpersonalize.testing.conformance import (
    CHECKS,
    ConformanceCase,
    synthetic_interactions,
)


def tiny(**overrides: object) -> SASRecModel:
    settings: dict = dict(
        hidden_dimension=16,
        max_sequence_length=10,
        num_blocks=1,
        dropout=0.1,
        epochs=5,
        learning_rate=0.02,
        batch_size=32,
    )
    settings.update(overrides)
    return SASRecModel(**settings)


@pytest.fixture(scope="module")
def case() -> ConformanceCase:
    return ConformanceCase(tiny, personalized=True)


@pytest.mark.parametrize("check", CHECKS, ids=lambda check: check.__name__)
def test_conformance(case: ConformanceCase, check: Callable[[ConformanceCase], None]) -> None:
    check(case)


@pytest.fixture(scope="module")
def data():
    return synthetic_interactions(120, 60, 3000, seed=3)


@pytest.fixture(scope="module")
def fitted(data) -> SASRecModel:
    return tiny().fit(data)


def test_save_load_round_trip(fitted: SASRecModel, tmp_path: Path) -> None:
    fitted.save(tmp_path / "model")
    loaded = Model.load(tmp_path / "model")
    assert isinstance(loaded, SASRecModel)
    users = np.arange(-1, fitted.n_users_ + 1, dtype=np.int32)
    np.testing.assert_array_equal(loaded.score(users), fitted.score(users))
    session = np.array([3, 7, 11], dtype=np.int32)
    np.testing.assert_array_equal(
        loaded.fold_in(session, np.ones(3)), fitted.fold_in(session, np.ones(3))
    )
    assert {name for name in vars(loaded) if name.startswith("weight_")}


def test_fold_in_moves_scores_toward_the_session(fitted: SASRecModel) -> None:
    # Items of group 1 (codes 1, 5, 9, ...) as the session: group-1 items should then rank
    # above items of the other groups, and above where a group-0 session puts them.
    group = np.arange(fitted.n_items_ - 2)
    ones = group[group % 4 == 1][:8]
    zeros = group[group % 4 == 0][:8]
    toward_one = fitted.fold_in(ones, np.ones(len(ones)))
    toward_zero = fitted.fold_in(zeros, np.ones(len(zeros)))
    assert toward_one.shape == (fitted.n_items_,) and toward_one.dtype == np.float32
    in_group = group % 4 == 1
    assert toward_one[group][in_group].mean() > toward_one[group][~in_group].mean()
    assert toward_one[group][in_group].mean() - toward_zero[group][in_group].mean() > 0
    # The order of the session matters: it is a sequence, not a bag.
    assert not np.allclose(fitted.fold_in(ones[::-1], np.ones(8)), toward_one)
    # Nothing inside the catalog: no fold-in.
    assert fitted.fold_in(np.array([-1, fitted.n_items_]), np.ones(2)) is None


def test_same_random_state_same_model_other_state_other_model(data) -> None:
    first, second = tiny().fit(data), tiny().fit(data)
    users = np.arange(data.n_users, dtype=np.int32)
    np.testing.assert_array_equal(first.score(users), second.score(users))
    np.testing.assert_array_equal(first.item_vectors_, second.item_vectors_)
    other = tiny(random_state=1).fit(data)
    assert not np.array_equal(other.item_vectors_, first.item_vectors_)


def test_sequences_hold_the_newest_events_left_padded(fitted: SASRecModel, data) -> None:
    user = int(np.argmax(np.bincount(data.users)))
    mine = np.flatnonzero(data.users == user)
    newest_first = data.items[mine[np.argsort(-data.timestamps[mine], kind="stable")]]
    length = fitted.max_sequence_length
    assert fitted.sequences_.dtype == np.int32
    np.testing.assert_array_equal(fitted.sequences_[user][::-1][:length], newest_first[:length])
    few = tiny(max_sequence_length=500).fit(data)
    row = few.sequences_[user]
    assert (row[: 500 - len(mine)] == -1).all() and (row[500 - len(mine) :] >= 0).all()


def test_recency_bias_changes_the_model(data) -> None:
    biased = tiny(epochs=2).fit(data)
    flat = tiny(epochs=2, apply_recency_bias=False).fit(data)
    assert not np.array_equal(biased.item_vectors_, flat.item_vectors_)


def test_categorical_item_metadata_adds_value_embeddings(data) -> None:
    genres = np.array(["g0|shared", "g1|shared", "g2", "g3"], dtype=object)
    metadata = pa.table({"GENRES": genres[np.arange(data.n_items) % 4].tolist()})
    with_metadata = type(data)(**{**vars(data)})
    with_metadata.item_metadata = metadata
    with_metadata.item_column_kinds = {"GENRES": "categorical"}
    model = tiny(epochs=2).fit(with_metadata)
    plain = tiny(epochs=2).fit(data)
    assert not np.array_equal(model.item_vectors_, plain.item_vectors_)
    # The two cold items (no events) share their group's metadata embedding, so they are
    # closer to each other's group than random vectors would be: at least finite and nonzero.
    assert np.isfinite(model.item_vectors_).all()
    assert (np.linalg.norm(model.item_vectors_, axis=1) > 0).all()


def test_users_without_events_get_popularity(data) -> None:
    sparse = data.subset(data.users != 0)
    model = tiny(epochs=1).fit(sparse)
    np.testing.assert_array_equal(model.score(np.array([0, -1]))[0], model.popularity_)
    np.testing.assert_array_equal(model.score(np.array([0, -1]))[1], model.popularity_)


def test_sampled_softmax_path_for_large_catalogs(data) -> None:
    """Catalogs above full_softmax_max_items train against sampled negatives instead."""
    sampled = tiny(full_softmax_max_items=0).fit(data)
    again = tiny(full_softmax_max_items=0).fit(data)
    users = np.arange(min(5, data.n_users), dtype=np.int32)
    items, scores = sampled.recommend(users, 5, exclude=data.matrix())
    assert (items >= 0).all() and np.isfinite(scores).all()
    assert np.array_equal(items, again.recommend(users, 5, exclude=data.matrix())[0])
    full = tiny().fit(data)
    assert not np.array_equal(sampled.score(users), full.score(users))


def test_ease_weights_are_the_closed_form_solution(data) -> None:
    """item_weights keeps, per item, the largest of B = -P / diag(P), P = (X'X + l2 I)^-1."""
    matrix = data.matrix().tocsr()
    neighbours, weights = item_weights(matrix, 50.0, data.n_items)
    modelled = np.flatnonzero(matrix.getnnz(axis=0) >= 2)
    binary = (matrix[:, modelled] > 0).astype(np.float64).toarray()
    inverse = np.linalg.inv(binary.T @ binary + 50.0 * np.eye(len(modelled)))
    expected = -inverse / np.diag(inverse)[None, :]
    np.fill_diagonal(expected, 0.0)
    dense = np.zeros((data.n_items, data.n_items))
    present = neighbours >= 0
    dense[np.repeat(np.arange(data.n_items), present.sum(axis=1)), neighbours[present]] = weights[
        present
    ]
    np.testing.assert_allclose(dense[np.ix_(modelled, modelled)], expected, atol=1e-5)
    # Items with fewer than two events have no neighbours; the strongest are kept when pruned.
    assert (neighbours[matrix.getnnz(axis=0) < 2] == -1).all()
    top, top_weights = item_weights(matrix, 50.0, 3)
    item = int(modelled[0])
    strongest = np.sort(np.abs(expected[0]))[-3:]
    np.testing.assert_allclose(np.sort(np.abs(top_weights[item])), strongest, rtol=1e-4)


def test_item_item_blend_learns_the_groups_and_moves_the_scores(fitted: SASRecModel, data) -> None:
    # Synthetic users favour one group of items (code % 4): EASE's strongest neighbours of an
    # item are mostly items of its own group.
    neighbours = fitted.neighbour_items_
    modelled = int(np.count_nonzero(data.matrix().tocsr().getnnz(axis=0) >= 2))
    assert neighbours.shape == (data.n_items, min(fitted.item_item_neighbours, modelled - 1))
    rows = np.flatnonzero((neighbours >= 0).any(axis=1))
    strongest = neighbours[rows, np.argmax(fitted.neighbour_weights_[rows], axis=1)]
    assert np.mean(strongest % 4 == rows % 4) > 0.8
    # The blend changes the ranking; without it (weight 0) the transformer's scores are left.
    users = np.arange(data.n_users, dtype=np.int32)
    blended = fitted.score(users)
    transformer = tiny(item_item_weight=0.0).fit(data)
    assert transformer.neighbour_items_.shape[1] == 0
    assert not np.array_equal(blended, transformer.score(users))
    # A catalog above item_item_max_items is left to the transformer alone.
    assert tiny(item_item_max_items=10).fit(data).neighbour_items_.shape[1] == 0
