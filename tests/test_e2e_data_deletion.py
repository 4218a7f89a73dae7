"""Data deletion jobs end to end: users named in a CSV leave the datasets, the streamed data
and the answers of an already deployed campaign; every other user's data and answers stay.

Seeded data with two taste groups (even users take a-items, odd users b-items), so a user's
personal list differs from the list an unknown user gets.
"""

from __future__ import annotations

import csv
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from botocore.exceptions import ClientError
from helpers import (
    active_campaign,
    avro_schema,
    error_code,
    run_import,
    trained_version,
    unique,
)

from openpersonalize.testing.server import wait_for_status

ROLE = "arn:aws:iam::000000000000:role/PersonalizeRole"
USERS, EVENTS_PER_USER = 60, 20
DELETED = ["user-000", "user-001", "user-002"]
KEPT = ["user-003", "user-010", "user-011", "user-040"]
DONE = ("COMPLETED", "FAILED")
SCHEMAS = {
    "Interactions": avro_schema(
        "Interactions", ("USER_ID", "string"), ("ITEM_ID", "string"), ("TIMESTAMP", "long")
    ),
    "Users": avro_schema(
        "Users",
        ("USER_ID", "string"),
        {"name": "PLAN", "type": "string", "categorical": True},
    ),
}


def write_data(folder: Path) -> None:
    rng = np.random.default_rng(5)
    folder.mkdir(parents=True)
    rows = ["USER_ID,ITEM_ID,TIMESTAMP"]
    for number in range(USERS):
        taste = "a" if number % 2 == 0 else "b"
        for event in range(EVENTS_PER_USER):
            side = taste if rng.random() < 0.9 else ("b" if taste == "a" else "a")
            item = f"{side}{int(rng.integers(0, 15)):02d}"
            rows.append(f"user-{number:03d},{item},{1_700_000_000 + number * 100 + event}")
    (folder / "interactions.csv").write_text("\n".join(rows) + "\n")
    users = ["USER_ID,PLAN"] + [f"user-{n:03d},plan{n % 3}" for n in range(USERS)]
    (folder / "users.csv").write_text("\n".join(users) + "\n")


def deletion_job(personalize, group: str, location: str) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    arn = personalize.create_data_deletion_job(
        jobName=unique("delete"),
        datasetGroupArn=group,
        dataSource={"dataLocation": location},
        roleArn=ROLE,
    )["dataDeletionJobArn"]
    return wait_for_status(
        personalize.describe_data_deletion_job,
        "dataDeletionJob",
        "dataDeletionJobArn",
        arn,
        statuses=DONE,
    )


def recommendations(runtime, campaign: str, user: str) -> list[str]:  # type: ignore[no-untyped-def]
    answer = runtime.get_recommendations(campaignArn=campaign, userId=user, numResults=10)
    return [entry["itemId"] for entry in answer["itemList"]]


def export(personalize, dataset: str, bucket: str, s3_root: Path) -> list[dict[str, str]]:  # type: ignore[no-untyped-def]
    name = unique("export")
    arn = personalize.create_dataset_export_job(
        jobName=name,
        datasetArn=dataset,
        ingestionMode="ALL",
        roleArn=ROLE,
        jobOutput={"s3DataDestination": {"path": f"s3://{bucket}/exports/"}},
    )["datasetExportJobArn"]
    final = wait_for_status(
        personalize.describe_dataset_export_job, "datasetExportJob", "datasetExportJobArn", arn
    )
    assert final["status"] == "ACTIVE", final.get("failureReason")
    rows: list[dict[str, str]] = []
    for part in sorted((s3_root / bucket / "exports" / name).glob("part-*.csv")):
        with part.open() as handle:
            rows += list(csv.DictReader(handle))
    return rows


@pytest.fixture(scope="module")
def deleted(personalize, server, s3_root) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    bucket = unique("deletion")
    write_data(s3_root / bucket)
    group = personalize.create_dataset_group(name=unique("dg"))["datasetGroupArn"]
    datasets = {}
    for kind, text in SCHEMAS.items():
        schema = personalize.create_schema(name=unique("schema"), schema=text)["schemaArn"]
        datasets[kind] = personalize.create_dataset(
            name=unique("ds"), datasetGroupArn=group, schemaArn=schema, datasetType=kind
        )["datasetArn"]
        done = run_import(personalize, datasets[kind], f"s3://{bucket}/{kind.lower()}.csv")
        assert done["status"] == "ACTIVE", done.get("failureReason")
    tracker = personalize.create_event_tracker(name=unique("tracker"), datasetGroupArn=group)
    events = server.client("personalize-events")
    sent_at = datetime(2024, 3, 1, tzinfo=UTC)
    for user, count in (("user-000", 3), ("user-010", 2)):
        events.put_events(
            trackingId=tracker["trackingId"],
            userId=user,
            sessionId=f"session-{user}",
            eventList=[
                {"eventType": "click", "itemId": f"a{n:02d}", "sentAt": sent_at}
                for n in range(count)
            ],
        )
    events.put_users(
        datasetArn=datasets["Users"], users=[{"userId": "user-001", "properties": '{"plan": "x"}'}]
    )
    version = trained_version(personalize, group, "aws-user-personalization")
    campaign = active_campaign(personalize, version)
    runtime = server.client("personalize-runtime")
    users = DELETED + KEPT + ["nobody-at-all"]
    before = {user: recommendations(runtime, campaign, user) for user in users}
    # The input: a folder with CSV files in sub-folders; other files are not read.
    (s3_root / bucket / "deletion" / "one").mkdir(parents=True)
    (s3_root / bucket / "deletion" / "one" / "users.csv").write_text(
        "USER_ID\nuser-000\nuser-001\n"
    )
    (s3_root / bucket / "deletion" / "two" / "deep").mkdir(parents=True)
    (s3_root / bucket / "deletion" / "two" / "deep" / "more.csv").write_text("USER_ID\nuser-002\n")
    (s3_root / bucket / "deletion" / "notes.txt").write_text("USER_ID\nuser-003\n")
    job = deletion_job(personalize, group, f"s3://{bucket}/deletion/")
    return {
        "group": group,
        "bucket": bucket,
        "datasets": datasets,
        "campaign": campaign,
        "job": job,
        "before": before,
        "runtime": runtime,
    }


def test_the_job_completes_and_counts_the_records(deleted) -> None:  # type: ignore[no-untyped-def]
    job = deleted["job"]
    assert job["status"] == "COMPLETED", job.get("failureReason")
    # 3 users x 20 interactions, their 3 Users rows, user-000's 3 streamed events and
    # user-001's PutUsers record.
    assert job["numDeleted"] == 3 * EVENTS_PER_USER + 3 + 3 + 1
    assert job["datasetGroupArn"] == deleted["group"]
    assert job["dataSource"]["dataLocation"].endswith("/deletion/")


def test_deleted_users_get_what_an_unknown_user_gets(deleted) -> None:  # type: ignore[no-untyped-def]
    runtime, campaign, before = deleted["runtime"], deleted["campaign"], deleted["before"]
    unknown = before["nobody-at-all"]
    assert all(before[user] != unknown for user in DELETED), "the data should be personal"
    # The hot path re-reads the deleted users within about a second.
    deadline = time.monotonic() + 10
    while recommendations(runtime, campaign, DELETED[0]) != unknown:
        assert time.monotonic() < deadline, "the deleted user is still answered personally"
        time.sleep(0.2)
    for user in DELETED:
        assert recommendations(runtime, campaign, user) == unknown, user


def test_other_users_answers_are_unchanged(deleted) -> None:  # type: ignore[no-untyped-def]
    runtime, campaign, before = deleted["runtime"], deleted["campaign"], deleted["before"]
    for user in KEPT:
        assert recommendations(runtime, campaign, user) == before[user], user


def test_the_data_is_gone_and_nothing_else_is(personalize, deleted, s3_root) -> None:  # type: ignore[no-untyped-def]
    bucket, datasets = deleted["bucket"], deleted["datasets"]
    interactions = export(personalize, datasets["Interactions"], bucket, s3_root)
    assert not [row for row in interactions if row["USER_ID"] in DELETED]
    # Everyone else's imported rows, plus user-010's two streamed events.
    assert len(interactions) == (USERS - 3) * EVENTS_PER_USER + 2
    users = export(personalize, datasets["Users"], bucket, s3_root)
    assert sorted(row["USER_ID"] for row in users) == [f"user-{n:03d}" for n in range(3, USERS)]


def test_bad_input_fails_and_says_where(personalize, deleted, s3_root) -> None:  # type: ignore[no-untyped-def]
    bucket, group = deleted["bucket"], deleted["group"]
    (s3_root / bucket / "bad-header.csv").write_text("CUSTOMER\nuser-020\n")
    job = deletion_job(personalize, group, f"s3://{bucket}/bad-header.csv")
    assert job["status"] == "FAILED"
    assert "bad-header.csv" in job["failureReason"] and "USER_ID" in job["failureReason"]
    (s3_root / bucket / "empty-id.csv").write_text('USER_ID\nuser-020\n""\n')
    job = deletion_job(personalize, group, f"s3://{bucket}/empty-id.csv")
    assert job["status"] == "FAILED"
    assert "empty-id.csv row 3" in job["failureReason"], job["failureReason"]
    job = deletion_job(personalize, group, f"s3://{bucket}/no-such-file.csv")
    assert job["status"] == "FAILED" and "no-such-file.csv" in job["failureReason"]
    # user-020 was in none of the failed jobs' effects.
    answer = deleted["runtime"].get_recommendations(
        campaignArn=deleted["campaign"], userId="user-020", numResults=10
    )
    assert [entry["itemId"] for entry in answer["itemList"]] != deleted["before"]["nobody-at-all"]


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"dataSource": {}}, "InvalidInputException"),
        ({"dataSource": {"dataLocation": "/tmp/users.csv"}}, "InvalidInputException"),
        (
            {"datasetGroupArn": "arn:aws:personalize:us-east-1:000000000000:dataset-group/none"},
            "ResourceNotFoundException",
        ),
        ({"roleArn": "not-a-role"}, "InvalidInputException"),
    ],
)
def test_bad_requests_are_refused(personalize, deleted, change, code) -> None:  # type: ignore[no-untyped-def]
    request = {
        "jobName": unique("refused"),
        "datasetGroupArn": deleted["group"],
        "dataSource": {"dataLocation": f"s3://{deleted['bucket']}/deletion/"},
        "roleArn": ROLE,
        **change,
    }
    with pytest.raises(ClientError) as raised:
        personalize.create_data_deletion_job(**request)
    assert error_code(raised.value) == code
    names = [job["jobName"] for job in personalize.list_data_deletion_jobs()["dataDeletionJobs"]]
    assert request["jobName"] not in names


def test_list_is_newest_first_and_pages_by_hand(personalize, deleted) -> None:  # type: ignore[no-untyped-def]
    group = deleted["group"]
    listed = personalize.list_data_deletion_jobs(datasetGroupArn=group)["dataDeletionJobs"]
    assert listed[-1]["dataDeletionJobArn"] == deleted["job"]["dataDeletionJobArn"]
    created = [job["creationDateTime"] for job in listed]
    assert created == sorted(created, reverse=True)
    pages, token = [], None
    while True:  # no botocore paginator for this list: users page with nextToken
        page = personalize.list_data_deletion_jobs(
            datasetGroupArn=group, maxResults=1, **({"nextToken": token} if token else {})
        )
        pages += page["dataDeletionJobs"]
        token = page.get("nextToken")
        if not token:
            break
    assert [job["dataDeletionJobArn"] for job in pages] == [
        job["dataDeletionJobArn"] for job in listed
    ]
    assert {job["status"] for job in listed} <= set(DONE)


def test_a_group_with_finished_deletion_jobs_can_be_deleted(personalize, deleted) -> None:  # type: ignore[no-untyped-def]
    group = personalize.create_dataset_group(name=unique("dg"))["datasetGroupArn"]
    job = deletion_job(personalize, group, f"s3://{deleted['bucket']}/deletion/")
    assert job["status"] == "COMPLETED" and job["numDeleted"] == 0
    personalize.delete_dataset_group(datasetGroupArn=group)
    deadline = time.monotonic() + 30
    with pytest.raises(ClientError) as raised:
        while time.monotonic() < deadline:
            personalize.describe_dataset_group(datasetGroupArn=group)
            time.sleep(0.1)
    assert error_code(raised.value) == "ResourceNotFoundException"
