"""User segments: aws-item-affinity against ranking users by how active they are.

On MovieLens ML-100K (and ml-latest-small), each user's newest 20 % of ratings are held out
(`openpersonalize.metrics.segments.held_out_newest`, the split GetSolutionMetrics uses for
USER_SEGMENTATION recipes). For every held-out item both rank all users, leaving out those
who already rated the item, and take the top 1 %: `hit` is the share of items for which that
top 1 % holds someone who rated the item later, `recall` the share of those later raters
found. The baseline ranks users by their number of training ratings, the same list for
every item. Target: item-affinity's recall >= 2x the baseline's.

    python benchmarks/segments.py            # print the table
    python benchmarks/segments.py --write    # also update docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import sys
import time

import common
import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
from common import DATASETS, REPO

sys.path.insert(0, str(REPO))

from openpersonalize.data.interactions import InteractionData  # noqa: E402
from openpersonalize.data.training_data import load_training_data  # noqa: E402
from openpersonalize.metrics.segments import held_out_newest, segment_metrics  # noqa: E402
from openpersonalize.recipes import catalog  # noqa: E402
from openpersonalize.recipes.base import Model  # noqa: E402
from openpersonalize.training.train import build  # noqa: E402

START, END = "<!-- segments:start -->", "<!-- segments:end -->"
TARGET = 2.0


class MostActiveUsers(Model):
    """The baseline: every item's segment is the most active users."""

    def fit(self, data: InteractionData) -> MostActiveUsers:
        self.activity_ = np.bincount(data.users, minlength=data.n_users).astype(np.float32)
        self.n_users_, self.n_items_ = data.n_users, data.n_items
        return self

    def user_affinity(self, items: np.ndarray) -> np.ndarray:
        return self.activity_.copy()


def load(name: str) -> InteractionData | None:
    if name == "ml-100k":
        path = DATASETS / "ml-100k" / "u.data"
        if not path.exists():
            return None
        table = pacsv.read_csv(
            path,
            read_options=pacsv.ReadOptions(column_names=["u", "i", "r", "t"]),
            parse_options=pacsv.ParseOptions(delimiter="\t"),
        )
    else:
        path = DATASETS / "ml-latest-small" / "ratings.csv"
        if not path.exists():
            return None
        table = pacsv.read_csv(path).rename_columns(["u", "i", "r", "t"])
    interactions = pa.table(
        {
            "USER_ID": pa.compute.cast(table.column("u"), pa.string()),
            "ITEM_ID": pa.compute.cast(table.column("i"), pa.string()),
            "TIMESTAMP": pa.compute.cast(table.column("t"), pa.int64()),
        }
    )
    return load_training_data(interactions)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    args = parser.parse_args(argv)
    recipe = catalog.RECIPES["aws-item-affinity"]
    lines = [
        "| data | segmenter | hit | recall | fit s | held-out items |",
        "|---|---|---|---|---|---|",
    ]
    verdicts = []
    for name in ("ml-100k", "ml-latest-small"):
        data = load(name)
        if data is None:
            verdicts.append(f"skipped: {name} (not in ../shared/datasets)")
            continue
        train, users, items = held_out_newest(data)
        figures = {}
        for label, model in (
            ("aws-item-affinity", build(catalog.model_class(recipe), {})),
            ("most active users", MostActiveUsers()),
        ):
            started = time.perf_counter()
            model.fit(train)
            seconds = time.perf_counter() - started
            figures[label] = segment_metrics(model, train, users, items)
            lines.append(
                f"| {name} | {label} | {figures[label]['hit']:.4f} | "
                f"{figures[label]['recall']:.4f} | {seconds:.1f} | {len(np.unique(items))} |"
            )
        ours, base = figures["aws-item-affinity"]["recall"], figures["most active users"]["recall"]
        ratio = ours / base if base else float("inf")
        verdicts.append(
            f"{'met' if ratio >= TARGET else 'MISSED'}: {name}: aws-item-affinity recall "
            f"{ours:.4f} >= {TARGET}x most-active-users {base:.4f}; ratio {ratio:.2f}"
        )
    text = "\n".join(lines)
    print(text)
    for verdict in verdicts:
        print(f"- {verdict}")
    if args.write:
        common.write_report(
            START,
            END,
            "User segments (aws-item-affinity)",
            f"`python benchmarks/segments.py --write`; {common.machine('numpy', 'implicit')}. "
            "Top 1 % of users per held-out item, users who already had the item left out.",
            text,
            verdicts,
        )
    return 1 if any(v.startswith("MISSED") for v in verdicts) else 0


if __name__ == "__main__":
    sys.exit(main())
