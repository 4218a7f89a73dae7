"""Training speed and offline metrics per recipe, end to end through the real API.

Per data set a fresh ``openpersonalize serve`` (one worker process) with the CSV
under its local S3 root; one dataset group, with its Interactions imported via
boto3. Then for each recipe (aws-user-personalization, aws-popularity-count):
CreateSolution (performAutoTraining=False), CreateSolutionVersion, and
DescribeSolutionVersion polled every 0.05 s until ACTIVE. Recorded: the wall
seconds from CreateSolutionVersion to ACTIVE, the version's trainingHours * 3600,
and GetSolutionMetrics (all eight metrics).

Data sets: MovieLens ML-100K (u.data) and ml-latest-small (ratings.csv), both
converted to USER_ID,ITEM_ID,TIMESTAMP,EVENT_VALUE, and a generated set of 1M
interactions (``write_interactions_csv(path, 1_000_000, seed=0)``). Preparing the
CSVs, the import and creating the solutions are not timed.

    python benchmarks/training.py            # print the Markdown tables and targets
    python benchmarks/training.py --write    # also update docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import common
from common import DATASETS, DOC, REPO

START, END = "<!-- training:start -->", "<!-- training:end -->"


def machine() -> str:
    return common.machine("numpy", "pyarrow")


def write_doc(text: str) -> None:
    common.write_section(START, END, text)


BUCKET = "bench"

USER_PERSONALIZATION = "aws-user-personalization"
POPULARITY = "aws-popularity-count"
RECIPES = (USER_PERSONALIZATION, POPULARITY)

ML_100K = "ML-100K"
ML_LATEST_SMALL = "ml-latest-small"
GENERATED_1M = "generated 1M"

# Targets on the 2-core reference machine: aws-user-personalization create→ACTIVE.
TARGET_SECONDS = {ML_LATEST_SMALL: 30.0, GENERATED_1M: 120.0}
# Data sets on which aws-user-personalization must beat popularity on every ranking metric.
BEATS_POPULARITY_ON = (ML_LATEST_SMALL, ML_100K)

METRICS = (  # GetSolutionMetrics names, in the order of openpersonalize.metrics.ranking
    "coverage",
    "mean_reciprocal_rank_at_25",
    "normalized_discounted_cumulative_gain_at_5",
    "normalized_discounted_cumulative_gain_at_10",
    "normalized_discounted_cumulative_gain_at_25",
    "precision_at_5",
    "precision_at_10",
    "precision_at_25",
)
RANKING_METRICS = METRICS[1:]  # every metric but coverage
SHORT = {
    "coverage": "coverage",
    "mean_reciprocal_rank_at_25": "MRR@25",
    "normalized_discounted_cumulative_gain_at_5": "NDCG@5",
    "normalized_discounted_cumulative_gain_at_10": "NDCG@10",
    "normalized_discounted_cumulative_gain_at_25": "NDCG@25",
    "precision_at_5": "P@5",
    "precision_at_10": "P@10",
    "precision_at_25": "P@25",
}


@dataclass
class Case:
    """One data set, ready to import from the local S3 root."""

    label: str
    key: str  # object key under the benchmark bucket
    schema: str  # Avro schema JSON
    rows: int = 0
    users: int = 0
    items: int = 0


@dataclass
class Run:
    """One recipe trained on one data set."""

    recipe: str
    seconds: float  # CreateSolutionVersion -> ACTIVE (wall)
    training_seconds: float  # trainingHours * 3600
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass
class Result:
    case: Case
    import_seconds: float = float("nan")
    runs: dict[str, Run] = field(default_factory=dict)


# ---------------------------------------------------------------- preparing data


def prepare(root: Path) -> tuple[list[Case], list[str]]:
    """Write every available data set under ``root/BUCKET`` (not timed); also the skipped."""
    from openpersonalize.testing.synthetic import INTERACTIONS_SCHEMA_JSON, write_interactions_csv

    bucket = root / BUCKET
    bucket.mkdir(parents=True, exist_ok=True)
    cases: list[Case] = []
    skipped: list[str] = []
    ratings_schema = json.dumps(common.INTERACTIONS_RATINGS)

    u_data = DATASETS / "ml-100k" / "u.data"
    if u_data.is_file():
        case = Case(ML_100K, "ml-100k.csv", ratings_schema)
        _convert(u_data, bucket / case.key, case, tab_separated=True)
        cases.append(case)
    else:
        print(f"skipping {ML_100K}: {u_data} not found", file=sys.stderr)
        skipped.append(ML_100K)

    ratings = DATASETS / "ml-latest-small" / "ratings.csv"
    if ratings.is_file():
        case = Case(ML_LATEST_SMALL, "ml-latest-small.csv", ratings_schema)
        _convert(ratings, bucket / case.key, case, tab_separated=False)
        cases.append(case)
    else:
        print(f"skipping {ML_LATEST_SMALL}: {ratings} not found", file=sys.stderr)
        skipped.append(ML_LATEST_SMALL)

    case = Case(GENERATED_1M, "generated-1000000.csv", INTERACTIONS_SCHEMA_JSON)
    started = time.perf_counter()
    write_interactions_csv(bucket / case.key, 1_000_000, seed=0)
    print(f"generated 1M rows in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    _count(bucket / case.key, case)
    cases.append(case)
    return cases, skipped


def _convert(source: Path, dest: Path, case: Case, *, tab_separated: bool) -> None:
    """MovieLens ratings -> USER_ID,ITEM_ID,TIMESTAMP,EVENT_VALUE, described into `case`."""
    _describe(common.convert_ratings(source, dest, tab_separated=tab_separated), case)


def _count(path: Path, case: Case) -> None:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    types = {"USER_ID": pa.string(), "ITEM_ID": pa.string()}
    table = pacsv.read_csv(
        path,
        convert_options=pacsv.ConvertOptions(
            column_types=types, include_columns=["USER_ID", "ITEM_ID"]
        ),
    )
    _describe(table, case)


def _describe(table: Any, case: Case) -> None:
    import pyarrow.compute as pc

    case.rows = table.num_rows
    case.users = len(pc.unique(table["USER_ID"]))
    case.items = len(pc.unique(table["ITEM_ID"]))


# ------------------------------------------------------------------------ measuring


def measure(root: Path, case: Case, work: Path) -> Result:
    """Import one data set into a fresh real server and train every recipe on it."""
    server = common.start_server(work / f"{case.key}.server", root)
    result = Result(case)
    try:
        client = server.client("personalize")
        name = common.bench_name(case.key)
        group = common.create_group(client, name)
        dataset = common.create_dataset(client, group, name, "Interactions", case.schema)
        started = time.perf_counter()
        common.import_data(client, dataset, name, f"s3://{BUCKET}/{case.key}", server.log)
        result.import_seconds = time.perf_counter() - started

        for recipe in RECIPES:
            print(f"  training {recipe} on {case.label} ...", file=sys.stderr)
            solution = common.create_solution(client, group, f"{name}-{recipe}", recipe)
            started = time.perf_counter()
            version = common.train_version(client, solution, server.log)
            seconds = time.perf_counter() - started
            version_arn = version["solutionVersionArn"]
            metrics = client.get_solution_metrics(solutionVersionArn=version_arn)["metrics"]
            missing = set(METRICS) - set(metrics)
            if missing:
                raise SystemExit(f"GetSolutionMetrics lacks {sorted(missing)}: {metrics}")
            run = Run(
                recipe,
                seconds,
                float(version.get("trainingHours", float("nan"))) * 3600,
                {m: float(metrics[m]) for m in METRICS},
            )
            result.runs[recipe] = run
            print(
                f"  {recipe}: {seconds:.2f} s create→ACTIVE, trainingHours*3600 "
                f"{run.training_seconds:.2f} s",
                file=sys.stderr,
            )
    finally:
        server.stop()
    return result


def table(result: Result) -> str:
    case = result.case
    lines = [
        f"**{case.label}**: {case.rows:,} interactions, {case.users:,} users, "
        f"{case.items:,} items (import {result.import_seconds:.2f} s, not counted)",
        "",
        "| recipe | train s (create→ACTIVE) | trainingHours×3600 s | "
        + " | ".join(SHORT[m] for m in METRICS)
        + " |",
        "|---|---:|---:|" + "---:|" * len(METRICS),
    ]
    for run in result.runs.values():
        lines.append(
            f"| {run.recipe} | {run.seconds:.2f} | {run.training_seconds:.2f} | "
            + " | ".join(f"{run.metrics[m]:.4f}" for m in METRICS)
            + " |"
        )
    return "\n".join(lines)


def check_targets(results: list[Result], skipped: list[str]) -> list[str]:
    """One line per target: met, MISSED, or not checked (data set absent)."""
    by_label = {r.case.label: r for r in results}
    verdicts = []
    for label, limit in TARGET_SECONDS.items():
        if label in skipped:
            verdicts.append(f"not checked: {USER_PERSONALIZATION} on {label} (data set absent)")
            continue
        run = by_label[label].runs.get(USER_PERSONALIZATION) if label in by_label else None
        seconds = run.seconds if run else float("nan")
        ok = seconds < limit  # False for NaN (not measured)
        verdicts.append(
            f"{'met' if ok else 'MISSED'}: {USER_PERSONALIZATION} on {label} trained in "
            f"{seconds:.1f} s create→ACTIVE (target < {limit:.0f} s)"
        )
    for label in BEATS_POPULARITY_ON:
        if label in skipped:
            verdicts.append(
                f"not checked: {USER_PERSONALIZATION} beats {POPULARITY} on {label} "
                "(data set absent)"
            )
            continue
        runs = by_label[label].runs if label in by_label else {}
        mine = runs.get(USER_PERSONALIZATION)
        theirs = runs.get(POPULARITY)
        losing = [
            m
            for m in RANKING_METRICS
            if not (mine and theirs and mine.metrics[m] > theirs.metrics[m])
        ]
        if mine and theirs:
            ratios = ", ".join(
                f"{SHORT[m]} {mine.metrics[m]:.4f} vs {theirs.metrics[m]:.4f}"
                for m in RANKING_METRICS
            )
        else:
            ratios = "not measured"
        verdict = "met" if not losing else "MISSED"
        detail = "" if not losing else f"; not better on {', '.join(SHORT[m] for m in losing)}"
        verdicts.append(
            f"{verdict}: {USER_PERSONALIZATION} beats {POPULARITY} on {label} on every ranking "
            f"metric ({ratios}{detail})"
        )
    return verdicts


def section(results: list[Result], verdicts: list[str]) -> str:
    body = [
        START,
        "## Training speed and offline metrics",
        "",
        "`python benchmarks/training.py --write`. Per data set a fresh real server "
        "(`ServerProcess`, `workers=1`, the CSV under its local S3 root), one dataset group with "
        "its Interactions imported through the API; then per recipe CreateSolution "
        "(`performAutoTraining=False`, default hyperparameters) and CreateSolutionVersion. "
        "*train s* runs from CreateSolutionVersion until DescribeSolutionVersion, polled every "
        "0.05 s, reports ACTIVE (queueing, the training process's start-up, the evaluation fit "
        "on the held-out split, the final fit on all data and saving the model included); "
        "*trainingHours×3600* is what the version reports. The metrics are GetSolutionMetrics'. "
        "MovieLens ratings are imported as USER_ID,ITEM_ID,TIMESTAMP,EVENT_VALUE (every rating "
        "an interaction); the generated set is `write_interactions_csv(path, 1_000_000, seed=0)`. "
        "Preparing the CSVs, the import and creating the solutions are not timed.",
        "",
        f"Machine: {machine()}.",
        "",
    ]
    for result in results:
        body += [table(result), ""]
    body += [*[f"- {v}" for v in verdicts], END]
    return "\n".join(body)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    args = parser.parse_args(argv)

    sys.path.insert(0, str(REPO))
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="training-bench-") as tmp:
        root, work = Path(tmp, "s3"), Path(tmp, "work")
        work.mkdir()
        cases, skipped = prepare(root)
        for case in cases:
            print(f"{case.label}: importing and training ...", file=sys.stderr)
            results.append(measure(root, case, work))
    verdicts = check_targets(results, skipped)
    for result in results:
        print(table(result))
        print()
    for v in verdicts:
        print(f"- {v}")
    if args.write:
        write_doc(section(results, verdicts))
        print(f"\nwrote {DOC}")
    return 1 if any(v.startswith("MISSED") for v in verdicts) else 0


if __name__ == "__main__":
    sys.exit(main())
