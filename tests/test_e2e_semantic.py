"""aws-semantic-similarity end to end: Items with an itemName and a textual field imported
through boto3, a solution version trained on them (with and without Interactions), a
campaign answering GetRecommendations by itemId, its ranking factors, batch inference, and
the refusals of data the recipe cannot use.

Seeded catalog with a planted answer: every item's name and description come from its
topic's words (the topic is the item ID's prefix) plus words all topics use.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from botocore.exceptions import ClientError
from helpers import avro_schema, error_code, run_import, unique

from openpersonalize.testing.server import wait_for_status

RECIPE = "arn:aws:personalize:::recipe/aws-semantic-similarity"
ROLE = "arn:aws:iam::000000000000:role/PersonalizeRole"
TOPICS = {
    "kitchen": "pan skillet knife spatula whisk cook bake oven recipe chef kettle",
    "garden": "soil seed shovel rake hose bloom plant prune compost flowerbed trowel",
    "music": "guitar string chord melody drum rhythm amplifier tune pick concert strum",
    "camping": "tent sleeping lantern trail campfire hike backpack stove compass outdoor",
}
SHARED = "perfect quality design everyday stylish durable premium classic modern gift ideal"
PER_TOPIC = 16
DAY = 86_400
ITEMS_SCHEMA = avro_schema(
    "Items",
    ("ITEM_ID", "string"),
    {"name": "TITLE", "type": "string", "itemName": True},
    {"name": "DESCRIPTION", "type": ["null", "string"], "textual": True},
    ("CREATION_TIMESTAMP", "long"),
)
INTERACTIONS_SCHEMA = avro_schema(
    "Interactions", ("USER_ID", "string"), ("ITEM_ID", "string"), ("TIMESTAMP", "long")
)


def topic(item_id: str) -> str:
    return item_id.split("-")[0]


def write_items(path: Path) -> dict[str, int]:
    """The catalog as CSV; returns each item's CREATION_TIMESTAMP."""
    rng = np.random.default_rng(17)
    shared = SHARED.split()
    ids = [f"{name}-{n:02d}" for name in TOPICS for n in range(PER_TOPIC)]
    created = 1_700_000_000 + rng.permutation(len(ids)) * DAY
    rows = ["ITEM_ID,TITLE,DESCRIPTION,CREATION_TIMESTAMP"]
    for item, stamp in zip(ids, created, strict=True):
        words = TOPICS[topic(item)].split()
        title = f"{rng.choice(shared)} {rng.choice(words)}"
        text = [*rng.choice(words, 5), *rng.choice(shared, 7)]
        rng.shuffle(text)
        rows.append(f"{item},{title},{' '.join(text)},{stamp}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(rows) + "\n")
    return dict(zip(ids, created.tolist(), strict=True))


def write_interactions(path: Path, items: list[str]) -> dict[str, int]:
    """1200 events; item k of each topic has about (k + 1)^2 times the events of item 0."""
    rng = np.random.default_rng(5)
    weights = np.array([(1 + int(item.split("-")[1])) ** 2 for item in items], dtype=float)
    chosen = rng.choice(len(items), 1200, p=weights / weights.sum())
    rows = ["USER_ID,ITEM_ID,TIMESTAMP"]
    for n, code in enumerate(chosen):
        rows.append(f"user-{n % 60:02d},{items[code]},{1_700_000_000 + n * 60}")
    path.write_text("\n".join(rows) + "\n")
    counts = np.bincount(chosen, minlength=len(items))
    return dict(zip(items, counts.tolist(), strict=True))


def dataset(personalize, group: str, kind: str, text: str) -> str:  # type: ignore[no-untyped-def]
    schema = personalize.create_schema(name=unique("schema"), schema=text)["schemaArn"]
    return personalize.create_dataset(
        name=unique("ds"), datasetGroupArn=group, schemaArn=schema, datasetType=kind
    )["datasetArn"]


def train(personalize, group: str) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    solution = personalize.create_solution(
        name=unique("sol"), datasetGroupArn=group, recipeArn=RECIPE, performAutoTraining=False
    )["solutionArn"]
    version = personalize.create_solution_version(solutionArn=solution)["solutionVersionArn"]
    return wait_for_status(
        personalize.describe_solution_version,
        "solutionVersion",
        "solutionVersionArn",
        version,
        timeout=300,
    )


def campaign(personalize, version: str, **config: Any) -> str:  # type: ignore[no-untyped-def]
    extra = {"campaignConfig": config} if config else {}
    arn = personalize.create_campaign(name=unique("campaign"), solutionVersionArn=version, **extra)[
        "campaignArn"
    ]
    status = wait_for_status(personalize.describe_campaign, "campaign", "campaignArn", arn)
    assert status["status"] == "ACTIVE", status
    return arn


@pytest.fixture(scope="module")
def trained(personalize, s3_root) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """Two groups: the Items alone, and the Items with Interactions (the popularity factor)."""
    bucket = unique("semantic")
    created = write_items(s3_root / bucket / "items.csv")
    counts = write_interactions(s3_root / bucket / "interactions.csv", sorted(created))
    groups = {}
    for name, kinds in (("items", ("Items",)), ("both", ("Items", "Interactions"))):
        group = personalize.create_dataset_group(name=unique("dg"))["datasetGroupArn"]
        for kind in kinds:
            text = ITEMS_SCHEMA if kind == "Items" else INTERACTIONS_SCHEMA
            done = run_import(
                personalize,
                dataset(personalize, group, kind, text),
                f"s3://{bucket}/{kind.lower()}.csv",
            )
            assert done["status"] == "ACTIVE", done.get("failureReason")
        groups[name] = group
    versions = {name: train(personalize, group) for name, group in groups.items()}
    for name, version in versions.items():
        assert version["status"] == "ACTIVE", (name, version.get("failureReason"))
    return {
        "bucket": bucket,
        "created": created,
        "counts": counts,
        "groups": groups,
        "versions": {name: v["solutionVersionArn"] for name, v in versions.items()},
    }


def related(runtime, campaign_arn: str, item: str, **extra: Any) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    return runtime.get_recommendations(campaignArn=campaign_arn, itemId=item, **extra)["itemList"]


def test_describe_recipe_names_the_lexical_model(personalize) -> None:  # type: ignore[no-untyped-def]
    recipe = personalize.describe_recipe(recipeArn=RECIPE)["recipe"]
    assert recipe["recipeType"] == "RELATED_ITEMS"
    assert "TF-IDF + LSA" in recipe["description"]
    assert "not a neural text embedding" in recipe["description"]


def test_items_alone_train_a_model_whose_neighbours_are_topic_mates(  # type: ignore[no-untyped-def]
    personalize, server, trained
) -> None:
    runtime = server.client("personalize-runtime")
    arn = campaign(personalize, trained["versions"]["items"])
    shares = []
    for item in ("kitchen-03", "garden-11", "music-00", "camping-07", "camping-15"):
        listed = related(runtime, arn, item, numResults=8)
        ids = [entry["itemId"] for entry in listed]
        assert len(ids) == 8 == len(set(ids)) and item not in ids
        scores = [entry["score"] for entry in listed]
        assert scores == sorted(scores, reverse=True)
        shares.append(np.mean([topic(other) == topic(item) for other in ids]))
    assert np.mean(shares) >= 0.9, shares
    # No interactions to hold out: there is nothing to measure.
    metrics = personalize.get_solution_metrics(solutionVersionArn=trained["versions"]["items"])
    assert metrics["metrics"] == {}
    # Item metadata comes back without enableMetadataWithRecommendations.
    with_metadata = related(
        runtime, arn, "music-04", numResults=3, metadataColumns={"ITEMS": ["TITLE"]}
    )
    assert all(entry["metadata"]["TITLE"] for entry in with_metadata)
    with pytest.raises(ClientError) as caught:
        runtime.get_recommendations(campaignArn=arn, userId="someone")
    assert error_code(caught.value) == "InvalidInputException"
    assert "itemId" in caught.value.response["Error"]["Message"]


def test_freshness_influence_puts_newer_topic_mates_first(  # type: ignore[no-untyped-def]
    personalize, server, trained
) -> None:
    runtime = server.client("personalize-runtime")
    version = trained["versions"]["items"]
    plain = campaign(personalize, version)
    fresh = campaign(personalize, version, rankingInfluence={"FRESHNESS": 1.0})
    created = trained["created"]
    plain_ages, fresh_ages = [], []
    for item in ("kitchen-01", "garden-05", "music-09", "camping-12", "garden-14"):
        plain_ids = [e["itemId"] for e in related(runtime, plain, item, numResults=5)]
        fresh_ids = [e["itemId"] for e in related(runtime, fresh, item, numResults=5)]
        assert all(topic(other) == topic(item) for other in fresh_ids)
        plain_ages.append(np.mean([created[other] for other in plain_ids]))
        fresh_ages.append(np.mean([created[other] for other in fresh_ids]))
    assert np.mean(fresh_ages) > np.mean(plain_ages) + 3 * DAY


def test_popularity_influence_uses_the_interactions(  # type: ignore[no-untyped-def]
    personalize, server, trained
) -> None:
    runtime = server.client("personalize-runtime")
    version = trained["versions"]["both"]
    plain = campaign(personalize, version)
    popular = campaign(personalize, version, rankingInfluence={"POPULARITY": 1.0})
    counts = trained["counts"]
    plain_events, popular_events = [], []
    for item in ("kitchen-02", "garden-08", "music-13", "camping-04"):
        plain_ids = [e["itemId"] for e in related(runtime, plain, item, numResults=5)]
        popular_ids = [e["itemId"] for e in related(runtime, popular, item, numResults=5)]
        assert sum(topic(other) == topic(item) for other in popular_ids) >= 4
        plain_events.append(np.mean([counts[other] for other in plain_ids]))
        popular_events.append(np.mean([counts[other] for other in popular_ids]))
    assert np.mean(popular_events) > 1.2 * np.mean(plain_events)


def test_batch_inference_lists_topic_mates_per_item(  # type: ignore[no-untyped-def]
    personalize, trained, s3_root
) -> None:
    bucket = trained["bucket"]
    folder = s3_root / bucket / "batch-in"
    folder.mkdir(parents=True, exist_ok=True)
    queries = ["kitchen-05", "music-10", "unknown-item"]
    (folder / "items.json").write_text("".join(json.dumps({"itemId": q}) + "\n" for q in queries))
    arn = personalize.create_batch_inference_job(
        jobName=unique("batch"),
        solutionVersionArn=trained["versions"]["items"],
        jobInput={"s3DataSource": {"path": f"s3://{bucket}/batch-in/"}},
        jobOutput={"s3DataDestination": {"path": f"s3://{bucket}/batch-out/"}},
        roleArn=ROLE,
        numResults=6,
        batchInferenceJobConfig={"rankingInfluence": {"FRESHNESS": 0.5}},
    )["batchInferenceJobArn"]
    job = wait_for_status(
        personalize.describe_batch_inference_job, "batchInferenceJob", "batchInferenceJobArn", arn
    )
    assert job["status"] == "ACTIVE", job.get("failureReason")
    lines = (s3_root / bucket / "batch-out" / "items.json.out").read_text().splitlines()
    answers = {json.loads(line)["input"]["itemId"]: json.loads(line) for line in lines}
    for query in ("kitchen-05", "music-10"):
        listed = answers[query]["output"]["recommendedItems"]
        assert len(listed) == 6 and query not in listed
        assert sum(topic(other) == topic(query) for other in listed) >= 5
    assert set(answers) == set(queries)


def test_items_without_the_text_fields_are_refused(personalize, s3_root) -> None:  # type: ignore[no-untyped-def]
    group = personalize.create_dataset_group(name=unique("dg"))["datasetGroupArn"]
    no_textual = avro_schema(
        "Items",
        ("ITEM_ID", "string"),
        {"name": "TITLE", "type": "string", "itemName": True},
        ("DESCRIPTION", "string"),  # not flagged textual: the recipe has no text to embed
    )
    dataset_arn = dataset(personalize, group, "Items", no_textual)
    name = unique("sol")
    with pytest.raises(ClientError) as caught:
        personalize.create_solution(name=name, datasetGroupArn=group, recipeArn=RECIPE)
    message = caught.value.response["Error"]["Message"]
    assert error_code(caught.value) == "InvalidInputException"
    assert '"textual": true' in message and dataset_arn in message
    assert '"itemName"' not in message  # the item name is there
    listed = personalize.list_solutions(datasetGroupArn=group)["solutions"]
    assert name not in {solution["name"] for solution in listed}  # nothing half made
    # A group without any Items dataset is refused too.
    bare = personalize.create_dataset_group(name=unique("dg"))["datasetGroupArn"]
    with pytest.raises(ClientError) as caught:
        personalize.create_solution(name=unique("sol"), datasetGroupArn=bare, recipeArn=RECIPE)
    assert error_code(caught.value) == "InvalidInputException"
    assert "Items dataset" in caught.value.response["Error"]["Message"]


def test_an_items_dataset_without_data_fails_the_version_with_the_reason(personalize) -> None:  # type: ignore[no-untyped-def]
    group = personalize.create_dataset_group(name=unique("dg"))["datasetGroupArn"]
    dataset(personalize, group, "Items", ITEMS_SCHEMA)  # created, nothing imported
    version = train(personalize, group)
    assert version["status"] == "CREATE FAILED"
    assert "no Items data" in version["failureReason"]
