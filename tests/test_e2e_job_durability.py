"""The newer job kinds survive a crash: dataset export, batch segment and data deletion jobs
asked for just before the server is killed (kill -9) finish after a restart, with the same
results they would have had, or fail with a reason; none is left pending or half done.

Each test has its own server, since it kills it. Whether a job was still queued, half run or
already done when the server died depends on timing; the outcome may not.
"""

from __future__ import annotations

import csv
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from helpers import avro_schema, run_import, trained_version, unique
from test_e2e_segments import SCHEMAS, write_data

from openpersonalize.testing.server import ServerProcess, wait_for_status

ROLE = "arn:aws:iam::000000000000:role/PersonalizeRole"
EVENTS_PER_USER = 14  # test_e2e_segments.write_data


def _group(personalize, bucket: str) -> dict[str, str]:  # type: ignore[no-untyped-def]
    group = personalize.create_dataset_group(name=unique("dg"))["datasetGroupArn"]
    arns = {"group": group}
    for kind, text in SCHEMAS.items():
        schema = personalize.create_schema(name=unique("schema"), schema=text)["schemaArn"]
        arns[kind] = personalize.create_dataset(
            name=unique("ds"), datasetGroupArn=group, schemaArn=schema, datasetType=kind
        )["datasetArn"]
        done = run_import(personalize, arns[kind], f"s3://{bucket}/{kind.lower()}.csv")
        assert done["status"] == "ACTIVE", done.get("failureReason")
    return arns


def _start_jobs(personalize, bucket: str, s3_root: Path) -> dict[str, str]:  # type: ignore[no-untyped-def]
    trained, cleaned = _group(personalize, bucket), _group(personalize, bucket)
    version = trained_version(personalize, trained["group"], "aws-item-affinity")
    (s3_root / bucket / "queries").mkdir()
    queries = "".join(json.dumps({"itemId": f"g{g}-00"}) + "\n" for g in range(3))
    (s3_root / bucket / "queries" / "items.json").write_text(queries)
    (s3_root / bucket / "forget.csv").write_text("USER_ID\nuser-000\nuser-001\n")
    return {
        "export": personalize.create_dataset_export_job(
            jobName=unique("export"),
            datasetArn=trained["Interactions"],
            ingestionMode="BULK",
            roleArn=ROLE,
            jobOutput={"s3DataDestination": {"path": f"s3://{bucket}/exports/"}},
        )["datasetExportJobArn"],
        "segments": personalize.create_batch_segment_job(
            jobName=unique("segments"),
            solutionVersionArn=version,
            jobInput={"s3DataSource": {"path": f"s3://{bucket}/queries/"}},
            jobOutput={"s3DataDestination": {"path": f"s3://{bucket}/segments/"}},
            roleArn=ROLE,
        )["batchSegmentJobArn"],
        "deletion": personalize.create_data_deletion_job(
            jobName=unique("deletion"),
            datasetGroupArn=cleaned["group"],
            dataSource={"dataLocation": f"s3://{bucket}/forget.csv"},
            roleArn=ROLE,
        )["dataDeletionJobArn"],
    }


def _finished(personalize, jobs: dict[str, str]) -> dict[str, dict[str, Any]]:  # type: ignore[no-untyped-def]
    final = {
        "export": wait_for_status(
            personalize.describe_dataset_export_job,
            "datasetExportJob",
            "datasetExportJobArn",
            jobs["export"],
        ),
        "segments": wait_for_status(
            personalize.describe_batch_segment_job,
            "batchSegmentJob",
            "batchSegmentJobArn",
            jobs["segments"],
        ),
        "deletion": wait_for_status(
            personalize.describe_data_deletion_job,
            "dataDeletionJob",
            "dataDeletionJobArn",
            jobs["deletion"],
            statuses=("COMPLETED", "FAILED"),
        ),
    }
    for kind, job in final.items():
        assert job["status"] in ("ACTIVE", "COMPLETED", "CREATE FAILED", "FAILED"), (kind, job)
        if "FAILED" in job["status"]:
            assert job.get("failureReason"), (kind, job)
    return final


def test_jobs_asked_for_before_a_crash_finish_after_the_restart(tmp_path: Path) -> None:
    s3_root = tmp_path / "s3"
    bucket = "durable"
    write_data(s3_root / bucket)
    server = ServerProcess(
        tmp_path / "server",
        settings={"s3_local_root": str(s3_root), "job_lease_seconds": "3", "workers": "1"},
    ).start()
    try:
        jobs = _start_jobs(server.client(), bucket, s3_root)
        server.kill()  # kill -9 right after the jobs were acknowledged
        server.start()
        final = _finished(server.client(), jobs)
    finally:
        server.stop()
    assert final["export"]["status"] == "ACTIVE", final["export"].get("failureReason")
    export_name = final["export"]["jobName"]
    parts = sorted((s3_root / bucket / "exports" / export_name).glob("part-*.csv"))
    rows = [row for part in parts for row in csv.DictReader(part.open())]
    assert len(rows) == len({tuple(row.values()) for row in rows})  # a retry wrote no twins
    imported = (s3_root / bucket / "interactions.csv").read_text().splitlines()[1:]
    assert len(rows) == len(set(imported))

    assert final["segments"]["status"] == "ACTIVE", final["segments"].get("failureReason")
    lines = (s3_root / bucket / "segments" / "items.json.out").read_text().splitlines()
    assert [json.loads(line)["input"]["itemId"] for line in lines] == [f"g{g}-00" for g in range(3)]
    assert all(len(json.loads(line)["output"]["recommendedUsers"]) == 25 for line in lines)

    deletion = final["deletion"]
    assert deletion["status"] == "COMPLETED", deletion.get("failureReason")
    # Counted once even when the job ran twice: 2 users' interactions and Users rows.
    assert deletion["numDeleted"] == 2 * EVENTS_PER_USER + 2


def _attribution_reports(folder: Path) -> float:
    """The streamed events' SAMPLECOUNT over every PUT report written so far."""
    total = 0.0
    for path in folder.glob("AggregatedAttributionMetrics - PUT - *.csv"):
        with path.open() as handle:
            total += sum(float(row["VALUE"]) for row in csv.DictReader(handle))
    return total


def test_streamed_events_are_reported_once_across_a_crash(tmp_path: Path) -> None:
    s3_root = tmp_path / "s3"
    rows = ["USER_ID,ITEM_ID,TIMESTAMP,EVENT_TYPE"]
    rows += [f"u{n % 50},i{n % 40},{1_700_000_000 + n},click" for n in range(1000)]
    (s3_root / "durable").mkdir(parents=True)
    (s3_root / "durable" / "interactions.csv").write_text("\n".join(rows) + "\n")
    server = ServerProcess(
        tmp_path / "server",
        settings={"s3_local_root": str(s3_root), "job_lease_seconds": "3", "workers": "1"},
    ).start()
    try:
        personalize = server.client()
        group = personalize.create_dataset_group(name=unique("dg"))["datasetGroupArn"]
        schema = personalize.create_schema(
            name=unique("schema"),
            schema=avro_schema(
                "Interactions",
                ("USER_ID", "string"),
                ("ITEM_ID", "string"),
                ("TIMESTAMP", "long"),
                ("EVENT_TYPE", "string"),
            ),
        )["schemaArn"]
        dataset = personalize.create_dataset(
            name=unique("ds"), datasetGroupArn=group, schemaArn=schema, datasetType="Interactions"
        )["datasetArn"]
        assert run_import(personalize, dataset, "s3://durable/interactions.csv")["status"] == (
            "ACTIVE"
        )
        personalize.create_metric_attribution(
            name=unique("attribution"),
            datasetGroupArn=group,
            metrics=[{"eventType": "click", "metricName": "CLICKS", "expression": "SAMPLECOUNT()"}],
            metricsOutputConfig={
                "roleArn": ROLE,
                "s3DataDestination": {"path": "s3://durable/reports/"},
            },
        )
        tracker = personalize.create_event_tracker(name=unique("tracker"), datasetGroupArn=group)
        events = server.client("personalize-events")
        for batch in range(3):
            events.put_events(
                trackingId=tracker["trackingId"],
                userId=f"u{batch}",
                sessionId=f"s{batch}",
                eventList=[
                    {
                        "eventType": "click",
                        "itemId": f"i{n}",
                        "sentAt": datetime(2024, 5, 1, tzinfo=UTC),
                        "metricAttribution": {"eventAttributionSource": "newsletter"},
                    }
                    for n in range(10)
                ],
            )
        server.kill()  # the acknowledged events are not reported yet (the newest 2 s wait)
        server.start()
        folder = s3_root / "durable" / "reports"
        deadline = time.monotonic() + 60
        while _attribution_reports(folder) < 30 and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(5)  # a report run twice would show by now
    finally:
        server.stop()
    assert _attribution_reports(folder) == 30.0
