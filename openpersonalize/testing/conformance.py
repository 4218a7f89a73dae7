"""The recipe conformance suite: what every recipe's model must do, checked the same way.

A recipe's own tests stay short: they call ``check_recipe_conformance(factory,
personalized=...)``, or parametrize over `CHECKS` with one `ConformanceCase` per
model (it fits once and shares the fitted model between checks)::

    @pytest.fixture(scope="module")
    def case() -> ConformanceCase:
        return ConformanceCase(MyModel, personalized=True)

    @pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
    def test_conformance(case, check):
        check(case)

The data is `synthetic_interactions`: seeded, with a planted structure (users of a
group prefer items of the same group) that a personalized model must recover.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from openpersonalize.data.interactions import InteractionData
from openpersonalize.recipes.base import Model

__all__ = [
    "CHECKS",
    "ConformanceCase",
    "check_recipe_conformance",
    "group_of",
    "holdout_newest",
    "synthetic_interactions",
]

ModelFactory = Callable[[], Model]


# -- seeded synthetic data ------------------------------------------------------------------------


def group_of(codes: np.ndarray, n_groups: int) -> np.ndarray:
    """The planted group of user or item codes in `synthetic_interactions` data."""
    return np.asarray(codes) % n_groups


def synthetic_interactions(
    n_users: int,
    n_items: int,
    n_events: int,
    seed: int,
    n_groups: int = 4,
    *,
    in_group_share: float = 0.85,
    cold_items: int = 2,
) -> InteractionData:
    """Events where user u prefers items of its group (``group_of``); same seed, same data.

    An event's item comes from the user's own group with probability `in_group_share`,
    else from the whole catalog; within either pool, popularity follows a power law, so
    popularity alone is a reasonable but unpersonalized baseline. User activity varies
    (every user has at least two events). The last `cold_items` item codes have no
    events. Events come in random order, timestamps rising with the event's position in
    the user's history; weights are 1.0 or 0.5.
    """
    if n_events < 2 * n_users:
        raise ValueError("n_events must be at least 2 * n_users")
    rng = np.random.default_rng(seed)
    n_warm = n_items - cold_items
    if n_warm < n_groups:
        raise ValueError("need at least n_groups items with events")
    extra = n_events - 2 * n_users
    users = np.concatenate(
        [np.repeat(np.arange(n_users), 2), _power_law(rng, n_users, extra, 1.5)]
    ).astype(np.int32)
    in_group = rng.random(n_events) < in_group_share
    items = _power_law(rng, n_warm, n_events, 2.5)
    # In-group draws: the r-th most popular item of the user's group is code group + r * n_groups.
    per_group = (n_warm - 1 - group_of(users, n_groups)) // n_groups + 1
    ranks = (_power_law(rng, int(per_group.max()), n_events, 2.0) % per_group).astype(np.int64)
    items = np.where(in_group, group_of(users, n_groups) + ranks * n_groups, items)
    # Per user, timestamps rise in draw order; the arrays are then shuffled.
    timestamps = 1_600_000_000 + np.arange(n_events, dtype=np.int64) * 60
    order = rng.permutation(n_events)
    weights = np.where(rng.random(n_events) < 0.8, 1.0, 0.5).astype(np.float32)
    return InteractionData(
        user_ids=np.array([f"u{code}" for code in range(n_users)], dtype=object),
        item_ids=np.array([f"i{code}" for code in range(n_items)], dtype=object),
        users=users[order],
        items=items[order].astype(np.int32),
        timestamps=timestamps[order],
        weights=weights[order],
        event_types=np.where(weights[order] == 1.0, "purchase", "click").astype(object),
    )


def _power_law(rng: np.random.Generator, n: int, size: int, power: float) -> np.ndarray:
    return np.minimum((rng.random(size) ** power * n).astype(np.int64), n - 1)


def holdout_newest(data: InteractionData, share: float) -> tuple[InteractionData, InteractionData]:
    """(input, truth): the newest `share` of each user's events (at least one) become truth.

    Users with a single event keep it as input.
    """
    counts = np.bincount(data.users, minlength=data.n_users)
    order = np.lexsort((data.timestamps, data.users))
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    position = np.empty(data.n_events, dtype=np.int64)
    position[order] = np.arange(data.n_events) - starts[data.users[order]]
    n_truth = np.where(counts > 1, np.maximum(1, np.floor(counts * share)), 0).astype(np.int64)
    truth = position >= counts[data.users] - n_truth[data.users]
    return data.subset(~truth), data.subset(truth)


# -- the suite ------------------------------------------------------------------------------------


class ConformanceCase:
    """One model under test: its factory, its data, and the model fitted once on that data."""

    def __init__(
        self,
        model_factory: ModelFactory,
        *,
        personalized: bool,
        data: InteractionData | None = None,
        n_groups: int = 4,
    ) -> None:
        self.factory = model_factory
        self.personalized = personalized
        self.n_groups = n_groups
        self.data = data if data is not None else synthetic_interactions(240, 160, 9000, 7)
        self._fitted: Model | None = None

    @property
    def model(self) -> Model:
        if self._fitted is None:
            self._fitted = self.factory().fit(self.data)
        return self._fitted

    @property
    def users(self) -> np.ndarray:
        return np.arange(self.data.n_users, dtype=np.int32)


def check_hyperparameters_and_state(case: ConformanceCase) -> None:
    """Constructor args are stored as given; fit returns self and adds only `_` attributes."""
    model = case.factory()
    params = model.get_params()
    assert type(model)(**params).get_params() == params, "get_params must round-trip"
    before = set(vars(model))
    assert model.fit(case.data) is model, "fit must return self"
    assert model.get_params() == params, "fit must not change hyperparameters"
    learned = set(vars(model)) - before
    assert learned, "fit must learn something"
    wrong = sorted(name for name in learned if not name.endswith("_"))
    assert not wrong, f"learned state must end in '_': {wrong}"
    assert model.n_items_ == case.data.n_items and model.n_users_ == case.data.n_users


def check_recommend_shapes(case: ConformanceCase) -> None:
    """(n, k) int32 items and float32 scores; -1/nan padding beyond the catalog; k=0 works."""
    model, users = case.model, case.users[:7]
    for k in (1, 10, case.data.n_items + 5, 0):
        items, scores = model.recommend(users, k)
        assert items.shape == scores.shape == (len(users), k), f"shape for k={k}"
        assert items.dtype == np.int32 and scores.dtype == np.float32
        filled = min(k, case.data.n_items)
        assert (items[:, :filled] >= 0).all() and np.isfinite(scores[:, :filled]).all()
        assert (items[:, filled:] == -1).all() and np.isnan(scores[:, filled:]).all()
    items, _ = model.recommend(np.array([], dtype=np.int32), 5)
    assert items.shape == (0, 5)


def check_excludes_seen(case: ConformanceCase) -> None:
    """No excluded item is returned; a fully excluded user gets only padding."""
    seen = case.data.matrix()
    items, scores = case.model.recommend(case.users, 20, exclude=seen)
    rows = np.repeat(case.users, 20)
    returned = items.reshape(-1)
    valid = returned >= 0
    assert not np.asarray(seen[rows[valid], returned[valid]]).any(), "returned an excluded item"
    everything = sp.csr_matrix(np.ones((2, case.data.n_items), dtype=np.float32))
    items, scores = case.model.recommend(np.array([0, 1], dtype=np.int32), 5, exclude=everything)
    assert (items == -1).all() and np.isnan(scores).all(), "everything excluded -> only padding"
    # An explicitly stored zero excludes nothing.
    zeros = sp.csr_matrix(
        (
            np.zeros(case.data.n_items, np.float32),
            (np.zeros(case.data.n_items), np.arange(case.data.n_items)),
        ),
        shape=(1, case.data.n_items),
    )
    plain, _ = case.model.recommend(np.array([0], dtype=np.int32), 5)
    with_zeros, _ = case.model.recommend(np.array([0], dtype=np.int32), 5, exclude=zeros)
    assert np.array_equal(plain, with_zeros), "stored zeros must not exclude"


def check_rows_are_ranked(case: ConformanceCase) -> None:
    """Scores never increase along a row, items are unique, padding only at the end."""
    items, scores = case.model.recommend(case.users, 30, exclude=case.data.matrix())
    for row_items, row_scores in zip(items, scores, strict=True):
        present = row_items >= 0
        count = int(present.sum())
        assert present[:count].all(), "padding must come last"
        assert len(np.unique(row_items[:count])) == count, "items must be unique"
        assert (np.diff(row_scores[:count]) <= 0).all(), "scores must not increase"


def check_rank_matches_recommend(case: ConformanceCase) -> None:
    """rank() gives the scores recommend() reports; nan for codes outside the catalog."""
    items, scores = case.model.recommend(case.users[:20], 10)
    for user, row_items, row_scores in zip(case.users[:20], items, scores, strict=True):
        ranked = case.model.rank(int(user), row_items)
        assert ranked.dtype == np.float32
        np.testing.assert_allclose(ranked, row_scores, rtol=1e-5, atol=1e-6)
    outside = case.model.rank(0, np.array([-1, case.data.n_items], dtype=np.int32))
    assert np.isnan(outside).all()


def check_cold_users(case: ConformanceCase) -> None:
    """Codes outside the user vocabulary get a full list, not an error."""
    cold = np.array([-1, case.data.n_users, case.data.n_users + 100], dtype=np.int32)
    items, scores = case.model.recommend(cold, 10, exclude=case.data.matrix())
    assert (items >= 0).all() and np.isfinite(scores).all()
    assert np.isfinite(case.model.rank(-1, np.arange(5))).all()


def check_chunking(case: ConformanceCase) -> None:
    """Results do not depend on how many users are scored at once."""
    model = case.model
    whole = model.recommend(case.users, 10, exclude=case.data.matrix())
    model.chunk_elements = case.data.n_items * 7  # 7 users per chunk
    try:
        chunked = model.recommend(case.users, 10, exclude=case.data.matrix())
    finally:
        del model.chunk_elements
    assert np.array_equal(whole[0], chunked[0]), "items depend on the chunk size"
    # BLAS may pick other kernels for other block shapes: scores agree to rounding only.
    np.testing.assert_allclose(whole[1], chunked[1], rtol=1e-5, atol=1e-6)


def check_save_load(case: ConformanceCase) -> None:
    """save/load round-trips to identical recommendations and scores, arrays memory-mapped."""
    model = case.model
    exclude = case.data.matrix()
    expected = model.recommend(case.users, 15, exclude=exclude)
    with tempfile.TemporaryDirectory() as tmp:
        model.save(Path(tmp) / "model")
        for loader in (Model.load, type(model).load):
            loaded = loader(Path(tmp) / "model")
            assert type(loaded) is type(model)
            assert loaded.get_params() == model.get_params()
            arrays = [v for v in vars(loaded).values() if isinstance(v, np.ndarray)]
            assert any(isinstance(a, np.memmap) for a in arrays), "arrays must be memory-mapped"
            got = loaded.recommend(case.users, 15, exclude=exclude)
            assert np.array_equal(got[0], expected[0]), "items differ after load"
            np.testing.assert_array_equal(got[1], expected[1])
            np.testing.assert_array_equal(
                loaded.rank(3, np.arange(case.data.n_items)),
                model.rank(3, np.arange(case.data.n_items)),
            )
            del loaded, arrays  # release the memory maps before the directory goes


def check_deterministic(case: ConformanceCase) -> None:
    """Two fits from the same factory (same random_state) give identical results."""
    first = case.factory().fit(case.data).recommend(case.users, 10)
    second = case.factory().fit(case.data).recommend(case.users, 10)
    assert np.array_equal(first[0], second[0]), "recommendations differ between fits"
    np.testing.assert_array_equal(first[1], second[1])


def check_similar_items(case: ConformanceCase) -> None:
    """Where implemented: k items, never the item itself, best first."""
    try:
        items, scores = case.model.similar_items(0, 10)
    except NotImplementedError:
        return
    assert items.shape == scores.shape == (10,)
    assert items.dtype == np.int32 and scores.dtype == np.float32
    assert 0 not in items
    present = items >= 0
    assert (np.diff(scores[present]) <= 0).all()
    if case.personalized:
        same = group_of(items[present], case.n_groups) == group_of(0, case.n_groups)
        assert same.mean() >= 0.6, f"similar items ignore the planted groups: {items}"


def check_personalized_lists(case: ConformanceCase) -> None:
    """Personalized models: users get different lists, not one list for everyone."""
    if not case.personalized:
        return
    # Without exclusions, so that lists differing only by each user's seen items do not count.
    items, _ = case.model.recommend(case.users, 5)
    _, counts = np.unique(np.sort(items, axis=1), axis=0, return_counts=True)
    assert counts.max() <= 0.5 * len(items), "most users get the same top 5"


def check_planted_preference(case: ConformanceCase) -> None:
    """Personalized models: held-out in-group items outrank out-of-group ones (AUC >= 0.75)."""
    if not case.personalized:
        return
    train, truth = holdout_newest(case.data, 0.2)
    model = case.factory().fit(train)
    seen = train.matrix()
    aucs, shares = [], []
    items, _ = model.recommend(case.users, 10, exclude=seen)
    for user in case.users:
        held = np.unique(truth.items[truth.users == user])
        same = group_of(held, case.n_groups) == group_of(user, case.n_groups)
        unseen = np.setdiff1d(np.arange(case.data.n_items), seen[user].indices)
        others = unseen[group_of(unseen, case.n_groups) != group_of(user, case.n_groups)]
        if same.any() and len(others):
            inside = model.rank(int(user), held[same])
            outside = model.rank(int(user), others)
            aucs.append((inside[:, None] > outside[None, :]).mean())
        row = items[user][items[user] >= 0]
        shares.append((group_of(row, case.n_groups) == group_of(user, case.n_groups)).mean())
    assert np.mean(aucs) >= 0.75, f"planted preference not recovered: AUC {np.mean(aucs):.3f}"
    assert np.mean(shares) >= 0.6, f"top 10 mostly outside the user's group: {np.mean(shares):.3f}"


#: Every check, in the order `check_recipe_conformance` runs them.
CHECKS: tuple[Callable[[ConformanceCase], None], ...] = (
    check_hyperparameters_and_state,
    check_recommend_shapes,
    check_excludes_seen,
    check_rows_are_ranked,
    check_rank_matches_recommend,
    check_cold_users,
    check_chunking,
    check_save_load,
    check_deterministic,
    check_similar_items,
    check_personalized_lists,
    check_planted_preference,
)


def check_recipe_conformance(
    model_factory: ModelFactory, *, personalized: bool, data: InteractionData | None = None
) -> None:
    """Run every check in `CHECKS`; AssertionError names the first that fails."""
    case = ConformanceCase(model_factory, personalized=personalized, data=data)
    for check in CHECKS:
        check(case)
