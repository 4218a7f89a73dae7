"""Offline accuracy of our USER_PERSONALIZATION recipes against open peers, on one split.

Per data set (MovieLens ML-100K and ml-latest-small, converted the way training.py does) a
fresh ``openpersonalize serve`` (one worker process) trains every USER_PERSONALIZATION recipe
-- aws-user-personalization (iALS), aws-user-personalization-v2 (SASRec blended with EASE),
aws-hrnn, aws-hrnn-metadata and aws-hrnn-coldstart (GRU), aws-popularity-count and
aws-trending-now -- through boto3, and GetSolutionMetrics is read.
In the same run the script builds the identical InteractionData (``load_training_data``) and split
(``evaluation_split(data, seed=0)``) the server evaluates on, fits the peers on
``split.train`` as libraries -- implicit ALS, implicit BPR, EASE (closed form, lambda 500) and
item-kNN (cosine, top-100 neighbours) -- recommends top-25 per test user excluding the user's
training items, and scores them with ``ranking_metrics``.

    python benchmarks/accuracy.py            # print the Markdown tables and targets
    python benchmarks/accuracy.py --write    # also update docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import common
import numpy as np
import training
from common import DATASETS, DOC, REPO
from training import METRICS, SHORT, Case, Run

START, END = "<!-- accuracy:start -->", "<!-- accuracy:end -->"

ALS = "aws-user-personalization"
SASREC = "aws-user-personalization-v2"
POPULARITY = "aws-popularity-count"
TRENDING = "aws-trending-now"  # popular lately: measured, but not a personalization recipe
HRNN = ("aws-hrnn", "aws-hrnn-metadata", "aws-hrnn-coldstart")
OURS = (ALS, SASREC, *HRNN, POPULARITY, TRENDING)
PERSONALIZATION = (ALS, SASREC, *HRNN)
NDCG10 = "normalized_discounted_cumulative_gain_at_10"
TOP = 25
EASE_LAMBDA = 500.0
KNN_NEIGHBOURS = 100


def machine() -> str:
    return common.machine("numpy", "scipy", "implicit", "torch")


# ---------------------------------------------------------------- the peers


def _top(scores: np.ndarray, seen: Any) -> np.ndarray:
    """Top-25 item codes per row of ``scores``, never an item in ``seen`` (a CSR slice)."""
    scores = np.asarray(scores, dtype=np.float64)
    rows, cols = seen.nonzero()
    scores[rows, cols] = -np.inf
    k = min(TOP, scores.shape[1])
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable")
    top = np.take_along_axis(part, order, axis=1)
    top[np.take_along_axis(scores, top, axis=1) == -np.inf] = -1
    return top


def _implicit(model: Any, matrix: Any, users: np.ndarray) -> tuple[float, np.ndarray]:
    started = time.perf_counter()
    model.fit(matrix, show_progress=False)
    seconds = time.perf_counter() - started
    ids, _ = model.recommend(users, matrix[users], N=TOP, filter_already_liked_items=True)
    return seconds, np.asarray(ids, dtype=np.int64)


def peer_als(matrix: Any, users: np.ndarray) -> tuple[float, np.ndarray]:
    from implicit.cpu.als import AlternatingLeastSquares

    model = AlternatingLeastSquares(factors=100, regularization=0.01, iterations=15, random_state=0)
    return _implicit(model, matrix, users)


def peer_bpr(matrix: Any, users: np.ndarray) -> tuple[float, np.ndarray]:
    from implicit.cpu.bpr import BayesianPersonalizedRanking

    model = BayesianPersonalizedRanking(factors=100, iterations=100, random_state=0)
    return _implicit(model, matrix, users)


def peer_ease(matrix: Any, users: np.ndarray) -> tuple[float, np.ndarray]:
    x = matrix.copy()
    x.data[:] = 1.0
    started = time.perf_counter()
    gram = (x.T @ x).toarray().astype(np.float64)
    gram[np.diag_indices_from(gram)] += EASE_LAMBDA
    p = np.linalg.inv(gram)
    b = -p / np.diag(p)[None, :]
    b[np.diag_indices_from(b)] = 0.0
    seconds = time.perf_counter() - started
    return seconds, _top(x[users] @ b, matrix[users])


def peer_knn(matrix: Any, users: np.ndarray) -> tuple[float, np.ndarray]:
    x = matrix.copy()
    x.data[:] = 1.0
    started = time.perf_counter()
    norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=0)).ravel())
    norms[norms == 0] = 1.0
    sim = (x.T @ x).toarray().astype(np.float64) / norms[:, None] / norms[None, :]
    np.fill_diagonal(sim, 0.0)
    k = min(KNN_NEIGHBOURS, sim.shape[0] - 1)
    # keep each item's k most similar items (per row), zero the rest
    cut = np.argpartition(-sim, k - 1, axis=1)[:, k:]
    np.put_along_axis(sim, cut, 0.0, axis=1)
    seconds = time.perf_counter() - started
    # score(u, j) = sum over the user's items i of sim(i, j)
    return seconds, _top(x[users] @ sim, matrix[users])


PEERS = {
    "implicit ALS": peer_als,
    "implicit BPR": peer_bpr,
    f"EASE (λ={EASE_LAMBDA:g})": peer_ease,
    f"item-kNN (cosine, top-{KNN_NEIGHBOURS})": peer_knn,
}


def run_peers(csv: Path) -> dict[str, Run]:
    """The server's InteractionData and split, rebuilt from the same CSV; every peer on it."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    from openpersonalize.data.splits import evaluation_split
    from openpersonalize.data.training_data import load_training_data
    from openpersonalize.metrics.ranking import ranking_metrics

    table = pacsv.read_csv(
        csv,
        convert_options=pacsv.ConvertOptions(
            column_types={
                "USER_ID": pa.string(),
                "ITEM_ID": pa.string(),
                "TIMESTAMP": pa.int64(),
                "EVENT_VALUE": pa.float64(),
            }
        ),
    )
    data = load_training_data(table)
    split = evaluation_split(data, seed=0)
    matrix = split.train.matrix().tocsr().astype(np.float32)
    users = split.test_users.astype(np.int32)
    runs: dict[str, Run] = {}
    for name, peer in PEERS.items():
        print(f"  peer {name} ...", file=sys.stderr)
        seconds, recommended = peer(matrix, users)
        metrics = ranking_metrics(recommended, split.truth, data.n_items)
        runs[name] = Run(name, seconds, seconds, {m: float(metrics[m]) for m in METRICS})
        print(f"  {name}: {seconds:.2f} s, NDCG@10 {metrics[NDCG10]:.4f}", file=sys.stderr)
    return runs


# ---------------------------------------------------------------- reporting


def prepare(root: Path) -> list[Case]:
    bucket = root / training.BUCKET
    bucket.mkdir(parents=True, exist_ok=True)
    cases = []
    sources = (
        (training.ML_100K, DATASETS / "ml-100k" / "u.data", "ml-100k.csv", True),
        (
            training.ML_LATEST_SMALL,
            DATASETS / "ml-latest-small" / "ratings.csv",
            "ml-latest-small.csv",
            False,
        ),
    )
    for label, source, key, tabs in sources:
        if not source.is_file():
            print(f"skipping {label}: {source} not found", file=sys.stderr)
            continue
        case = Case(label, key, json.dumps(common.INTERACTIONS_RATINGS))
        training._convert(source, bucket / key, case, tab_separated=tabs)
        cases.append(case)
    return cases


def table(case: Case, ours: dict[str, Run], peers: dict[str, Run]) -> str:
    lines = [
        f"**{case.label}**: {case.rows:,} interactions, {case.users:,} users, {case.items:,} items",
        "",
        "| model | train s | " + " | ".join(SHORT[m] for m in METRICS) + " |",
        "|---|---:|" + "---:|" * len(METRICS),
    ]
    for kind, runs in (("ours", ours), ("peer", peers)):
        for run in runs.values():
            lines.append(
                f"| {run.recipe} ({kind}) | {run.seconds:.2f} | "
                + " | ".join(f"{run.metrics[m]:.4f}" for m in METRICS)
                + " |"
            )
    return "\n".join(lines)


def check_targets(label: str, ours: dict[str, Run], peers: dict[str, Run]) -> list[str]:
    def ndcg(run: Run | None) -> float:
        return run.metrics[NDCG10] if run else float("nan")

    verdicts = []
    best = max(ours, key=lambda r: ndcg(ours[r]))
    best_peer = max(peers, key=lambda r: ndcg(peers[r]))
    a, b = ndcg(ours.get(best)), ndcg(peers[best_peer])
    ok = a >= 1.05 * b
    verdicts.append(
        f"{'met' if ok else 'MISSED'}: {label}: our best ({best}, NDCG@10 {a:.4f}) ≥ 5% above "
        f"the best peer ({best_peer}, {b:.4f}); ratio {a / b:.3f}"
    )
    a, b = ndcg(ours.get(SASREC)), ndcg(ours.get(ALS))
    ok = a >= b
    verdicts.append(
        f"{'met' if ok else 'MISSED'}: {label}: {SASREC} NDCG@10 {a:.4f} ≥ {ALS} {b:.4f}"
    )
    pop = ndcg(ours.get(POPULARITY))
    for recipe in PERSONALIZATION:
        a = ndcg(ours.get(recipe))
        ok = a >= 1.5 * pop
        verdicts.append(
            f"{'met' if ok else 'MISSED'}: {label}: {recipe} NDCG@10 {a:.4f} ≥ 50% above "
            f"{POPULARITY} {pop:.4f}; ratio {a / pop:.3f}"
        )
    return verdicts


def section(tables: list[str], verdicts: list[str]) -> str:
    body = [
        START,
        "## Accuracy against open peers",
        "",
        "`python benchmarks/accuracy.py --write`. Per data set a fresh real server "
        "(`ServerProcess`, `workers=1`) imports the MovieLens ratings as "
        "USER_ID,ITEM_ID,TIMESTAMP,EVENT_VALUE (every rating an interaction) and trains each "
        "USER_PERSONALIZATION recipe with default hyperparameters through the API; the metrics "
        "are GetSolutionMetrics' and *train s* is CreateSolutionVersion → ACTIVE (evaluation "
        "fit, final fit on all data and saving included). In the same run the script rebuilds "
        "the same InteractionData (`load_training_data`) and split "
        "(`evaluation_split(data, seed=0)`: 10% of users, their newest 10% of events held out) "
        "and fits the peers on `split.train` as libraries: `implicit` ALS (100 factors, "
        "regularization 0.01, 15 iterations) and BPR (100 factors, 100 iterations), EASE "
        f"(closed form, λ={EASE_LAMBDA:g}) and item-kNN (cosine on the binarized user×item "
        f"matrix, each item's top {KNN_NEIGHBOURS} neighbours). Peers recommend top-25 "
        "excluding the user's training items and are scored with the same `ranking_metrics`; "
        "their *train s* is fit time only.",
        "",
        f"Machine: {machine()}.",
        "",
    ]
    for text in tables:
        body += [text, ""]
    body += [*[f"- {v}" for v in verdicts], END]
    return "\n".join(body)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    args = parser.parse_args(argv)

    sys.path.insert(0, str(REPO))
    training.RECIPES = OURS  # measure() trains training.RECIPES
    tables: list[str] = []
    verdicts: list[str] = []
    with tempfile.TemporaryDirectory(prefix="accuracy-bench-") as tmp:
        root, work = Path(tmp, "s3"), Path(tmp, "work")
        work.mkdir()
        for case in prepare(root):
            print(f"{case.label}: peers ...", file=sys.stderr)
            peers = run_peers(root / training.BUCKET / case.key)
            print(f"{case.label}: importing and training ours ...", file=sys.stderr)
            ours = training.measure(root, case, work).runs
            tables.append(table(case, ours, peers))
            verdicts += check_targets(case.label, ours, peers)
    for text in tables:
        print(text)
        print()
    for v in verdicts:
        print(f"- {v}")
    if args.write:
        common.write_section(START, END, section(tables, verdicts))
        print(f"\nwrote {DOC}")
    return 1 if not tables or any(v.startswith("MISSED") for v in verdicts) else 0


if __name__ == "__main__":
    sys.exit(main())
