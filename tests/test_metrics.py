"""Offline ranking metrics: the spec's definitions on hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from openpersonalize.metrics.ranking import (
    EXTENDED_METRIC_NAMES,
    METRIC_NAMES,
    extended_metrics,
    ranking_metrics,
)


def _row(*items: int, width: int = 25) -> list[int]:
    """A recommendation list padded with -1."""
    return list(items) + [-1] * (width - len(items))


def _dcg(positions: list[int]) -> float:
    return sum(1 / math.log2(1 + p) for p in positions)


def test_spec_worked_ndcg_example() -> None:
    # Relevant at positions 2 and 5 of the top 5, two truth items -> 0.6241 (spec section 7).
    recommended = np.array([[10, 1, 11, 12, 2] + list(range(20, 40))])
    metrics = ranking_metrics(recommended, [np.array([1, 2])], n_items=100)
    assert metrics["normalized_discounted_cumulative_gain_at_5"] == pytest.approx(0.6241, abs=1e-4)
    expected = (1 / math.log(3) + 1 / math.log(6)) / (1 / math.log(2) + 1 / math.log(3))
    assert metrics["normalized_discounted_cumulative_gain_at_5"] == pytest.approx(expected)
    # Same hits at 10 and 25: the ideal still has only two relevant items.
    assert metrics["normalized_discounted_cumulative_gain_at_25"] == pytest.approx(expected)
    assert metrics["precision_at_5"] == pytest.approx(2 / 5)
    assert metrics["precision_at_10"] == pytest.approx(2 / 10)
    assert metrics["precision_at_25"] == pytest.approx(2 / 25)
    assert metrics["mean_reciprocal_rank_at_25"] == pytest.approx(1 / 2)


def test_names_and_order() -> None:
    metrics = ranking_metrics(np.array([_row(1)]), [np.array([1])], n_items=10)
    assert tuple(metrics) == METRIC_NAMES
    assert all(isinstance(v, float) for v in metrics.values())
    extended = extended_metrics(np.array([_row(1)]), [np.array([1])], n_items=10)
    assert tuple(extended) == EXTENDED_METRIC_NAMES


def test_averages_over_users_by_hand() -> None:
    recommended = np.array(
        [
            _row(*range(100, 125)),  # user 0: truth item 7 never recommended
            _row(5, 6, 7, 8, 9, 1, 2, 3, 4, 0, 11),  # user 1: hits at 6 and 11
            _row(3),  # user 2: hit at 1, list of one
        ]
    )
    truth = [np.array([7]), np.array([1, 11, 50]), np.array([3])]
    m = ranking_metrics(recommended, truth, n_items=200)

    assert m["mean_reciprocal_rank_at_25"] == pytest.approx((0 + 1 / 6 + 1) / 3)
    assert m["precision_at_5"] == pytest.approx((0 + 0 + 1 / 5) / 3)
    assert m["precision_at_10"] == pytest.approx((0 + 1 / 10 + 1 / 10) / 3)
    assert m["precision_at_25"] == pytest.approx((0 + 2 / 25 + 1 / 25) / 3)
    assert m["normalized_discounted_cumulative_gain_at_5"] == pytest.approx((0 + 0 + 1) / 3)
    user1_at10 = _dcg([6]) / _dcg([1, 2, 3])
    assert m["normalized_discounted_cumulative_gain_at_10"] == pytest.approx(
        (0 + user1_at10 + 1) / 3
    )
    user1_at25 = _dcg([6, 11]) / _dcg([1, 2, 3])
    assert m["normalized_discounted_cumulative_gain_at_25"] == pytest.approx(
        (0 + user1_at25 + 1) / 3
    )
    # Distinct non-padding items: 25 + 11 + 1 (item 3 is in both of the last two lists).
    distinct = len({*range(100, 125), 5, 6, 7, 8, 9, 1, 2, 3, 4, 0, 11})
    assert m["coverage"] == pytest.approx(distinct / 200)


def test_perfect_and_empty_recommendations() -> None:
    truth = [np.array([1, 2]), np.array([3])]
    perfect = ranking_metrics(np.array([_row(1, 2), _row(3)]), truth, n_items=4)
    for k in (5, 10, 25):
        assert perfect[f"normalized_discounted_cumulative_gain_at_{k}"] == pytest.approx(1.0)
    assert perfect["mean_reciprocal_rank_at_25"] == 1.0
    assert perfect["precision_at_5"] == pytest.approx((2 / 5 + 1 / 5) / 2)  # always / K
    assert perfect["coverage"] == pytest.approx(3 / 4)

    nothing = ranking_metrics(np.full((2, 25), -1), truth, n_items=4)
    assert all(v == 0.0 for v in nothing.values())


def test_ideal_dcg_caps_at_k() -> None:
    # 30 truth items, the top 5 all hits: NDCG@5 is 1 (ideal uses min(|truth|, K) items).
    truth = [np.arange(30)]
    m = ranking_metrics(np.array([list(range(25))]), truth, n_items=30)
    for k in (5, 10, 25):
        assert m[f"normalized_discounted_cumulative_gain_at_{k}"] == pytest.approx(1.0)
        assert m[f"precision_at_{k}"] == pytest.approx(1.0)


def test_repeated_recommendation_counts_once() -> None:
    m = ranking_metrics(np.array([_row(1, 1, 1, 1, 1)]), [np.array([1, 2])], n_items=5)
    assert m["precision_at_5"] == pytest.approx(1 / 5)
    assert m["normalized_discounted_cumulative_gain_at_5"] == pytest.approx(
        _dcg([1]) / _dcg([1, 2])
    )


def test_only_the_top_25_count_and_short_lists_are_padded() -> None:
    wide = np.array([list(range(100, 125)) + [7]])  # the truth item at position 26
    m = ranking_metrics(wide, [np.array([7])], n_items=200)
    assert m["mean_reciprocal_rank_at_25"] == 0.0
    assert m["coverage"] == pytest.approx(25 / 200)
    short = ranking_metrics(np.array([[4, 7]]), [np.array([7])], n_items=10)
    assert short["mean_reciprocal_rank_at_25"] == pytest.approx(1 / 2)
    assert short["precision_at_25"] == pytest.approx(1 / 25)


def test_users_without_truth_are_not_averaged() -> None:
    recommended = np.array([_row(1), _row(1)])
    m = ranking_metrics(recommended, [np.array([1]), np.array([], dtype=np.int32)], n_items=3)
    assert m["mean_reciprocal_rank_at_25"] == 1.0
    empty = ranking_metrics(np.empty((0, 25), dtype=np.int64), [], n_items=3)
    assert all(v == 0.0 for v in empty.values())


def test_extended_metrics_by_hand() -> None:
    recommended = np.array([_row(9, 9, 9, 9, 9, 1, 2), _row(5)])
    truth = [np.array([1, 2, 3, 4]), np.array([6])]
    m = extended_metrics(recommended, truth, n_items=10)
    assert m["recall_at_5"] == 0.0
    assert m["recall_at_10"] == pytest.approx((2 / 4 + 0) / 2)
    assert m["recall_at_25"] == pytest.approx((2 / 4 + 0) / 2)
    assert m["hit_rate_at_5"] == 0.0
    assert m["hit_rate_at_10"] == pytest.approx(1 / 2)


def test_vectorized_matches_a_plain_loop() -> None:
    rng = np.random.default_rng(7)
    n_users, n_items = 300, 60
    recommended = np.stack([rng.permutation(n_items)[:25] for _ in range(n_users)])
    recommended[rng.random(recommended.shape) < 0.1] = -1
    truth = [rng.choice(n_items, size=rng.integers(1, 8), replace=False) for _ in range(n_users)]
    m = ranking_metrics(recommended, truth, n_items)

    mrr, ndcg10, p10 = [], [], []
    for row, items in zip(recommended, truth, strict=True):
        relevant = set(items.tolist())
        hits = [p + 1 for p, item in enumerate(row) if item in relevant]
        mrr.append(1 / hits[0] if hits else 0.0)
        in10 = [p for p in hits if p <= 10]
        ndcg10.append(_dcg(in10) / _dcg(list(range(1, min(len(relevant), 10) + 1))))
        p10.append(len(in10) / 10)
    assert m["mean_reciprocal_rank_at_25"] == pytest.approx(np.mean(mrr))
    assert m["normalized_discounted_cumulative_gain_at_10"] == pytest.approx(np.mean(ndcg10))
    assert m["precision_at_10"] == pytest.approx(np.mean(p10))
    assert m["coverage"] == pytest.approx(len(set(recommended[recommended >= 0])) / n_items)


def test_shape_mismatch_is_refused() -> None:
    with pytest.raises(ValueError, match="rows"):
        ranking_metrics(np.zeros((2, 25), dtype=int), [np.array([1])], n_items=3)
    with pytest.raises(ValueError, match="2-D"):
        ranking_metrics(np.zeros(25, dtype=int), [np.array([1])], n_items=3)


def test_average_rewards_is_the_reward_of_taken_up_recommendations() -> None:
    from openpersonalize.metrics.ranking import average_rewards

    rewards = np.zeros(40)
    rewards[:25] = 10.0  # the 25 most rewarding items average 10
    rewards[30], rewards[31] = 2.0, 6.0
    recommended = np.array([[30, 31, 5] + [-1] * 22, [32, 33] + [-1] * 23, [0] + [-1] * 24])
    truth = [np.array([30, 31]), np.array([7]), np.array([0])]
    # user 0 took up items worth 2 and 6 (mean 4 of 10), user 1 nothing (not counted),
    # user 2 an item worth 10: (0.4 + 1.0) / 2.
    assert average_rewards(recommended, truth, rewards) == pytest.approx(0.7)
    assert average_rewards(recommended[:, :0], truth, rewards) == 0.0


def test_objective_lifts_valuable_items_more_with_more_sensitivity() -> None:
    import pyarrow as pa

    from openpersonalize.recipes.objective import Objective

    items = pa.table({"PRICE": [1.0, 1.0, 100.0, None]})
    scores = np.array([[3.0, 2.0, 1.0, 0.0]], dtype=np.float32)
    off = Objective.from_metadata(items, "PRICE", "OFF").adjust(scores)
    np.testing.assert_array_equal(off, scores)
    lifted = [
        Objective.from_metadata(items, "PRICE", level).adjust(scores)[0]
        for level in ("LOW", "MEDIUM", "HIGH")
    ]
    gaps = [row[2] - row[1] for row in lifted]  # the pricey item against an equal-ish cheap one
    assert gaps == sorted(gaps) and gaps[-1] > 0
    assert all(np.argmax(row) in (0, 2) for row in lifted)
