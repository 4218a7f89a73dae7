"""aws-semantic-similarity: do an item's nearest neighbours share its topic?

On the Retail Demo Store catalog (2,465 products, each with a name and a free-text
description), the model sees only PRODUCT_NAME (``"itemName": true``) and
PRODUCT_DESCRIPTION (``"textual": true``); the categories are held out as the truth. For
every item whose CATEGORY_L2 (e.g. "backpack", "kitchen", "strings"; 84 of them) holds at
least one other item, precision@10 is the share of its 10 related items with the same
CATEGORY_L2 (and, less strictly, CATEGORY_L1). Compared with:

* random related items (seeded);
* item co-occurrence from the 675k simulated interactions: aws-sims with its defaults, and
  with every user and item kept (the co-view settings of the domain use cases);
* the same text model without LSA (the plain TF-IDF cosine), to show what the SVD adds.

Target: semantic similarity beats random and both co-occurrence variants at CATEGORY_L2.
Skips when ../shared/datasets/retail-demo-store is absent.

    python benchmarks/semantic.py            # print the table
    python benchmarks/semantic.py --write    # also update docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable

import common
import numpy as np
import pyarrow.csv as pacsv
from common import DATASETS, REPO

sys.path.insert(0, str(REPO))

from openpersonalize.data.interactions import InteractionData  # noqa: E402
from openpersonalize.data.schema import parse_schema  # noqa: E402
from openpersonalize.data.training_data import load_training_data  # noqa: E402
from openpersonalize.recipes import catalog  # noqa: E402
from openpersonalize.recipes.base import Model  # noqa: E402
from openpersonalize.recipes.semantic_similarity import (  # noqa: E402
    TEXT_MODEL,
    SemanticSimilarityModel,
)
from openpersonalize.training.train import build  # noqa: E402

START, END = "<!-- semantic:start -->", "<!-- semantic:end -->"
K = 10
FOLDER = DATASETS / "retail-demo-store"
ITEMS_SCHEMA = json.dumps(
    {
        "type": "record",
        "name": "Items",
        "namespace": "com.amazonaws.personalize.schema",
        "fields": [
            {"name": "ITEM_ID", "type": "string"},
            {"name": "PRODUCT_NAME", "type": "string", "itemName": True},
            {"name": "PRODUCT_DESCRIPTION", "type": ["null", "string"], "textual": True},
        ],
        "version": "1.0",
    }
)
ALL_DATA = {
    "min_user_history_length_percentile": 0.0,
    "max_user_history_length_percentile": 1.0,
    "min_item_interaction_count_percentile": 0.0,
    "max_item_interaction_count_percentile": 1.0,
}


def load() -> tuple[InteractionData, dict[str, np.ndarray]] | None:
    """Training data (interactions plus the name and description only) and, per item code,
    its held-out categories."""
    if not (FOLDER / "items.csv").exists() or not (FOLDER / "interactions.csv.gz").exists():
        return None
    items = pacsv.read_csv(FOLDER / "items.csv")
    events = pacsv.read_csv(FOLDER / "interactions.csv.gz")
    data = load_training_data(
        events.select(["USER_ID", "ITEM_ID", "TIMESTAMP"]),
        items=items.select(["ITEM_ID", "PRODUCT_NAME", "PRODUCT_DESCRIPTION"]),
        items_schema=parse_schema(ITEMS_SCHEMA),
    )
    position = {item: row for row, item in enumerate(items.column("ITEM_ID").to_pylist())}
    rows = np.array([position[item] for item in data.item_ids])
    truth = {
        level: np.array(items.column(level).to_pylist(), dtype=object)[rows]
        for level in ("CATEGORY_L2", "CATEGORY_L1")
    }
    return data, truth


class RandomItems(Model):
    """The floor: each item's related items are a seeded random draw from the catalog."""

    def __init__(self, random_state: int = 0) -> None:
        self.random_state = random_state

    def fit(self, data: InteractionData) -> RandomItems:
        self.n_users_, self.n_items_ = data.n_users, data.n_items
        return self

    def similar_items(self, item: int, k: int) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng([self.random_state, item])
        others = np.delete(np.arange(self.n_items_), item)
        chosen = rng.choice(others, size=min(k, len(others)), replace=False).astype(np.int32)
        return chosen, np.zeros(len(chosen), dtype=np.float32)


def precision(model: Model, labels: np.ndarray, queries: np.ndarray) -> float:
    hits = [np.mean(labels[model.similar_items(int(q), K)[0]] == labels[q]) for q in queries]
    return float(np.mean(hits))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    args = parser.parse_args(argv)
    loaded = load()
    if loaded is None:
        print("skipped: retail-demo-store is not in ../shared/datasets")
        return 0
    data, truth = loaded
    sims = catalog.RECIPES["aws-sims"]
    sims_defaults = catalog.resolve_hyperparameters(sims, None, None)
    models: dict[str, Callable[[], Model]] = {
        "aws-semantic-similarity": lambda: build(
            catalog.model_class(catalog.RECIPES["aws-semantic-similarity"]), {}
        ),
        "text without LSA (TF-IDF cosine)": lambda: SemanticSimilarityModel(embedding_dim=100_000),
        "co-occurrence (aws-sims defaults)": lambda: build(
            catalog.model_class(sims), sims_defaults
        ),
        "co-occurrence (aws-sims, all data)": lambda: build(
            catalog.model_class(sims), {**sims_defaults, **ALL_DATA}
        ),
        "random": RandomItems,
    }
    level2 = truth["CATEGORY_L2"]
    _, group_of, sizes = np.unique(level2, return_inverse=True, return_counts=True)
    queries = np.flatnonzero(sizes[group_of] > 1)
    lines = [
        f"| related items from | precision@{K} (CATEGORY_L2) | precision@{K} (CATEGORY_L1) "
        "| fit s |",
        "|---|---|---|---|",
    ]
    figures = {}
    for label, factory in models.items():
        started = time.perf_counter()
        model = factory().fit(data)
        seconds = time.perf_counter() - started
        figures[label] = precision(model, level2, queries)
        level1 = precision(model, truth["CATEGORY_L1"], queries)
        lines.append(f"| {label} | {figures[label]:.4f} | {level1:.4f} | {seconds:.1f} |")
    ours = figures["aws-semantic-similarity"]
    verdicts = []
    for baseline in (
        "random",
        "co-occurrence (aws-sims defaults)",
        "co-occurrence (aws-sims, all data)",
    ):
        verdicts.append(
            f"{'met' if ours > figures[baseline] else 'MISSED'}: aws-semantic-similarity "
            f"precision@{K} {ours:.4f} > {baseline} {figures[baseline]:.4f}"
        )
    verdicts.append(
        "not a target: at CATEGORY_L1 co-occurrence with all data can come out ahead; the "
        "simulator's personas shop by top-level category, so co-occurrence there is the "
        "planted signal, while the ~84 CATEGORY_L2 topics are what the descriptions say"
    )
    text = "\n".join(lines)
    print(text)
    for verdict in verdicts:
        print(f"- {verdict}")
    if args.write:
        common.write_report(
            START,
            END,
            "Semantic similarity (aws-semantic-similarity)",
            f"`python benchmarks/semantic.py --write`; {common.machine('numpy', 'scipy')}. "
            f"Text model: {TEXT_MODEL}. Retail Demo Store: {data.n_items} items, "
            f"{data.n_events} interactions; {len(queries)} query items whose CATEGORY_L2 "
            "holds another item. The model reads only PRODUCT_NAME and PRODUCT_DESCRIPTION; "
            "the categories are the held-out truth. The data is simulated (see its "
            "SOURCE.md): the co-occurrence rows reflect the simulator's personas, not real "
            "shoppers.",
            text,
            verdicts,
        )
    return 1 if any(v.startswith("MISSED") for v in verdicts) else 0


if __name__ == "__main__":
    sys.exit(main())
