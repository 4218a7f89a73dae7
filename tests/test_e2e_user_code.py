"""User code as the developer guide and sample notebooks write it: no waits after metadata creates.

Creating a dataset group, dataset, solution, filter or event tracker records metadata only;
the service lets the next call use it at once (a version asked for while its solution is
CREATE PENDING trains once the solution is ACTIVE). Only real work (imports, training) is
waited for, by polling its Describe call, as user code does.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import SHARED_DATASETS
from helpers import INTERACTIONS_SCHEMA, unique
from test_e2e_solutions import interactions_csv

from openpersonalize.testing.server import wait_for_status

UP = "arn:aws:personalize:::recipe/aws-user-personalization"


def poll(describe: Any, key: str, arn_key: str, arn: str, timeout: float = 600) -> dict[str, Any]:
    return wait_for_status(describe, key, arn_key, arn, timeout=timeout)


def test_every_call_right_after_the_create_it_needs(server, personalize, s3_root: Path) -> None:  # type: ignore[no-untyped-def]
    folder = s3_root / "user-code"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "interactions.csv").write_text(interactions_csv(seed=3))
    group = personalize.create_dataset_group(name=unique("group"))["datasetGroupArn"]
    schema = personalize.create_schema(name=unique("schema"), schema=INTERACTIONS_SCHEMA)[
        "schemaArn"
    ]
    # The group is CREATE PENDING: the dataset, tracker and filter are accepted all the same.
    dataset = personalize.create_dataset(
        name=unique("interactions"),
        datasetGroupArn=group,
        datasetType="Interactions",
        schemaArn=schema,
    )["datasetArn"]
    job = personalize.create_dataset_import_job(
        jobName=unique("import"),
        datasetArn=dataset,
        dataSource={"dataLocation": "s3://user-code/interactions.csv"},
        roleArn="arn:aws:iam::000000000000:role/personalize",
    )["datasetImportJobArn"]
    tracker = personalize.create_event_tracker(name=unique("tracker"), datasetGroupArn=group)
    events = server.client("personalize-events")
    events.put_events(
        trackingId=tracker["trackingId"],
        userId="u4",
        sessionId="session-1",
        eventList=[{"eventType": "click", "itemId": "c1", "sentAt": 1_700_100_000}],
    )
    unseen = personalize.create_filter(
        name=unique("unseen"),
        datasetGroupArn=group,
        filterExpression='EXCLUDE ItemID WHERE Interactions.event_type IN ("*")',
    )["filterArn"]
    assert poll(personalize.describe_dataset_import_job, "datasetImportJob",
                "datasetImportJobArn", job)["status"] == "ACTIVE"  # fmt: skip
    solution = personalize.create_solution(
        name=unique("solution"), datasetGroupArn=group, recipeArn=UP, performAutoTraining=False
    )["solutionArn"]
    version = personalize.create_solution_version(solutionArn=solution)["solutionVersionArn"]
    described = poll(
        personalize.describe_solution_version, "solutionVersion", "solutionVersionArn", version
    )
    assert described["status"] == "ACTIVE", described
    # Every metadata resource went through its states to ACTIVE on its own.
    assert personalize.describe_solution(solutionArn=solution)["solution"]["status"] == "ACTIVE"
    tracker_arn = tracker["eventTrackerArn"]
    assert (
        personalize.describe_event_tracker(eventTrackerArn=tracker_arn)["eventTracker"]["status"]
        == "ACTIVE"
    )
    campaign = personalize.create_campaign(name=unique("campaign"), solutionVersionArn=version)[
        "campaignArn"
    ]
    assert poll(personalize.describe_campaign, "campaign", "campaignArn", campaign)["status"] == (
        "ACTIVE"
    )
    runtime = server.client("personalize-runtime")
    items = runtime.get_recommendations(campaignArn=campaign, userId="u4", filterArn=unseen)
    # The event put before the tracker was ACTIVE was kept: the filter leaves c1 out.
    assert "c1" not in {entry["itemId"] for entry in items["itemList"]}
    assert len(items["itemList"]) == 25


@pytest.mark.skipif(
    not (SHARED_DATASETS / "ml-100k").is_dir(),
    reason=f"ML-100K not present at {SHARED_DATASETS / 'ml-100k'}",
)
def test_the_guides_automl_example_trains_on_movielens_100k(
    server,
    personalize,
    s3_root: Path,  # type: ignore[no-untyped-def]
) -> None:
    folder = s3_root / "ml-100k"
    folder.mkdir(parents=True, exist_ok=True)
    with (SHARED_DATASETS / "ml-100k" / "u.data").open() as source:
        rows = [line.split("\t") for line in source if line.strip()]
    (folder / "interactions.csv").write_text(
        "USER_ID,ITEM_ID,EVENT_VALUE,TIMESTAMP\n"
        + "".join(f"{u},{i},{r},{t.strip()}\n" for u, i, r, t in rows)
    )
    schema = json.dumps(
        {
            "type": "record",
            "name": "Interactions",
            "namespace": "com.amazonaws.personalize.schema",
            "fields": [
                {"name": "USER_ID", "type": "string"},
                {"name": "ITEM_ID", "type": "string"},
                {"name": "EVENT_VALUE", "type": ["float"]},
                {"name": "TIMESTAMP", "type": "long"},
            ],
            "version": "1.0",
        }
    )
    group = personalize.create_dataset_group(name=unique("ml100k"))["datasetGroupArn"]
    schema_arn = personalize.create_schema(name=unique("ml100k"), schema=schema)["schemaArn"]
    dataset = personalize.create_dataset(
        name=unique("ml100k"), datasetGroupArn=group, datasetType="Interactions",
        schemaArn=schema_arn,
    )["datasetArn"]  # fmt: skip
    job = personalize.create_dataset_import_job(
        jobName=unique("ml100k"),
        datasetArn=dataset,
        dataSource={"dataLocation": "s3://ml-100k/interactions.csv"},
        roleArn="arn:aws:iam::000000000000:role/personalize",
    )["datasetImportJobArn"]
    imported = poll(
        personalize.describe_dataset_import_job, "datasetImportJob", "datasetImportJobArn", job
    )
    assert imported["status"] == "ACTIVE", imported
    # The guide's "Creating a solution" example, call for call, without waiting.
    create_solution_response = personalize.create_solution(
        name=unique("solution"), datasetGroupArn=group, performAutoML=True
    )
    solution_arn = create_solution_response["solutionArn"]
    description = personalize.describe_solution(solutionArn=solution_arn)["solution"]
    assert description["status"] in ("CREATE PENDING", "CREATE IN_PROGRESS", "ACTIVE")
    create_solution_version_response = personalize.create_solution_version(solutionArn=solution_arn)
    solution_version_arn = create_solution_version_response["solutionVersionArn"]
    version = poll(
        personalize.describe_solution_version,
        "solutionVersion",
        "solutionVersionArn",
        solution_version_arn,
        timeout=1500,
    )
    assert version["status"] == "ACTIVE", version
    best = personalize.describe_solution(solutionArn=solution_arn)["solution"]["autoMLResult"]
    assert best["bestRecipeArn"].startswith("arn:aws:personalize:::recipe/")
    metrics = personalize.get_solution_metrics(solutionVersionArn=solution_version_arn)["metrics"]
    assert metrics["normalized_discounted_cumulative_gain_at_10"] > 0.1
