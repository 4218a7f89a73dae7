"""Dataset export jobs end to end: imported and streamed records out as CSV in the S3 root."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.exceptions import ClientError
from helpers import avro_schema, error_code, run_import, unique

from openpersonalize.testing.server import wait_for_status

INTERACTIONS = avro_schema(
    "Interactions",
    ("USER_ID", "string"),
    ("ITEM_ID", "string"),
    ("TIMESTAMP", "long"),
    ("EVENT_TYPE", "string"),
)
ITEMS = avro_schema(
    "Items",
    ("ITEM_ID", "string"),
    {"name": "GENRE", "type": ["null", "string"], "categorical": True},
)
ROLE = "arn:aws:iam::000000000000:role/PersonalizeRole"


@pytest.fixture(scope="module")
def exported(personalize, server, s3_root) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    bucket = unique("export")
    folder = s3_root / bucket
    folder.mkdir()
    rows = ["USER_ID,ITEM_ID,TIMESTAMP,EVENT_TYPE"]
    rows += [f"u{n % 40},i{n % 70},{1_700_000_000 + n},click" for n in range(1200)]
    rows.append(rows[1])  # an exact duplicate: exported once
    (folder / "interactions.csv").write_text("\n".join(rows) + "\n")
    (folder / "items.csv").write_text(
        "ITEM_ID,GENRE\n" + "".join(f"i{n},g{n % 3}\n" for n in range(70))
    )
    group = personalize.create_dataset_group(name=unique("dg"))["datasetGroupArn"]
    arns = {}
    for kind, text in (("Interactions", INTERACTIONS), ("Items", ITEMS)):
        schema = personalize.create_schema(name=unique("schema"), schema=text)["schemaArn"]
        arns[kind] = personalize.create_dataset(
            name=unique("ds"), datasetGroupArn=group, schemaArn=schema, datasetType=kind
        )["datasetArn"]
        done = run_import(personalize, arns[kind], f"s3://{bucket}/{kind.lower()}.csv")
        assert done["status"] == "ACTIVE", done.get("failureReason")
    tracker = personalize.create_event_tracker(name=unique("tracker"), datasetGroupArn=group)
    events = server.client("personalize-events")
    sent_at = datetime(2024, 1, 2, tzinfo=UTC)
    events.put_events(
        trackingId=tracker["trackingId"],
        userId="streamed-user",
        sessionId="s1",
        eventList=[
            {"eventType": "purchase", "itemId": f"i{n}", "sentAt": sent_at} for n in range(3)
        ],
    )
    events.put_items(
        datasetArn=arns["Items"],
        items=[
            {"itemId": "i1", "properties": json.dumps({"genre": "changed"})},
            {"itemId": "new-item", "properties": json.dumps({"genre": "g9"})},
        ],
    )
    return {"bucket": bucket, "root": folder, "datasets": arns}


def export(personalize, exported, dataset: str, mode: str | None) -> list[list[dict[str, str]]]:  # type: ignore[no-untyped-def]
    name = unique("export")
    extra = {"ingestionMode": mode} if mode else {}
    arn = personalize.create_dataset_export_job(
        jobName=name,
        datasetArn=exported["datasets"][dataset],
        roleArn=ROLE,
        jobOutput={"s3DataDestination": {"path": f"s3://{exported['bucket']}/out/"}},
        **extra,
    )["datasetExportJobArn"]
    final = wait_for_status(
        personalize.describe_dataset_export_job, "datasetExportJob", "datasetExportJobArn", arn
    )
    assert final["status"] == "ACTIVE", final.get("failureReason")
    assert final["ingestionMode"] == (mode or "PUT")  # PUT unless told otherwise
    parts = sorted((exported["root"] / "out" / name).glob("part-*.csv"))
    return [list(csv.DictReader(part.open())) for part in parts]


def test_interactions_bulk_put_and_all(personalize, exported) -> None:  # type: ignore[no-untyped-def]
    (bulk,) = export(personalize, exported, "Interactions", "BULK")
    assert len(bulk) == 1200 and list(bulk[0]) == ["USER_ID", "ITEM_ID", "TIMESTAMP", "EVENT_TYPE"]
    (put,) = export(personalize, exported, "Interactions", None)
    assert [(r["USER_ID"], r["ITEM_ID"], r["EVENT_TYPE"]) for r in put] == [
        ("streamed-user", f"i{n}", "purchase") for n in range(3)
    ]
    every = export(personalize, exported, "Interactions", "ALL")
    assert sum(len(part) for part in every) == 1203


def test_items_all_keeps_the_newest_record_per_id(personalize, exported) -> None:  # type: ignore[no-untyped-def]
    (everything,) = export(personalize, exported, "Items", "ALL")
    by_id = {row["ITEM_ID"]: row["GENRE"] for row in everything}
    assert len(everything) == len(by_id) == 71
    assert by_id["i1"] == "changed" and by_id["new-item"] == "g9" and by_id["i2"] == "g2"
    (bulk,) = export(personalize, exported, "Items", "BULK")
    assert len(bulk) == 70 and {r["ITEM_ID"]: r["GENRE"] for r in bulk}["i1"] == "g1"


def test_bad_export_requests(personalize, exported) -> None:  # type: ignore[no-untyped-def]
    def refused(**request: Any) -> str:
        fields = {
            "jobName": unique("bad"),
            "datasetArn": exported["datasets"]["Items"],
            "roleArn": ROLE,
            "jobOutput": {"s3DataDestination": {"path": f"s3://{exported['bucket']}/out/"}},
            **request,
        }
        with pytest.raises(ClientError) as error:
            personalize.create_dataset_export_job(**fields)
        return error_code(error.value)

    missing = exported["datasets"]["Items"].replace("/ITEMS", "/USERS")
    assert refused(datasetArn=missing) == "ResourceNotFoundException"
    assert refused(jobOutput={"s3DataDestination": {"path": "s3://b/not-a-folder"}}) == (
        "InvalidInputException"
    )
    listed = personalize.list_dataset_export_jobs(datasetArn=exported["datasets"]["Items"])
    assert all(job["status"] == "ACTIVE" for job in listed["datasetExportJobs"])
    with pytest.raises(ClientError) as gone:
        personalize.describe_dataset_export_job(
            datasetExportJobArn=exported["datasets"]["Items"].replace(
                "dataset/", "dataset-export-job/"
            )
        )
    assert error_code(gone.value) == "ResourceNotFoundException"


def test_export_paths_are_folders() -> None:
    from openpersonalize.resources.batch_inference_jobs import check_output_path

    check_output_path("s3://bucket/folder/")
    with pytest.raises(Exception, match="folder"):
        check_output_path("s3://bucket/file.csv")
