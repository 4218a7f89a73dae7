"""User segmentation end to end: aws-item-affinity and aws-item-attribute-affinity trained
through boto3, batch segment jobs reading and writing JSON lines in the (local) S3 root.

Seeded data with a planted answer: users in four taste groups take mostly their group's
items, so the users most likely to interact with an item of group g are group g's users.
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

RECIPE = "arn:aws:personalize:::recipe/"
GROUPS, ITEMS_PER_GROUP, USERS = 4, 25, 240


def taste(user: str) -> int:
    return int(user.split("-")[1]) % GROUPS


def membership(user: str) -> str:
    return "gold" if int(user.split("-")[1]) % 3 == 0 else "silver"


def write_data(folder: Path) -> None:
    rng = np.random.default_rng(21)
    folder.mkdir(parents=True, exist_ok=True)
    rows = ["USER_ID,ITEM_ID,TIMESTAMP"]
    for number in range(USERS):
        user = f"user-{number:03d}"
        for event in range(14):
            group = taste(user) if rng.random() < 0.85 else int(rng.integers(0, GROUPS))
            item = f"g{group}-{int(rng.integers(0, ITEMS_PER_GROUP)):02d}"
            rows.append(f"{user},{item},{1_700_000_000 + number * 1000 + event * 10}")
    (folder / "interactions.csv").write_text("\n".join(rows) + "\n")
    items = ["ITEM_ID,GENRE,PRICE"]
    for group in range(GROUPS):
        for n in range(ITEMS_PER_GROUP):
            items.append(f"g{group}-{n:02d},genre{group},{10 + n}")
    (folder / "items.csv").write_text("\n".join(items) + "\n")
    users = ["USER_ID,MEMBERSHIP"] + [
        f"user-{n:03d},{membership(f'user-{n:03d}')}" for n in range(USERS)
    ]
    (folder / "users.csv").write_text("\n".join(users) + "\n")


SCHEMAS = {
    "Interactions": avro_schema(
        "Interactions", ("USER_ID", "string"), ("ITEM_ID", "string"), ("TIMESTAMP", "long")
    ),
    "Items": avro_schema(
        "Items",
        ("ITEM_ID", "string"),
        {"name": "GENRE", "type": "string", "categorical": True},
        ("PRICE", "float"),
    ),
    "Users": avro_schema(
        "Users",
        ("USER_ID", "string"),
        {"name": "MEMBERSHIP", "type": "string", "categorical": True},
    ),
}


@pytest.fixture(scope="module")
def segments(personalize, s3_root) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    bucket = unique("segments")
    write_data(s3_root / bucket)
    group = personalize.create_dataset_group(name=unique("dg"))["datasetGroupArn"]
    for kind, text in SCHEMAS.items():
        schema_arn = personalize.create_schema(name=unique("schema"), schema=text)["schemaArn"]
        dataset = personalize.create_dataset(
            name=unique("ds"), datasetGroupArn=group, schemaArn=schema_arn, datasetType=kind
        )["datasetArn"]
        done = run_import(personalize, dataset, f"s3://{bucket}/{kind.lower()}.csv")
        assert done["status"] == "ACTIVE", done.get("failureReason")
    versions = {}
    for recipe in ("aws-item-affinity", "aws-item-attribute-affinity", "aws-user-personalization"):
        solution = personalize.create_solution(
            name=unique("sol"), datasetGroupArn=group, recipeArn=RECIPE + recipe
        )["solutionArn"]
        version = personalize.create_solution_version(solutionArn=solution)["solutionVersionArn"]
        versions[recipe] = version
    for recipe, version in versions.items():
        final = wait_for_status(
            personalize.describe_solution_version,
            "solutionVersion",
            "solutionVersionArn",
            version,
            timeout=300,
        )
        assert final["status"] == "ACTIVE", (recipe, final.get("failureReason"))
    return {"group": group, "bucket": bucket, "versions": versions}


def run_job(personalize, segments, lines: list[Any], **extra: Any) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    folder = unique("in")
    path = Path(extra.pop("s3_root")) / segments["bucket"] / folder
    path.mkdir(parents=True)
    text = "\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines)
    (path / "queries.json").write_text(text + "\n")
    arn = personalize.create_batch_segment_job(
        jobName=unique("segments"),
        jobInput={"s3DataSource": {"path": f"s3://{segments['bucket']}/{folder}/"}},
        jobOutput={"s3DataDestination": {"path": f"s3://{segments['bucket']}/{folder}-out/"}},
        roleArn="arn:aws:iam::000000000000:role/PersonalizeRole",
        **extra,
    )["batchSegmentJobArn"]
    final = wait_for_status(
        personalize.describe_batch_segment_job, "batchSegmentJob", "batchSegmentJobArn", arn
    )
    output = path.parent / f"{folder}-out" / "queries.json.out"
    written = (
        [json.loads(line) for line in output.read_text().splitlines()] if output.exists() else []
    )
    return {"arn": arn, "job": final, "lines": written}


def test_segmentation_metrics(personalize, segments) -> None:  # type: ignore[no-untyped-def]
    for recipe in ("aws-item-affinity", "aws-item-attribute-affinity"):
        metrics = personalize.get_solution_metrics(solutionVersionArn=segments["versions"][recipe])[
            "metrics"
        ]
        assert set(metrics) == {"hit", "recall"}, metrics
        assert 0 < metrics["recall"] <= metrics["hit"] <= 1


def test_item_affinity_segments(personalize, segments, s3_root) -> None:  # type: ignore[no-untyped-def]
    version = segments["versions"]["aws-item-affinity"]
    result = run_job(
        personalize,
        segments,
        [{"itemId": "g0-03"}, {"itemId": "g2-10"}, {"itemId": "unknown"}, "{not json"],
        solutionVersionArn=version,
        numResults=30,
        s3_root=s3_root,
    )
    assert result["job"]["status"] == "ACTIVE", result["job"].get("failureReason")
    described = result["job"]
    assert described["numResults"] == 30 and described["solutionVersionArn"] == version
    first, second, unknown, broken = result["lines"]
    for line, group in ((first, 0), (second, 2)):
        users = line["output"]["recommendedUsers"]
        assert line["output"]["usersList"] == users  # the service's key, beside the guide's
        assert line["error"] is None and len(users) == 30 == len(set(users))
        assert sum(taste(user) == group for user in users) / len(users) > 0.8, users
    assert first["input"] == {"itemId": "g0-03"}
    assert unknown["output"] is None and "unknown" in unknown["error"]
    assert broken["output"] is None and "Invalid JSON" in broken["error"]
    listed = personalize.list_batch_segment_jobs(solutionVersionArn=version)["batchSegmentJobs"]
    assert result["arn"] in {job["batchSegmentJobArn"] for job in listed}


def test_item_attribute_affinity_with_a_user_filter(personalize, segments, s3_root) -> None:  # type: ignore[no-untyped-def]
    version = segments["versions"]["aws-item-attribute-affinity"]
    gold = personalize.create_filter(
        name=unique("filter"),
        datasetGroupArn=segments["group"],
        filterExpression="INCLUDE UserID WHERE Users.MEMBERSHIP IN ($LEVEL)",
    )["filterArn"]
    result = run_job(
        personalize,
        segments,
        [
            {"itemAttributes": 'ITEMS.genre = "genre1"', "filterValues": {"LEVEL": '"gold"'}},
            {"itemAttributes": 'ITEMS.GENRE = "genre3" AND ITEMS.PRICE = 12'},
            {"itemAttributes": 'ITEMS.GENRE IN ("genre3")'},
        ],
        solutionVersionArn=version,
        filterArn=gold,
        numResults=15,
        s3_root=s3_root,
    )
    assert result["job"]["status"] == "ACTIVE", result["job"].get("failureReason")
    first, second, wrong = result["lines"]
    users = first["output"]["recommendedUsers"]
    assert first["output"]["usersList"] == users
    assert first["itemAttributes"] == 'ITEMS.genre = "genre1"'  # echoed at the top level
    assert first["input"]["itemAttributes"] == first["itemAttributes"]  # and under "input"
    assert len(users) == 15 and all(membership(user) == "gold" for user in users)
    assert sum(taste(user) == 1 for user in users) / len(users) > 0.8, users
    # No filter values: the INCLUDE filter needs them, so that line says so.
    assert second["output"] is None and "LEVEL" in second["error"]
    assert wrong["output"] is None and "ITEMS.<column>" in wrong["error"]


def test_bad_batch_segment_requests(personalize, segments) -> None:  # type: ignore[no-untyped-def]
    def refused(**request: Any) -> str:
        fields = {
            "jobName": unique("bad"),
            "solutionVersionArn": segments["versions"]["aws-item-affinity"],
            "jobInput": {"s3DataSource": {"path": f"s3://{segments['bucket']}/in/"}},
            "jobOutput": {"s3DataDestination": {"path": f"s3://{segments['bucket']}/out/"}},
            "roleArn": "arn:aws:iam::000000000000:role/PersonalizeRole",
            **request,
        }
        with pytest.raises(ClientError) as error:
            personalize.create_batch_segment_job(**fields)
        return error_code(error.value)

    personalize_version = segments["versions"]["aws-user-personalization"]
    assert refused(solutionVersionArn=personalize_version) == "InvalidInputException"
    assert refused(numResults=0) == "InvalidInputException"
    item_filter = personalize.create_filter(
        name=unique("filter"),
        datasetGroupArn=segments["group"],
        filterExpression='EXCLUDE ItemID WHERE Items.GENRE IN ("genre0")',
    )["filterArn"]
    assert refused(filterArn=item_filter) == "InvalidInputException"
    interactions_filter = personalize.create_filter(
        name=unique("filter"),
        datasetGroupArn=segments["group"],
        filterExpression='INCLUDE UserID WHERE Interactions.EVENT_TYPE IN ("*")',
    )["filterArn"]
    assert (
        refused(
            solutionVersionArn=segments["versions"]["aws-item-attribute-affinity"],
            filterArn=interactions_filter,
        )
        == "InvalidInputException"
    )
    # Segment recipes answer batch segment jobs only.
    with pytest.raises(ClientError) as batch:
        personalize.create_batch_inference_job(
            jobName=unique("bad"),
            solutionVersionArn=segments["versions"]["aws-item-affinity"],
            jobInput={"s3DataSource": {"path": f"s3://{segments['bucket']}/in/"}},
            jobOutput={"s3DataDestination": {"path": f"s3://{segments['bucket']}/out/"}},
            roleArn="arn:aws:iam::000000000000:role/PersonalizeRole",
        )
    assert error_code(batch.value) == "InvalidInputException"
