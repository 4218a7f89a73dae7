"""optimizationObjective on the Retail Demo Store data (PRICE per item): more sensitivity, more
reward in GetSolutionMetrics and pricier recommendations, at a modest cost in relevance.

The data is synthetic, so it is used for behaviour here, never for accuracy claims.
"""

from __future__ import annotations

import csv
import gzip
import json
from pathlib import Path
from typing import Any

import pytest
from conftest import SHARED_DATASETS
from helpers import active_dataset, active_group, run_import, schema, unique

from openpersonalize.testing.server import wait_for_status

RETAIL = SHARED_DATASETS / "retail-demo-store"
pytestmark = pytest.mark.skipif(
    not RETAIL.is_dir(), reason=f"Retail Demo Store data not present at {RETAIL}"
)

RECIPE = "arn:aws:personalize:::recipe/aws-user-personalization"
ROWS = 200_000  # the first rows of interactions.csv.gz: enough for stable metrics, fast to train
SENSITIVITIES = ("OFF", "LOW", "MEDIUM", "HIGH")


def _schema_text(name: str, fields: list[dict[str, Any]]) -> str:
    return json.dumps(
        {
            "type": "record",
            "name": name,
            "namespace": "com.amazonaws.personalize.schema",
            "fields": fields,
            "version": "1.0",
        }
    )


INTERACTIONS = _schema_text(
    "Interactions",
    [
        {"name": "ITEM_ID", "type": "string"},
        {"name": "USER_ID", "type": "string"},
        {"name": "EVENT_TYPE", "type": "string"},
        {"name": "TIMESTAMP", "type": "long"},
    ],
)
ITEMS = _schema_text(
    "Items",
    [
        {"name": "ITEM_ID", "type": "string"},
        {"name": "PRICE", "type": "float"},
        {"name": "CATEGORY_L1", "type": "string", "categorical": True},
    ],
)


def _write_subset(target: Path) -> dict[str, float]:
    """Interactions (first ROWS rows) and Items (ITEM_ID, PRICE, CATEGORY_L1); prices by item."""
    target.mkdir(parents=True, exist_ok=True)
    with (
        gzip.open(RETAIL / "interactions.csv.gz", "rt", newline="") as source,
        open(target / "interactions.csv", "w", newline="") as out,
    ):
        reader, writer = csv.DictReader(source), csv.writer(out)
        writer.writerow(["ITEM_ID", "USER_ID", "EVENT_TYPE", "TIMESTAMP"])
        for number, row in enumerate(reader):
            if number == ROWS:
                break
            writer.writerow([row["ITEM_ID"], row["USER_ID"], row["EVENT_TYPE"], row["TIMESTAMP"]])
    prices = {}
    with (
        open(RETAIL / "items.csv", newline="") as source,
        open(target / "items.csv", "w", newline="") as out,
    ):
        writer = csv.writer(out)
        writer.writerow(["ITEM_ID", "PRICE", "CATEGORY_L1"])
        for row in csv.DictReader(source):
            writer.writerow([row["ITEM_ID"], row["PRICE"], row["CATEGORY_L1"]])
            prices[row["ITEM_ID"]] = float(row["PRICE"])
    return prices


@pytest.fixture(scope="module")
def trained(server, personalize, s3_root: Path) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    prices = _write_subset(s3_root / "retail-objective")
    group = active_group(personalize, unique("objective"))
    interactions = active_dataset(personalize, group, schema(personalize, INTERACTIONS))
    items = active_dataset(personalize, group, schema(personalize, ITEMS), "Items")
    for dataset, key in ((interactions, "interactions.csv"), (items, "items.csv")):
        job = run_import(personalize, dataset, f"s3://retail-objective/{key}")
        assert job["status"] == "ACTIVE", job
    versions = {}
    for sensitivity in SENSITIVITIES:  # all four train at once (two at a time on the workers)
        solution = personalize.create_solution(
            name=unique(f"objective-{sensitivity.lower()}"),
            datasetGroupArn=group,
            recipeArn=RECIPE,
            performAutoTraining=False,
            solutionConfig={
                "optimizationObjective": {
                    "itemAttribute": "PRICE",
                    "objectiveSensitivity": sensitivity,
                }
            },
        )["solutionArn"]
        wait_for_status(personalize.describe_solution, "solution", "solutionArn", solution)
        versions[sensitivity] = personalize.create_solution_version(solutionArn=solution)[
            "solutionVersionArn"
        ]
    metrics = {}
    for sensitivity, arn in versions.items():
        version = wait_for_status(
            personalize.describe_solution_version,
            "solutionVersion",
            "solutionVersionArn",
            arn,
            timeout=600,
        )
        assert version["status"] == "ACTIVE", version
        metrics[sensitivity] = personalize.get_solution_metrics(solutionVersionArn=arn)["metrics"]
    return {"versions": versions, "metrics": metrics, "prices": prices}


def test_rewards_rise_with_sensitivity_while_relevance_falls_modestly(trained) -> None:  # type: ignore[no-untyped-def]
    metrics = trained["metrics"]
    rewards = [metrics[s]["average_rewards_at_k"] for s in SENSITIVITIES]
    assert all(0 < value <= 1 for value in rewards), rewards
    assert rewards == sorted(rewards) and len(set(rewards)) == len(rewards), rewards
    ndcg = {s: metrics[s]["normalized_discounted_cumulative_gain_at_10"] for s in SENSITIVITIES}
    assert ndcg["LOW"] >= 0.9 * ndcg["OFF"], ndcg
    assert ndcg["HIGH"] >= 0.6 * ndcg["OFF"], ndcg


def test_campaign_recommendations_follow_the_objective(server, personalize, trained) -> None:  # type: ignore[no-untyped-def]
    runtime = server.client("personalize-runtime")
    prices = trained["prices"]
    mean_price = {}
    for sensitivity in ("OFF", "HIGH"):
        campaign = personalize.create_campaign(
            name=unique(f"objective-{sensitivity.lower()}"),
            solutionVersionArn=trained["versions"][sensitivity],
            campaignConfig={"itemExplorationConfig": {"explorationWeight": "0"}},
        )["campaignArn"]
        status = wait_for_status(personalize.describe_campaign, "campaign", "campaignArn", campaign)
        assert status["status"] == "ACTIVE", status
        recommended = [
            item["itemId"]
            for user in range(1, 41)
            for item in runtime.get_recommendations(campaignArn=campaign, userId=str(user))[
                "itemList"
            ]
        ]
        assert len(recommended) == 40 * 25
        mean_price[sensitivity] = sum(prices[item] for item in recommended) / len(recommended)
    assert mean_price["HIGH"] > 1.2 * mean_price["OFF"], mean_price
