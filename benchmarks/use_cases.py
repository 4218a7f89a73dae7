"""Each domain use case against its naive baseline, on the same data and split.

ECOMMERCE on the Retail Demo Store data (synthetic shoppers: judge behaviour and relative
figures), VIDEO_ON_DEMAND on ml-latest-small (every rating read as a Watch, movies' genres as
GENRES). Each use case's model is the one a recommender trains (`catalog.model_class`, default
hyperparameters, the use case's event type), fitted here as a library on:

* personalized use cases (Top picks, Recommended for you): the GetSolutionMetrics split
  (`evaluation_split(seed=0)`); NDCG@10 against aws-popularity-count's model on that split.
  Target: >= 1.5x popularity.
* related-item use cases: hit rate@10 of the next co-interacted item. Every user's newest
  10 % of events (of the use case's type) are held out; the query is the user's newest
  remaining item and a hit is any held-out item among the 10 related items. The baseline
  lists the most popular items (by the same events) for every query. Target: >= 1.2x
  popularity. Frequently bought together is also scored on baskets, where data has them (the
  Retail Demo Store's orders hold one item each; the seeded synthetic shop's hold several):
  the query is the first item of a held-out basket, a hit any other item of that basket.

    python benchmarks/use_cases.py            # print the table and targets
    python benchmarks/use_cases.py --write    # also update docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import csv
import gzip
import sys
import time
from dataclasses import dataclass

import common
import numpy as np
import pyarrow as pa
from common import DATASETS, REPO

sys.path.insert(0, str(REPO))

from openpersonalize.data.interactions import InteractionData  # noqa: E402
from openpersonalize.data.schema import parse_schema  # noqa: E402
from openpersonalize.data.splits import evaluation_split  # noqa: E402
from openpersonalize.data.training_data import load_training_data  # noqa: E402
from openpersonalize.recipes import catalog  # noqa: E402
from openpersonalize.recipes.baskets import basket_codes  # noqa: E402
from openpersonalize.recipes.popularity import PopularityModel  # noqa: E402
from openpersonalize.testing.domain import ecommerce, schema_json  # noqa: E402
from openpersonalize.training.train import _evaluate, build  # noqa: E402

START, END = "<!-- use-cases:start -->", "<!-- use-cases:end -->"
NDCG10 = "normalized_discounted_cumulative_gain_at_10"
K = 10
PERSONALIZED_TARGET, RELATED_TARGET = 1.5, 1.2


@dataclass
class Source:
    label: str
    domain: str
    interactions: pa.Table
    items: pa.Table | None
    items_schema: str | None


@dataclass
class Row:
    use_case: str
    data: str
    measure: str
    ours: float
    baseline: float
    seconds: float
    queries: int

    @property
    def ratio(self) -> float:
        return self.ours / self.baseline if self.baseline > 0 else float("inf")


def retail_demo_store() -> Source | None:
    folder = DATASETS / "retail-demo-store"
    if not (folder / "interactions.csv.gz").exists():
        return None
    with gzip.open(folder / "interactions.csv.gz", "rt", newline="") as handle:
        rows = list(csv.DictReader(handle))
    interactions = pa.table(
        {
            "USER_ID": [r["USER_ID"] for r in rows],
            "ITEM_ID": [r["ITEM_ID"] for r in rows],
            "TIMESTAMP": pa.array([int(r["TIMESTAMP"]) for r in rows], pa.int64()),
            "EVENT_TYPE": [r["EVENT_TYPE"] for r in rows],
        }
    )
    with (folder / "items.csv").open(newline="") as handle:
        items = list(csv.DictReader(handle))
    table = pa.table(
        {
            "ITEM_ID": [r["ITEM_ID"] for r in items],
            "PRICE": pa.array([float(r["PRICE"] or 0) for r in items], pa.float32()),
            "CATEGORY_L1": [r["CATEGORY_L1"] for r in items],
        }
    )
    schema = schema_json("Items", _Domain("ECOMMERCE"))
    return Source("Retail Demo Store", "ECOMMERCE", interactions, table, schema)


def ml_latest_small() -> Source | None:
    folder = DATASETS / "ml-latest-small"
    if not (folder / "ratings.csv").exists():
        return None
    with (folder / "ratings.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    interactions = pa.table(
        {
            "USER_ID": [r["userId"] for r in rows],
            "ITEM_ID": [r["movieId"] for r in rows],
            "TIMESTAMP": pa.array([int(r["timestamp"]) for r in rows], pa.int64()),
            "EVENT_TYPE": ["Watch"] * len(rows),
        }
    )
    with (folder / "movies.csv").open(newline="", encoding="utf-8") as handle:
        movies = list(csv.DictReader(handle))
    first: dict[str, int] = {}
    for r in rows:
        first[r["movieId"]] = min(int(r["timestamp"]), first.get(r["movieId"], 1 << 62))
    items = pa.table(
        {
            "ITEM_ID": [m["movieId"] for m in movies],
            "GENRES": [m["genres"] for m in movies],
            "CREATION_TIMESTAMP": pa.array(
                [first.get(m["movieId"], 0) for m in movies], pa.int64()
            ),
        }
    )
    schema = schema_json("Items", _Domain("VIDEO_ON_DEMAND"))
    return Source("ml-latest-small", "VIDEO_ON_DEMAND", interactions, items, schema)


def synthetic_shop() -> Source:
    """The seeded synthetic shop (openpersonalize.testing.domain), larger: baskets of
    companions."""
    data = ecommerce(n_users=1500)
    columns = list(zip(*data.interactions, strict=True))
    interactions = pa.table(
        {
            "USER_ID": list(columns[0]),
            "ITEM_ID": list(columns[1]),
            "TIMESTAMP": pa.array(columns[2], pa.int64()),
            "EVENT_TYPE": list(columns[3]),
        }
    )
    return Source("synthetic shop", "ECOMMERCE", interactions, None, None)


@dataclass
class _Domain:  # what schema_json reads of a DomainData
    domain: str


def training_data(source: Source, recipe: catalog.Recipe) -> InteractionData:
    """The data a recommender of this use case trains on (its event type, its datasets)."""
    assert recipe.use_case is not None
    items_schema = parse_schema(source.items_schema, source.domain) if source.items else None
    return load_training_data(
        source.interactions,
        items=source.items,
        items_schema=items_schema,
        event_type=recipe.use_case.event_type,
    )


def personalized(source: Source, recipe: catalog.Recipe) -> Row:
    data = training_data(source, recipe)
    split = evaluation_split(data, seed=0)
    started = time.perf_counter()
    hyperparameters = catalog.resolve_hyperparameters(recipe, None, None)
    ours = _evaluate(catalog.model_class(recipe), hyperparameters, split, data.n_items)[NDCG10]
    seconds = time.perf_counter() - started
    baseline = _evaluate(PopularityModel, {}, split, data.n_items)[NDCG10]
    return Row(recipe.name, source.label, "NDCG@10", ours, baseline, seconds, len(split.test_users))


def related(source: Source, recipe: catalog.Recipe, *, baskets: bool = False) -> Row:
    data = training_data(source, recipe)
    train, queries = _held_out_baskets(data) if baskets else _held_out_next_items(data)
    started = time.perf_counter()
    hyperparameters = catalog.resolve_hyperparameters(recipe, None, None)
    model = build(catalog.model_class(recipe), hyperparameters).fit(train)
    seconds = time.perf_counter() - started
    popular = np.argsort(-np.bincount(train.items, minlength=train.n_items), kind="stable")
    ours = baseline = 0
    for query, truth in queries:
        listed, _ = model.similar_items(query, K)
        ours += bool(set(listed.tolist()) & truth)
        baseline += bool(set(popular[popular != query][:K].tolist()) & truth)
    n = max(len(queries), 1)
    measure = "hit rate@10 (baskets)" if baskets else "hit rate@10"
    return Row(recipe.name, source.label, measure, ours / n, baseline / n, seconds, len(queries))


def _held_out_next_items(data: InteractionData) -> tuple[InteractionData, list]:
    split = evaluation_split(data, seed=0, test_user_fraction=1.0)
    train = split.train
    queries = []
    for user, truth in zip(split.test_users, split.truth, strict=True):
        events = np.flatnonzero(train.users == user)
        if len(events) == 0:
            continue
        newest = events[np.argmax(train.timestamps[events])]
        queries.append((int(train.items[newest]), set(truth.tolist()) - {int(train.items[newest])}))
    return train, [(q, t) for q, t in queries if t]


def _held_out_baskets(data: InteractionData) -> tuple[InteractionData, list]:
    """10 % of the baskets with two or more items, seeded; training keeps the others."""
    baskets = basket_codes(data.users, data.timestamps, 3600)
    rng = np.random.default_rng(0)
    sizes = np.array(
        [len(set(data.items[baskets == b].tolist())) for b in range(baskets.max() + 1)]
    )
    candidates = np.flatnonzero(sizes >= 2)
    held = rng.choice(candidates, size=max(1, len(candidates) // 10), replace=False)
    held_mask = np.isin(baskets, held)
    queries = []
    for basket in held:
        events = np.flatnonzero(baskets == basket)
        events = events[np.argsort(data.timestamps[events], kind="stable")]
        first = int(data.items[events[0]])
        queries.append((first, set(data.items[events].tolist()) - {first}))
    return data.subset(~held_mask), queries


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    args = parser.parse_args(argv)
    rows: list[Row] = []
    skipped: list[str] = []
    fbt = catalog.RECIPES["aws-ecomm-frequently-bought-together"]
    rows.append(related(synthetic_shop(), fbt, baskets=True))
    for loader in (retail_demo_store, ml_latest_small):
        source = loader()
        if source is None:
            skipped.append(loader.__name__)
            continue
        for recipe in catalog.RECIPES.values():
            use_case = recipe.use_case
            if use_case is None or use_case.domain != source.domain:
                continue
            if use_case.style == catalog.PERSONALIZED:
                print(f"{source.label}: {recipe.name} ...", file=sys.stderr)
                rows.append(personalized(source, recipe))
            elif use_case.style == catalog.RELATED:
                print(f"{source.label}: {recipe.name} ...", file=sys.stderr)
                rows.append(related(source, recipe))
    lines = [
        "| use case | data | measure | ours | baseline (popularity) | ratio | fit s | queries |",
        "|---|---|---|---|---|---|---|---|",
    ]
    verdicts = []
    for row in rows:
        lines.append(
            f"| {row.use_case} | {row.data} | {row.measure} | {row.ours:.4f} | "
            f"{row.baseline:.4f} | {row.ratio:.2f} | {row.seconds:.1f} | {row.queries} |"
        )
        target = PERSONALIZED_TARGET if row.measure == "NDCG@10" else RELATED_TARGET
        verdict = "met" if row.ours > 0 and row.ratio >= target else "MISSED"
        verdicts.append(
            f"{verdict}: {row.data}: {row.use_case} {row.measure} {row.ours:.4f} >= "
            f"{target}x popularity {row.baseline:.4f}; ratio {row.ratio:.2f}"
        )
    text = "\n".join(lines)
    print(text)
    for verdict in verdicts:
        print(f"- {verdict}")
    for name in skipped:
        print(f"- skipped: {name} (not in ../shared/datasets)")
    if args.write:
        common.write_report(
            START,
            END,
            "Domain use cases against their baselines",
            f"`python benchmarks/use_cases.py --write`; {common.machine('numpy', 'torch')}. "
            "Popularity use cases are the baseline themselves; Trending now is measured in the "
            "recipe tables above.",
            text,
            verdicts,
        )
    return 1 if any(v.startswith("MISSED") for v in verdicts) else 0


if __name__ == "__main__":
    sys.exit(main())
