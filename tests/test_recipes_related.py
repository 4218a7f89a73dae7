"""aws-sims, aws-similar-items and aws-trending-now: conformance plus what each must recover."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from openpersonalize.data.interactions import InteractionData
from openpersonalize.recipes.base import Model
from openpersonalize.recipes.baskets import BasketModel, basket_codes
from openpersonalize.recipes.similar_items import (
    SimilarItemsModel,
    metadata_features,
    reduce_dimensions,
)
from openpersonalize.recipes.sims import SimsModel, within_percentiles
from openpersonalize.recipes.trending import TrendingNowModel
from openpersonalize.testing.conformance import (
    CHECKS,
    ConformanceCase,
    group_of,
    synthetic_interactions,
)

# Keep every percentile: the planted structures below must not lose items to the defaults.
ALL_DATA = {
    "min_user_history_length_percentile": 0.0,
    "max_user_history_length_percentile": 1.0,
    "min_item_interaction_count_percentile": 0.0,
    "max_item_interaction_count_percentile": 1.0,
}

MODELS: dict[str, Callable[[], Model]] = {
    "baskets": BasketModel,
    "sims": SimsModel,
    "similar_items": SimilarItemsModel,
    "trending": TrendingNowModel,
}


@pytest.fixture(scope="module", autouse=True)
def one_blas_thread() -> Iterator[None]:
    # The matrices here are tiny: BLAS threads only contend with each other (and the machine).
    with threadpool_limits(limits=1, user_api="blas"):
        yield


@pytest.fixture(scope="module", params=sorted(MODELS))
def case(request: pytest.FixtureRequest) -> ConformanceCase:
    # None of these personalizes a user's list the way the planted-preference checks demand;
    # their own behaviour is tested below.
    return ConformanceCase(MODELS[request.param], personalized=False)


@pytest.mark.parametrize("check", CHECKS, ids=lambda check: check.__name__)
def test_conformance(case: ConformanceCase, check: Callable[[ConformanceCase], None]) -> None:
    check(case)


def events(
    rows: list[tuple[int, int]] | list[tuple[int, int, int]],
    *,
    n_items: int,
    n_users: int | None = None,
) -> InteractionData:
    """InteractionData from (user, item[, timestamp]) rows, each of weight 1."""
    table = np.array([(*row, 0)[:3] for row in rows], dtype=np.int64).reshape(-1, 3)
    users = table[:, 0].astype(np.int32)
    n_users = n_users if n_users is not None else int(users.max(initial=-1)) + 1
    return InteractionData(
        user_ids=np.array([f"u{i}" for i in range(n_users)], dtype=object),
        item_ids=np.array([f"i{i}" for i in range(n_items)], dtype=object),
        users=users,
        items=table[:, 1].astype(np.int32),
        timestamps=table[:, 2],
        weights=np.ones(len(table), np.float32),
    )


# -- aws-sims -------------------------------------------------------------------------------------


def paired_data(seed: int = 3) -> InteractionData:
    """Items 2p and 2p+1 are always taken together; each user takes 3 pairs and 3 strays."""
    rng = np.random.default_rng(seed)
    rows: list[tuple[int, int]] = []
    for user in range(200):
        for pair in rng.choice(20, size=3, replace=False):
            rows += [(user, 2 * int(pair)), (user, 2 * int(pair) + 1)]
        rows += [(user, int(item)) for item in rng.choice(40, size=3, replace=False)]
    return events(rows, n_items=40)


def test_sims_recovers_planted_pairs() -> None:
    model = SimsModel(popularity_discount_factor=0.5, **ALL_DATA).fit(paired_data())
    for item in range(40):
        items, scores = model.similar_items(item, 5)
        assert items[0] == item ^ 1, f"item {item}: {items}"
        assert item not in items and (np.diff(scores) <= 0).all()


def test_sims_blocks_of_items_give_the_same_neighbours() -> None:
    data = paired_data()
    whole = SimsModel(min_cointeraction_count=1, **ALL_DATA).fit(data)
    blocked = SimsModel(min_cointeraction_count=1, **ALL_DATA)
    blocked.pair_block = 500  # dozens of blocks instead of one
    blocked.fit(data)
    for name in ("neighbour_indptr_", "neighbour_items_", "neighbour_scores_"):
        np.testing.assert_array_equal(getattr(blocked, name), getattr(whole, name))


def test_sims_similar_items_follow_the_planted_groups() -> None:
    data = synthetic_interactions(240, 160, 9000, seed=7)
    model = SimsModel(**ALL_DATA).fit(data)
    shares = []
    for item in range(0, 120, 7):
        items, _ = model.similar_items(item, 10)
        shares.append((group_of(items, 4) == group_of(item, 4)).mean())
    assert np.mean(shares) > 0.7


def discount_data() -> InteractionData:
    """Item 0 shares 15 users with hit item 1 (100 users) and 2 with niche item 2 (8 users)."""
    rows = [(user, item) for user in range(15) for item in (0, 1)]
    rows += [(user, 1) for user in range(15, 100)]
    rows += [(user, item) for user in (100, 101) for item in (0, 2)]
    rows += [(user, 2) for user in range(102, 108)]
    return events(rows, n_items=3)


def test_sims_popularity_discount_moves_toward_less_popular_neighbours() -> None:
    data = discount_data()
    settings = {**ALL_DATA, "min_cointeraction_count": 1}
    raw = SimsModel(popularity_discount_factor=0.0, **settings).fit(data)
    discounted = SimsModel(popularity_discount_factor=1.0, **settings).fit(data)
    assert raw.neighbours(0)[0].tolist() == [1, 2]
    np.testing.assert_allclose(raw.neighbours(0)[1], [15.0, 2.0])
    assert discounted.neighbours(0)[0].tolist() == [2, 1]
    np.testing.assert_allclose(discounted.neighbours(0)[1], [2 / 8, 15 / 100], rtol=1e-6)


def test_sims_min_cointeraction_count_drops_weak_pairs() -> None:
    # Items 0 and 1 share 4 users, items 0 and 2 share 2.
    rows = [(u, 0) for u in range(6)] + [(u, 1) for u in range(4)] + [(4, 2), (5, 2)]
    data = events(rows, n_items=3)
    lenient = SimsModel(min_cointeraction_count=2, **ALL_DATA).fit(data)
    assert lenient.neighbours(0)[0].tolist() == [1, 2]
    strict = SimsModel(min_cointeraction_count=3, **ALL_DATA).fit(data)
    assert strict.neighbours(0)[0].tolist() == [1]
    assert strict.neighbours(2)[0].size == 0
    # With no neighbour left, item 2's list is the catalog by popularity.
    assert strict.similar_items(2, 2)[0].tolist() == [0, 1]


def test_sims_history_percentiles_leave_out_heavy_users() -> None:
    # Normal users take one pair each; a crawler takes everything and relates all items.
    rows = [(u, 2 * (u % 5)) for u in range(50)] + [(u, 2 * (u % 5) + 1) for u in range(50)]
    rows += [(50, item) for item in range(10)]
    data = events(rows, n_items=10)
    counts = np.bincount(data.users)
    with_crawler = SimsModel(popularity_discount_factor=0.0, min_cointeraction_count=1, **ALL_DATA)
    assert set(with_crawler.fit(data).neighbours(0)[0].tolist()) == set(range(1, 10))
    without = SimsModel(
        popularity_discount_factor=0.0,
        min_cointeraction_count=1,
        **{**ALL_DATA, "max_user_history_length_percentile": 0.95},
    ).fit(data)
    assert not without.trained_users_[50] and without.trained_users_[:50].all()
    assert counts[50] > np.quantile(counts, 0.95)
    assert without.neighbours(0)[0].tolist() == [1]


def test_sims_item_percentiles_leave_out_rare_and_hit_items() -> None:
    data = paired_data()
    counts = np.bincount(data.items, minlength=data.n_items)
    model = SimsModel(
        min_cointeraction_count=1,
        **{
            **ALL_DATA,
            "min_item_interaction_count_percentile": 0.2,
            "max_item_interaction_count_percentile": 0.8,
        },
    ).fit(data)
    kept = within_percentiles(counts, 0.2, 0.8)
    assert model.trained_items_.tolist() == kept.tolist()
    dropped = np.flatnonzero(~kept)
    assert 4 <= len(dropped) < 20
    for item in dropped:
        assert model.neighbours(int(item))[0].size == 0
    neighbours = np.asarray(model.neighbour_items_)
    assert not np.isin(neighbours, dropped).any(), "a dropped item is still someone's neighbour"
    # A dropped item still gets a list: popularity.
    items, _ = model.similar_items(int(dropped[0]), 5)
    popular = [i for i in np.argsort(-counts, kind="stable") if i != dropped[0]][:5]
    assert items.tolist() == popular


def test_sims_scores_users_by_summed_similarity_to_their_history() -> None:
    data = paired_data()
    # Strays relate every item a little; 10 co-occurrences keep only the planted partners.
    model = SimsModel(min_cointeraction_count=10, **ALL_DATA).fit(data)
    history = np.unique(data.items[data.users == 0])
    scores = model.score(np.array([0], dtype=np.int32))[0]
    expected = np.zeros(data.n_items)
    for item in history:
        for other, value in zip(*model.neighbours(int(item)), strict=True):
            expected[other] += value
    reached = expected > 0
    assert 0 < reached.sum() < data.n_items
    np.testing.assert_allclose(scores[reached], expected[reached], rtol=1e-5)
    assert scores[~reached].max() < scores[reached].min()  # popularity only below the reached
    folded = model.fold_in(history, np.ones(len(history), np.float32))
    assert folded is not None
    np.testing.assert_allclose(folded, scores, rtol=1e-6)


def test_sims_save_load_round_trips_similar_items(tmp_path: Path) -> None:
    model = SimsModel(**ALL_DATA).fit(paired_data())
    model.save(tmp_path / "sims")
    loaded = Model.load(tmp_path / "sims")
    assert isinstance(loaded, SimsModel) and loaded.get_params() == model.get_params()
    for item in (0, 7, 39):
        expected, got = model.similar_items(item, 10), loaded.similar_items(item, 10)
        assert np.array_equal(expected[0], got[0])
        np.testing.assert_array_equal(expected[1], got[1])
    # Only the kept neighbours are stored, not a dense items x items matrix.
    assert len(loaded.neighbour_items_) <= 40 * SimsModel.max_neighbours


# -- aws-similar-items ----------------------------------------------------------------------------


def catalog_metadata(n_items: int, n_groups: int = 4) -> tuple[pa.Table, dict[str, str]]:
    """GENRE is the planted group (items of group 0 also carry a second genre); DESCRIPTION
    repeats a word of the group; PRICE is noise."""
    rng = np.random.default_rng(0)
    group = group_of(np.arange(n_items), n_groups)
    genre = [f"g{g}|extra" if g == 0 else f"g{g}" for g in group]
    words = ["red", "green", "blue", "gold"]
    description = [f"A {words[g]} thing, number {i}." for i, g in enumerate(group)]
    table = pa.table(
        {
            "GENRE": genre,
            "DESCRIPTION": description,
            "PRICE": pa.array(rng.random(n_items) * 100),
        }
    )
    return table, {"GENRE": "categorical", "DESCRIPTION": "textual", "PRICE": "numeric"}


def with_metadata(data: InteractionData, table: pa.Table, kinds: dict[str, str]) -> InteractionData:
    data.item_metadata, data.item_column_kinds = table, kinds
    return data


def test_similar_items_gives_cold_items_neighbours_of_their_category() -> None:
    data = synthetic_interactions(240, 160, 9000, seed=7, cold_items=8)
    table, kinds = catalog_metadata(data.n_items)
    model = SimilarItemsModel().fit(with_metadata(data, table, kinds))
    cold = np.arange(152, 160)
    assert np.bincount(data.items, minlength=160)[cold].sum() == 0
    for item in cold:
        items, scores = model.similar_items(int(item), 10)
        assert (group_of(items, 4) == group_of(item, 4)).all(), f"cold item {item}: {items}"
        assert np.isfinite(scores).all() and (np.diff(scores) <= 0).all()
    # Warm items blend both: still their own group.
    items, _ = model.similar_items(5, 10)
    assert (group_of(items, 4) == group_of(5, 4)).mean() >= 0.9


@pytest.mark.parametrize("column", ["GENRE", "DESCRIPTION"])
def test_similar_items_each_kind_of_metadata_alone_places_cold_items(column: str) -> None:
    data = synthetic_interactions(240, 160, 9000, seed=7, cold_items=8)
    table, kinds = catalog_metadata(data.n_items)
    model = SimilarItemsModel().fit(with_metadata(data, table.select([column]), kinds))
    items, _ = model.similar_items(157, 10)
    assert (group_of(items, 4) == group_of(157, 4)).all(), items


def test_similar_items_without_metadata_follows_co_occurrence() -> None:
    data = synthetic_interactions(240, 160, 9000, seed=7)
    model = SimilarItemsModel().fit(data)
    shares = [
        (group_of(model.similar_items(item, 10)[0], 4) == group_of(item, 4)).mean()
        for item in range(0, 120, 7)
    ]
    assert np.mean(shares) > 0.8
    # Cold items without metadata have no neighbours: their list is popularity.
    counts = np.bincount(data.items, minlength=data.n_items)
    popular = [int(i) for i in np.argsort(-counts, kind="stable") if i != 159][:5]
    assert model.similar_items(159, 5)[0].tolist() == popular


def test_similar_items_hidden_dim_is_the_rank_of_the_interaction_representation() -> None:
    data = synthetic_interactions(240, 160, 9000, seed=7)

    def group_share(dim: int) -> float:
        model = SimilarItemsModel(item_id_hidden_dim=dim).fit(data)
        return float(
            np.mean(
                [
                    (group_of(model.similar_items(i, 10)[0], 4) == group_of(i, 4)).mean()
                    for i in range(0, 120, 5)
                ]
            )
        )

    # One dimension keeps only the popularity direction; the groups need a few more.
    assert group_share(8) > group_share(1) + 0.3


def test_similar_items_popularity_discount() -> None:
    data = discount_data()
    raw = SimilarItemsModel(popularity_discount_factor=0.0).fit(data)
    discounted = SimilarItemsModel(popularity_discount_factor=1.0).fit(data)
    assert raw.neighbours(0)[0].tolist() == [1, 2]
    assert discounted.neighbours(0)[0].tolist() == [2, 1]


def test_reduce_dimensions_keeps_the_dot_products_of_a_low_rank_matrix() -> None:
    # Large enough for the sparse (ARPACK) path; rank 5, so 8 dimensions reproduce it exactly.
    rng = np.random.default_rng(1)
    patterns = sp.random(5, 1500, density=0.03, random_state=2, format="csr")
    membership = sp.csr_matrix(
        (rng.random(3000) + 0.5, (np.arange(3000), rng.integers(0, 5, 3000))), shape=(3000, 5)
    )
    matrix = sp.csr_matrix(membership @ patterns)
    reduced = reduce_dimensions(matrix, 8, seed=0)
    assert reduced.shape == (3000, 8) and reduced.dtype == np.float32
    sample = rng.choice(3000, 200, replace=False)
    expected = (matrix[sample] @ matrix[sample].T).toarray()
    np.testing.assert_allclose(reduced[sample] @ reduced[sample].T, expected, atol=1e-3)
    assert np.array_equal(reduced, reduce_dimensions(matrix, 8, seed=0))
    # Fewer columns than dimensions: kept as they are.
    small = sp.random(50, 6, density=0.5, random_state=3, format="csr")
    np.testing.assert_allclose(reduce_dimensions(small, 8, seed=0), small.toarray(), rtol=1e-6)


def test_metadata_features_split_multi_values_and_standardize_numbers() -> None:
    table = pa.table(
        {
            "GENRE": ["a|b", "a", None, "b"],
            "PRICE": [1.0, 2.0, None, 3.0],
            "NAME": ["x", "y", "z", "w"],  # no usable kind: ignored
        }
    )
    kinds = {"GENRE": "categorical", "PRICE": "numeric", "NAME": "other"}
    features = metadata_features(table, kinds, 4).toarray()
    assert features.shape == (4, 3)  # a, b, price
    np.testing.assert_allclose(features[0, :2], [1 / np.sqrt(2)] * 2, rtol=1e-6)
    np.testing.assert_allclose(features[1, :2], [1.0, 0.0])
    assert (features[2] == 0).all()  # nulls everywhere: no features
    assert features[0, 2] < 0 < features[3, 2] and features[1, 2] == 0.0
    assert metadata_features(None, {}, 4).shape == (4, 0)


# -- aws-trending-now -----------------------------------------------------------------------------

HOUR = 3600
END = 1_700_000_000


def timed(per_item: dict[int, np.ndarray], n_items: int) -> InteractionData:
    """One event per timestamp, for each item's array of timestamps; one user per event."""
    items = np.concatenate([np.full(len(ts), item) for item, ts in per_item.items()])
    stamps = np.concatenate(list(per_item.values())).astype(np.int64)
    n = len(items)
    return InteractionData(
        user_ids=np.array([f"u{i}" for i in range(n)], dtype=object),
        item_ids=np.array([f"i{i}" for i in range(n_items)], dtype=object),
        users=np.arange(n, dtype=np.int32),
        items=items.astype(np.int32),
        timestamps=stamps,
        weights=np.ones(n, np.float32),
    )


def steady(rate_per_hour: float, start: float, stop: float) -> np.ndarray:
    """Evenly spaced timestamps in (start, stop], the last at `stop`."""
    count = int(round((stop - start) / HOUR * rate_per_hour))
    return stop - np.arange(count) * (stop - start) / count


def test_trending_ranks_a_rising_item_above_a_steadily_popular_one() -> None:
    data = timed(
        {
            0: steady(50, END - 10 * HOUR, END),  # popular, flat
            1: np.concatenate(
                [steady(2, END - 10 * HOUR, END - HOUR), steady(30, END - HOUR, END)]
            ),
            2: np.concatenate(
                [steady(20, END - 10 * HOUR, END - HOUR), steady(2, END - HOUR, END)]
            ),
        },
        n_items=4,
    )
    model = TrendingNowModel(trend_discovery_frequency="1 hour").fit(data)
    items, _ = model.recommend(np.array([0, 5, -1], dtype=np.int32), 4)
    assert (items == [1, 0, 3, 2]).all()  # the same list for everyone; falling items last
    assert model.trend_[1] > 5 and abs(model.trend_[0]) < 1 and model.trend_[2] < -1


def test_trending_window_length_matters() -> None:
    days = 8 * 24 * HOUR
    data = timed(
        {
            # A flash: steady all along, then a burst in the last half hour.
            0: np.concatenate([steady(2, END - days, END), steady(40, END - HOUR / 2, END)]),
            # A slow riser: its rate doubled for the last day, flat within the day.
            1: np.concatenate(
                [steady(6, END - days, END - 24 * HOUR), steady(12, END - 24 * HOUR, END)]
            ),
        },
        n_items=2,
    )
    fast = TrendingNowModel(trend_discovery_frequency="30 minutes").fit(data)
    slow = TrendingNowModel(trend_discovery_frequency="1 day").fit(data)
    assert fast.recommend(np.array([0]), 2)[0].tolist() == [[0, 1]]
    assert slow.recommend(np.array([0]), 2)[0].tolist() == [[1, 0]]


def trending_base() -> InteractionData:
    return timed(
        {0: steady(20, END - 8 * HOUR, END), 1: steady(10, END - 8 * HOUR, END)}, n_items=4
    )


def test_trending_refresh_counts_moves_a_newly_rising_item_up() -> None:
    model = TrendingNowModel(trend_discovery_frequency="1 hour").fit(trending_base())
    assert model.recommend(np.array([0]), 4)[0][0, 0] != 3
    burst = steady(30, END, END + HOUR)
    # Inside the open window: counted, but the list changes only when the window completes.
    model.refresh_counts(np.full(len(burst), 3), burst, now=END + HOUR / 2)
    assert model.recommend(np.array([0]), 4)[0][0, 0] != 3
    model.refresh_counts(np.empty(0, np.int64), np.empty(0), now=END + HOUR + 1)
    assert model.recommend(np.array([0]), 4)[0][0, 0] == 3
    assert model.window_end_ == END + HOUR
    # Codes outside the catalog are ignored.
    model.refresh_counts(np.array([-1, 99]), np.array([END + HOUR, END + HOUR]), now=END + HOUR)


def test_trending_refresh_equals_fitting_on_all_events() -> None:
    base = trending_base()
    burst = steady(30, END, END + HOUR)
    refreshed = TrendingNowModel(trend_discovery_frequency="1 hour").fit(base)
    refreshed.refresh_counts(np.full(len(burst), 3), burst, now=END + HOUR)
    everything = timed(
        {0: base.timestamps[base.items == 0], 1: base.timestamps[base.items == 1], 3: burst},
        n_items=4,
    )
    fitted = TrendingNowModel(trend_discovery_frequency="1 hour").fit(everything)
    np.testing.assert_allclose(refreshed.trend_, fitted.trend_, rtol=1e-5, atol=1e-6)


def test_trending_save_load_then_refresh(tmp_path: Path) -> None:
    model = TrendingNowModel(trend_discovery_frequency="1 hour").fit(trending_base())
    model.save(tmp_path / "trending")
    loaded = Model.load(tmp_path / "trending")
    assert isinstance(loaded, TrendingNowModel)
    assert loaded.window_end_ == model.window_end_
    np.testing.assert_array_equal(loaded.trend_, model.trend_)
    burst = steady(30, END, END + HOUR)
    for each in (model, loaded):  # the loaded arrays are read-only memory maps
        each.refresh_counts(np.full(len(burst), 3), burst, now=END + HOUR)
    np.testing.assert_array_equal(loaded.trend_, model.trend_)


def test_trending_refuses_an_unknown_frequency() -> None:
    with pytest.raises(ValueError, match="trend_discovery_frequency"):
        TrendingNowModel(trend_discovery_frequency="5 minutes").fit(trending_base())


# -- frequently bought together (BasketModel) -----------------------------------------------------


def test_basket_codes_split_each_users_purchases_at_long_gaps() -> None:
    users = np.array([0, 0, 0, 1, 1, 0])
    stamps = np.array([100, 160, 9000, 100, 50, 9100])
    codes = basket_codes(users, stamps, gap_seconds=3600)
    # user 0: {100, 160} then {9000, 9100}; user 1: {50, 100}, in any event order
    assert codes[0] == codes[1] != codes[2] == codes[5]
    assert codes[3] == codes[4] and codes[3] not in (codes[0], codes[2])
    assert len(basket_codes(np.array([], int), np.array([], int), 60)) == 0


def test_baskets_outrank_what_the_same_buyers_bought_another_day() -> None:
    """Item 2p+1 is bought in the same basket as 2p; item (2p+2) % 40 by the same buyer a
    month later. Baskets must win; with no baskets at all, the buyer's other purchases still
    give neighbours."""
    rng = np.random.default_rng(5)
    rows: list[tuple[int, int, int]] = []
    for user in range(300):
        pair = int(rng.integers(0, 20))
        rows += [(user, 2 * pair, 1000), (user, 2 * pair + 1, 1060)]
        rows += [(user, (2 * pair + 2) % 40, 1000 + 30 * 86400)]
    model = BasketModel().fit(events(rows, n_items=40))
    for item in range(0, 40, 2):
        listed, _ = model.similar_items(item, 3)
        assert listed[0] == item + 1, (item, listed)
    one_item_orders = [(user, item, stamp + user * 86400 * 400) for user, item, stamp in rows]
    spread = [(u, i, s + n * 7 * 86400) for n, (u, i, s) in enumerate(one_item_orders)]
    model = BasketModel().fit(events(spread, n_items=40))
    listed, _ = model.similar_items(0, 3)
    assert 1 in listed  # bought by the same buyers, never in one basket
