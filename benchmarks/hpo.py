"""HPO on ml-latest-small: default vs tuned aws-user-personalization, and 1 vs 2 parallel trials.

A fresh ``openpersonalize serve`` (one worker, the local executor) with ml-latest-small's
ratings.csv converted to USER_ID,ITEM_ID,TIMESTAMP,EVENT_VALUE under its local S3 root; one
dataset group, Interactions imported via boto3. Then three solutions of
aws-user-personalization: the default hyperparameters (no HPO), and performHPO with the
recipe's default ranges and ``maxNumberOfTrainingJobs`` trials, once with
``maxParallelTrainingJobs`` 1 and once with 2. Recorded per version: the wall seconds from
CreateSolutionVersion to ACTIVE, trainingHours * 3600 (compute: every trial counts),
GetSolutionMetrics (on the test users, never seen by the search), and the tuned values.

    python benchmarks/hpo.py                 # print the Markdown table and verdicts
    python benchmarks/hpo.py --write         # also update docs/benchmarks.md
    python benchmarks/hpo.py --trials 12     # a bigger search
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import common
import training
from common import DATASETS, DOC, REPO

START, END = "<!-- hpo:start -->", "<!-- hpo:end -->"
OBJECTIVE = "normalized_discounted_cumulative_gain_at_25"  # the HPO objective by default
SHOWN = (
    "normalized_discounted_cumulative_gain_at_10",
    OBJECTIVE,
    "precision_at_25",
    "mean_reciprocal_rank_at_25",
)


def train(client: Any, group: str, name: str, **fields: Any) -> dict[str, Any]:
    """One solution and one version of it; the version's description, metrics and wall time."""
    solution = common.create_solution(client, group, name, "aws-user-personalization", **fields)
    print(f"  training {name} ...", file=sys.stderr)
    started = time.perf_counter()
    version = common.train_version(client, solution)
    seconds = time.perf_counter() - started
    metrics = client.get_solution_metrics(solutionVersionArn=version["solutionVersionArn"])
    metrics = metrics["metrics"]
    print(f"  {name}: {seconds:.1f} s, {OBJECTIVE}={metrics[OBJECTIVE]:.4f}", file=sys.stderr)
    return {"version": version, "metrics": metrics, "seconds": seconds}


def measure(root: Path, case: training.Case, work: Path, trials: int) -> dict[str, dict]:
    server = common.start_server(work / "server", root)
    runs: dict[str, dict] = {}
    try:
        client = server.client("personalize")
        group = common.create_group(client, "bench-hpo")
        dataset = common.create_dataset(client, group, "bench-hpo", "Interactions", case.schema)
        location = f"s3://{training.BUCKET}/{case.key}"
        common.import_data(client, dataset, "bench-hpo", location, server.log)
        runs["default"] = train(client, group, "bench-default")
        for parallel in (1, 2):
            config = {
                "hpoConfig": {
                    "hpoResourceConfig": {
                        "maxNumberOfTrainingJobs": str(trials),
                        "maxParallelTrainingJobs": str(parallel),
                    }
                }
            }
            runs[f"tuned, {parallel} at once"] = train(
                client, group, f"bench-hpo-{parallel}", performHPO=True, solutionConfig=config
            )
    finally:
        server.stop()
    return runs


def table(runs: dict[str, dict]) -> str:
    header = (
        "| hyperparameters | "
        + " | ".join(training.SHORT[m] for m in SHOWN)
        + " | create→ACTIVE s | trainingHours×3600 s | tuned values |"
    )
    lines = [header, "|" + "---|" * (len(SHOWN) + 4)]
    for label, run in runs.items():
        tuned = (run["version"].get("tunedHPOParams") or {}).get("algorithmHyperParameters", {})
        searched = ", ".join(
            f"{name}={tuned[name]}"
            for name in ("hidden_dimension", "bptt", "recency_mask")
            if name in tuned
        )
        lines.append(
            f"| {label} | "
            + " | ".join(f"{float(run['metrics'][m]):.4f}" for m in SHOWN)
            + f" | {run['seconds']:.1f} | {run['version']['trainingHours'] * 3600:.1f} | "
            + f"{searched or 'defaults'} |"
        )
    return "\n".join(lines)


def verdicts(runs: dict[str, dict]) -> list[str]:
    default = float(runs["default"]["metrics"][OBJECTIVE])
    found = []
    for label, run in runs.items():
        if label == "default":
            continue
        tuned = float(run["metrics"][OBJECTIVE])
        verdict = "MET" if tuned >= default else "MISSED"
        found.append(
            f"{verdict}: {label}: {training.SHORT[OBJECTIVE]} on the test users {tuned:.4f} "
            f"≥ default {default:.4f}"
        )
    one, two = runs["tuned, 1 at once"]["seconds"], runs["tuned, 2 at once"]["seconds"]
    found.append(
        f"wall time: 2 trials at once {two:.1f} s vs 1 at once {one:.1f} s "
        f"({one / two:.2f}× faster; two trials at once share the cores, one ALS trial alone "
        f"already runs on all {common.cores()}, so the gain grows with the cores)"
    )
    return found


def section(case: training.Case, trials: int, runs: dict[str, dict], found: list[str]) -> str:
    return "\n".join(
        [
            START,
            "## HPO (aws-user-personalization on ml-latest-small)",
            "",
            f"`python benchmarks/hpo.py --write`: {case.rows:,} ratings, {case.users:,} users, "
            f"{case.items:,} items, imported into a fresh server (one worker, local executor). "
            f"Tuned = performHPO with the recipe's default ranges, {trials} trials (TPE, "
            "seeded; the first tries the defaults), scored on validation users carved out of "
            "the training users; metrics are GetSolutionMetrics on the test users, which the "
            "search never sees. Each trial runs in its own process; *trainingHours×3600* "
            "counts every trial's time, *create→ACTIVE* is wall time.",
            "",
            table(runs),
            "",
            *[f"- {line}" for line in found],
            "",
            f"Machine: {common.machine('numpy', 'implicit', 'optuna')}; load average "
            f"{os.getloadavg()[0]:.1f} at the end.",
            END,
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    parser.add_argument("--trials", type=int, default=8, help="maxNumberOfTrainingJobs")
    args = parser.parse_args(argv)
    source = DATASETS / "ml-latest-small" / "ratings.csv"
    if not source.is_file():
        print(f"skipping: {source} not found", file=sys.stderr)
        return 0
    sys.path.insert(0, str(REPO))
    with tempfile.TemporaryDirectory(prefix="hpo-bench-") as tmp:
        root, work = Path(tmp, "s3"), Path(tmp, "work")
        (root / training.BUCKET).mkdir(parents=True)
        work.mkdir()
        case = training.Case(
            training.ML_LATEST_SMALL,
            "ml-latest-small.csv",
            json.dumps(common.INTERACTIONS_RATINGS),
        )
        training._convert(source, root / training.BUCKET / case.key, case, tab_separated=False)
        runs = measure(root, case, work, args.trials)
    found = verdicts(runs)
    print(table(runs))
    for line in found:
        print(f"- {line}")
    if args.write:
        common.write_section(START, END, section(case, args.trials, runs, found))
        print(f"\nwrote {DOC}")
    return 1 if any(line.startswith("MISSED") for line in found) else 0


if __name__ == "__main__":
    sys.exit(main())
