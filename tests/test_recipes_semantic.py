"""aws-semantic-similarity's model: conformance, topic-mates, the ranking factors, its errors.

Seeded catalogs with a planted answer: each item's name and description are drawn from one
topic's words plus words every topic uses, so an item's nearest neighbours should be the
items of its topic.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from threadpoolctl import threadpool_limits

from openpersonalize.data.interactions import InteractionData
from openpersonalize.data.training_data import TrainingDataError
from openpersonalize.recipes.base import Model
from openpersonalize.recipes.semantic_similarity import SemanticSimilarityModel
from openpersonalize.testing.conformance import (
    CHECKS,
    ConformanceCase,
    group_of,
    synthetic_interactions,
)

TOPICS = {
    "kitchen": "pan skillet knife spatula whisk cook bake oven recipe chef kettle",
    "garden": "soil seed shovel rake hose bloom plant prune compost flowerbed trowel",
    "music": "guitar string chord melody drum rhythm amplifier tune pick concert strum",
    "camping": "tent sleeping lantern trail campfire hike backpack stove compass outdoor",
}
SHARED = "perfect quality design everyday stylish durable premium classic modern gift ideal"
ADJECTIVES = "bright sturdy compact deluxe rustic handy vivid"


def catalog(n_items: int, seed: int, n_topics: int = 4) -> pa.Table:
    """Names and descriptions: item i is about topic ``group_of(i, n_topics)``."""
    rng = np.random.default_rng(seed)
    topics = [words.split() for words in list(TOPICS.values())[:n_topics]]
    shared, adjectives = SHARED.split(), ADJECTIVES.split()
    names, descriptions = [], []
    for item in range(n_items):
        words = topics[item % n_topics]
        names.append(f"{rng.choice(adjectives)} {rng.choice(words)}")
        text = list(rng.choice(words, 5)) + list(rng.choice(shared, 7))
        rng.shuffle(text)
        descriptions.append(" ".join(text) + ".")
    return pa.table({"TITLE": names, "DESCRIPTION": descriptions})


def with_text(data: InteractionData, table: pa.Table, **columns: pa.Array) -> InteractionData:
    for name, values in columns.items():
        table = table.append_column(name, values)
    kinds = {"TITLE": "other", "DESCRIPTION": "textual"}
    kinds.update(dict.fromkeys(columns, "numeric"))
    return replace(data, item_metadata=table, item_column_kinds=kinds, item_name_column="TITLE")


def items_only(n_items: int, seed: int = 3) -> InteractionData:
    """No interactions at all: the recipe's minimum."""
    empty = np.empty(0)
    data = InteractionData(
        user_ids=np.empty(0, dtype=object),
        item_ids=np.array([f"item-{i:03d}" for i in range(n_items)], dtype=object),
        users=empty.astype(np.int32),
        items=empty.astype(np.int32),
        timestamps=empty.astype(np.int64),
        weights=empty.astype(np.float32),
    )
    return with_text(data, catalog(n_items, seed))


@pytest.fixture(scope="module", autouse=True)
def one_blas_thread() -> Iterator[None]:
    with threadpool_limits(limits=1, user_api="blas"):
        yield


@pytest.fixture(scope="module")
def case() -> ConformanceCase:
    # The planted groups of the events are the topics of the texts, so history-based scores
    # recover the users' preferences too.
    data = synthetic_interactions(240, 160, 9000, 7)
    return ConformanceCase(
        SemanticSimilarityModel, personalized=True, data=with_text(data, catalog(160, 11))
    )


@pytest.mark.parametrize("check", CHECKS, ids=lambda check: check.__name__)
def test_conformance(case: ConformanceCase, check: Callable[[ConformanceCase], None]) -> None:
    check(case)


def test_topic_mates_are_nearest_neighbours_without_any_interactions() -> None:
    data = items_only(120)
    model = SemanticSimilarityModel().fit(data)
    assert model.n_users_ == 0
    shares = []
    for item in range(data.n_items):
        similar, scores = model.similar_items(item, 10)
        assert item not in similar and (similar >= 0).all()
        assert (np.diff(scores) <= 0).all()
        shares.append(np.mean(group_of(similar, 4) == group_of(item, 4)))
    assert np.mean(shares) >= 0.9, np.mean(shares)
    assert min(shares) >= 0.6


def test_words_that_share_contexts_relate_items_without_a_common_word() -> None:
    # LSA, not word overlap: "sofa" and "couch" never meet in one description, but both
    # appear with the same living-room words; a query about a sofa finds the couch item
    # before any kitchen item, although it shares no word with either.
    rows = []
    for _ in range(12):
        rows.append(("sofa", "sofa cushion lounge living room comfy"))
        rows.append(("couch", "couch cushion lounge living room comfy"))
        rows.append(("pan", "pan skillet cook kitchen bake oven"))
    rows.append(("sofa query", "sofa"))
    rows.append(("couch answer", "couch"))
    rows.append(("oven answer", "oven"))
    table = pa.table({"TITLE": [r[0] for r in rows], "DESCRIPTION": [r[1] for r in rows]})
    data = replace(items_only(len(rows)), item_metadata=table)
    model = SemanticSimilarityModel(embedding_dim=2).fit(data)
    query, couch, oven = len(rows) - 3, len(rows) - 2, len(rows) - 1
    scores = dict(zip(*model.neighbours(query), strict=True))
    assert scores.get(couch, 0.0) > scores.get(oven, 0.0)
    assert couch in scores


def test_freshness_factor_moves_newer_topic_mates_up() -> None:
    data = items_only(120)
    created = 1_700_000_000 + np.random.default_rng(5).permutation(120) * 86_400
    fresh = with_text(data, catalog(120, 3), CREATION_TIMESTAMP=pa.array(created))
    model = SemanticSimilarityModel().fit(fresh)
    plain_ages, fresh_ages, mates = [], [], []
    for item in range(0, 120, 7):
        plain, _ = model.similar_items(item, 5)
        boosted, _ = model.similar_items(item, 5, ranking_influence={"FRESHNESS": 1.0})
        plain_ages.append(created[plain].mean())
        fresh_ages.append(created[boosted].mean())
        mates.append(np.mean(group_of(boosted, 4) == group_of(item, 4)))
    assert np.mean(fresh_ages) > np.mean(plain_ages) + 5 * 86_400
    assert np.mean(mates) >= 0.9  # newer, but still about the same topic
    # A weight of 0 is no influence; without CREATION_TIMESTAMP the factor changes nothing.
    for item in (0, 1, 2):
        zero = model.similar_items(item, 10, ranking_influence={"FRESHNESS": 0.0})
        assert np.array_equal(zero[0], model.similar_items(item, 10)[0])
    undated = SemanticSimilarityModel().fit(data)
    assert np.array_equal(
        undated.similar_items(4, 10, ranking_influence={"FRESHNESS": 1.0})[0],
        undated.similar_items(4, 10)[0],
    )


def test_popularity_factor_moves_popular_topic_mates_up() -> None:
    n_items = 80
    rng = np.random.default_rng(9)
    # Popularity unrelated to topic: item i has about i / 4 events.
    items = np.concatenate([np.full(i // 4, i) for i in range(n_items)]).astype(np.int32)
    users = rng.integers(0, 50, len(items)).astype(np.int32)
    data = InteractionData(
        user_ids=np.array([f"u{u}" for u in range(50)], dtype=object),
        item_ids=np.array([f"item-{i:03d}" for i in range(n_items)], dtype=object),
        users=users,
        items=items,
        timestamps=np.arange(len(items), dtype=np.int64),
        weights=np.ones(len(items), dtype=np.float32),
    )
    model = SemanticSimilarityModel().fit(with_text(data, catalog(n_items, 4)))
    plain_counts, popular_counts = [], []
    for item in range(0, n_items, 5):
        plain, _ = model.similar_items(item, 5)
        popular, _ = model.similar_items(item, 5, ranking_influence={"POPULARITY": 1.0})
        plain_counts.append(np.mean(plain // 4))
        popular_counts.append(np.mean(popular // 4))
        assert np.mean(group_of(popular, 4) == group_of(item, 4)) >= 0.8
    assert np.mean(popular_counts) > np.mean(plain_counts) + 1


def test_save_load_round_trips_the_factors() -> None:
    created = pa.array(np.arange(60, dtype=np.int64) * 1000)
    data = with_text(items_only(60), catalog(60, 3), CREATION_TIMESTAMP=created)
    model = SemanticSimilarityModel().fit(data)
    influence = {"FRESHNESS": 0.5, "POPULARITY": 0.5}
    with tempfile.TemporaryDirectory() as tmp:
        model.save(Path(tmp) / "model")
        loaded = Model.load(Path(tmp) / "model")
        assert isinstance(loaded, SemanticSimilarityModel)
        for item in (0, 17, 59):
            expected = model.similar_items(item, 10, ranking_influence=influence)
            got = loaded.similar_items(item, 10, ranking_influence=influence)
            assert np.array_equal(got[0], expected[0])
            np.testing.assert_array_equal(got[1], expected[1])
        del loaded


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"item_metadata": None, "item_column_kinds": {}}, ["no Items data"]),
        ({"item_name_column": None}, ['"itemName": true']),
        ({"item_column_kinds": {"TITLE": "other", "DESCRIPTION": "other"}}, ['"textual": true']),
        (
            {"item_name_column": None, "item_column_kinds": {}},
            ['"itemName": true', '"textual": true'],
        ),
    ],
    ids=["no-items", "no-item-name", "no-textual", "neither"],
)
def test_missing_text_fields_are_refused_with_the_reason(
    change: dict[str, object], words: list[str]
) -> None:
    data = replace(items_only(30), **change)
    with pytest.raises(TrainingDataError) as refused:
        SemanticSimilarityModel().fit(data)
    for word in words:
        assert word in str(refused.value)
    assert "aws-semantic-similarity" in str(refused.value)


def test_text_no_two_items_share_is_refused() -> None:
    table = pa.table({"TITLE": ["alpha", "beta", "gamma"], "DESCRIPTION": ["one", "two", None]})
    data = replace(items_only(3), item_metadata=table)
    with pytest.raises(TrainingDataError, match="nothing to compare"):
        SemanticSimilarityModel().fit(data)
