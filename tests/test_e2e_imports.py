"""Dataset import jobs end to end: s3-local-root, a real S3-compatible endpoint (moto), bad data."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import pyarrow.parquet as pq
import pytest
from botocore.exceptions import ClientError
from helpers import (
    INTERACTIONS_SCHEMA,
    active_dataset,
    active_group,
    error_code,
    require_moto_server,
    run_import,
    schema,
)

from openpersonalize.testing.server import ServerProcess, free_port, wait_for_status
from openpersonalize.testing.synthetic import write_interactions_csv

HEADER = "USER_ID,ITEM_ID,TIMESTAMP,EVENT_TYPE,EVENT_VALUE\n"


def _rows(count: int, start: int = 0) -> str:
    return "".join(
        f"u{i % 50},i{i % 37},{1_700_000_000 + i},click,{i % 5}.5\n"
        for i in range(start, start + count)
    )


def _dataset_rows(server: ServerProcess, personalize, dataset_arn: str) -> int:  # type: ignore[no-untyped-def]
    """Rows in the Parquet files the dataset points at (read from the server's data dir)."""
    group, kind = dataset_arn.split(":dataset/")[1].split("/")
    directory = server.data_dir / "datasets" / group / kind
    return sum(pq.ParquetFile(path).metadata.num_rows for path in directory.rglob("*.parquet"))


@pytest.fixture()
def interactions(personalize) -> str:  # type: ignore[no-untyped-def]
    return active_dataset(personalize, active_group(personalize), schema(personalize))


def test_full_then_incremental_then_full(
    server,
    personalize,
    s3_root: Path,  # type: ignore[no-untyped-def]
    interactions: str,
) -> None:
    bucket = s3_root / "bucket"
    bucket.mkdir(exist_ok=True)
    (bucket / "first.csv").write_text(HEADER + _rows(1500))
    job = run_import(personalize, interactions, "s3://bucket/first.csv")
    assert job["status"] == "ACTIVE", job
    assert job["importMode"] == "FULL"
    assert _dataset_rows(server, personalize, interactions) == 1500
    (bucket / "more.csv").write_text(HEADER + _rows(1200, 5000))
    job = run_import(personalize, interactions, "s3://bucket/more.csv", mode="INCREMENTAL")
    assert job["status"] == "ACTIVE", job
    assert _dataset_rows(server, personalize, interactions) == 2700
    job = run_import(personalize, interactions, "s3://bucket/more.csv", mode="FULL")
    assert job["status"] == "ACTIVE", job
    assert _dataset_rows(server, personalize, interactions) == 1200
    jobs = personalize.list_dataset_import_jobs(datasetArn=interactions)["datasetImportJobs"]
    assert len(jobs) == 3 and {j["status"] for j in jobs} == {"ACTIVE"}


def test_prefix_import_reads_every_csv(
    server,
    personalize,
    s3_root: Path,  # type: ignore[no-untyped-def]
    interactions: str,
) -> None:
    folder = s3_root / "bucket" / "parts"
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(3):
        (folder / f"part-{index}.csv").write_text(HEADER + _rows(400, index * 400))
    job = run_import(personalize, interactions, "s3://bucket/parts/")
    assert job["status"] == "ACTIVE", job
    assert _dataset_rows(server, personalize, interactions) == 1200


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (HEADER + _rows(1500) + "u1,i1,yesterday,click,1.0\n", ["line 1502", "TIMESTAMP"]),
        ("USER_ID,ITEM_ID,EVENT_TYPE\n" + "u1,i1,click\n" * 1500, ["TIMESTAMP"]),
        (HEADER + _rows(10), ["at least 1000"]),
        (HEADER + _rows(1200) + ",i1,1700000000,click,1.0\n", ["line 1202", "USER_ID"]),
    ],
    ids=["bad-long", "missing-column", "too-few-rows", "missing-value"],
)
def test_bad_csv_fails_and_keeps_previous_data(
    server,
    personalize,
    s3_root: Path,  # type: ignore[no-untyped-def]
    interactions: str,
    body: str,
    expected: list[str],
) -> None:
    bucket = s3_root / "bucket"
    bucket.mkdir(exist_ok=True)
    (bucket / "good.csv").write_text(HEADER + _rows(1100))
    assert run_import(personalize, interactions, "s3://bucket/good.csv")["status"] == "ACTIVE"
    (bucket / "bad.csv").write_text(body)
    job = run_import(personalize, interactions, "s3://bucket/bad.csv")
    assert job["status"] == "CREATE FAILED"
    assert "bad.csv" in job["failureReason"] or "at least" in job["failureReason"]
    for fragment in expected:
        assert fragment in job["failureReason"], job["failureReason"]
    assert _dataset_rows(server, personalize, interactions) == 1100


def test_columns_outside_the_schema_are_ignored(
    server,
    personalize,
    s3_root: Path,  # type: ignore[no-untyped-def]
    interactions: str,
) -> None:
    # What pandas writes without index=False (an unnamed index column), an attribute the
    # schema does not name, and headers in another case: the service imports such files.
    bucket = s3_root / "bucket"
    bucket.mkdir(exist_ok=True)
    lines = _rows(1200).splitlines()
    header = "," + HEADER.strip().lower() + ",COLOR"
    body = header + "\n" + "".join(f"{n},{line},red\n" for n, line in enumerate(lines))
    (bucket / "pandas.csv").write_text(body)
    job = run_import(personalize, interactions, "s3://bucket/pandas.csv")
    assert job["status"] == "ACTIVE", job
    assert _dataset_rows(server, personalize, interactions) == 1200


def test_missing_file_and_bad_requests(personalize, interactions: str) -> None:  # type: ignore[no-untyped-def]
    job = run_import(personalize, interactions, "s3://bucket/does-not-exist.csv")
    assert job["status"] == "CREATE FAILED"
    assert "s3://bucket/does-not-exist.csv" in job["failureReason"]
    with pytest.raises(ClientError) as caught:
        personalize.create_dataset_import_job(
            jobName="first-incremental",
            datasetArn=interactions,
            dataSource={"dataLocation": "s3://bucket/x.csv"},
            importMode="INCREMENTAL",
        )
    assert error_code(caught.value) == "InvalidInputException"
    with pytest.raises(ClientError) as caught:
        personalize.create_dataset_import_job(
            jobName="bad-location",
            datasetArn=interactions,
            dataSource={"dataLocation": "ftp://bucket/x.csv"},
        )
    assert error_code(caught.value) == "InvalidInputException"
    with pytest.raises(ClientError) as caught:
        personalize.create_dataset_import_job(
            jobName="no-dataset",
            datasetArn="arn:aws:personalize:us-east-1:000000000000:dataset/none/INTERACTIONS",
            dataSource={"dataLocation": "s3://bucket/x.csv"},
        )
    assert error_code(caught.value) == "ResourceNotFoundException"


@pytest.fixture(scope="module")
def moto_s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real S3-compatible endpoint: moto's server, as a subprocess on loopback."""
    require_moto_server()
    port = free_port()
    log = open(tmp_path_factory.mktemp("moto") / "moto.log", "wb")  # noqa: SIM115
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    endpoint = f"http://127.0.0.1:{port}"
    probe = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="moto",
        aws_secret_access_key="moto",
    )
    deadline = time.monotonic() + 60
    while True:  # ready once it answers a real S3 call, not merely accepts connections
        try:
            probe.list_buckets()
            break
        except Exception:
            if time.monotonic() > deadline or process.poll() is not None:
                raise
            time.sleep(0.2)
    try:
        yield endpoint
    finally:
        process.terminate()
        process.wait(10)
        log.close()


def test_import_from_s3_compatible_endpoint(moto_s3: str, tmp_path: Path) -> None:
    credentials = {
        "AWS_ACCESS_KEY_ID": "moto",
        "AWS_SECRET_ACCESS_KEY": "moto",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    s3 = boto3.client(
        "s3",
        endpoint_url=moto_s3,
        region_name="us-east-1",
        aws_access_key_id="moto",
        aws_secret_access_key="moto",
    )
    s3.create_bucket(Bucket="training-data")
    csv_path = write_interactions_csv(tmp_path / "interactions.csv", 3000, seed=7)
    s3.upload_file(str(csv_path), "training-data", "events/2024/part-0.csv")
    s3.put_object(
        Bucket="training-data", Key="events/2024/part-1.csv", Body=(HEADER + _rows(500)).encode()
    )
    settings = {"s3_endpoint_url": moto_s3, "workers": "1"}
    # The server reads S3 with the default credential chain, here from its environment.
    with ServerProcess(tmp_path / "server", settings=settings, environment=credentials) as server:
        personalize = server.client()
        dataset = active_dataset(
            personalize, active_group(personalize), schema(personalize, INTERACTIONS_SCHEMA)
        )
        job = run_import(personalize, dataset, "s3://training-data/events/2024/part-0.csv")
        assert job["status"] == "ACTIVE", job
        assert _dataset_rows(server, personalize, dataset) == 3000
        job = run_import(personalize, dataset, "s3://training-data/events/2024/")
        assert job["status"] == "ACTIVE", job
        assert _dataset_rows(server, personalize, dataset) == 3500
        job = run_import(personalize, dataset, "s3://training-data/missing.csv")
        assert job["status"] == "CREATE FAILED"
        assert "s3://training-data/missing.csv" in job["failureReason"]
        job = run_import(personalize, dataset, "s3://no-such-bucket/x.csv")
        assert job["status"] == "CREATE FAILED" and "no-such-bucket" in job["failureReason"]


def test_restart_keeps_every_resource(tmp_path: Path) -> None:
    root = tmp_path / "s3"
    (root / "b").mkdir(parents=True)
    (root / "b" / "data.csv").write_text(HEADER + _rows(1000))
    settings = {"s3_local_root": str(root), "workers": "1"}
    server = ServerProcess(tmp_path / "server", settings=settings).start()
    try:
        personalize = server.client()
        group = active_group(personalize, tags=[{"tagKey": "k", "tagValue": "v"}])
        schema_arn = schema(personalize)
        dataset = active_dataset(personalize, group, schema_arn)
        job = run_import(personalize, dataset, "s3://b/data.csv")
        assert job["status"] == "ACTIVE"
        before = {
            "group": personalize.describe_dataset_group(datasetGroupArn=group)["datasetGroup"],
            "schema": personalize.describe_schema(schemaArn=schema_arn)["schema"],
            "dataset": personalize.describe_dataset(datasetArn=dataset)["dataset"],
            "job": job,
        }
        server.kill()  # abruptly: nothing gets a chance to flush on the way out
        server.start()
        personalize = server.client()
        after = {
            "group": personalize.describe_dataset_group(datasetGroupArn=group)["datasetGroup"],
            "schema": personalize.describe_schema(schemaArn=schema_arn)["schema"],
            "dataset": personalize.describe_dataset(datasetArn=dataset)["dataset"],
            "job": personalize.describe_dataset_import_job(
                datasetImportJobArn=job["datasetImportJobArn"]
            )["datasetImportJob"],
        }
        assert after == before
        assert personalize.list_tags_for_resource(resourceArn=group)["tags"] == [
            {"tagKey": "k", "tagValue": "v"}
        ]
        assert _dataset_rows(server, personalize, dataset) == 1000
        # and the restarted server still runs jobs
        again = run_import(personalize, dataset, "s3://b/data.csv", mode="INCREMENTAL")
        assert again["status"] == "ACTIVE"
        assert (
            wait_for_status(personalize.describe_dataset, "dataset", "datasetArn", dataset)[
                "status"
            ]
            == "ACTIVE"
        )
    finally:
        server.stop()


def test_single_type_unions_import_as_their_type(personalize, s3_root: Path) -> None:  # type: ignore[no-untyped-def]
    # Sample notebooks declare categorical fields as a union of one type: ["string"].
    items_schema = json.dumps(
        {
            "type": "record",
            "name": "Items",
            "namespace": "com.amazonaws.personalize.schema",
            "fields": [
                {"name": "ITEM_ID", "type": "string"},
                {"name": "GENRES", "type": ["string"], "categorical": True},
                {"name": "YEAR", "type": ["null", "int"]},
            ],
            "version": "1.0",
        }
    )
    group = active_group(personalize)
    items = active_dataset(personalize, group, schema(personalize, items_schema), "Items")
    bucket = s3_root / "bucket"
    bucket.mkdir(exist_ok=True)
    (bucket / "items-union.csv").write_text(
        "ITEM_ID,GENRES,YEAR\ni1,Comedy|Drama,1999\ni2,Drama,\n"
    )
    job = run_import(personalize, items, "s3://bucket/items-union.csv")
    assert job["status"] == "ACTIVE", job
    # ["string"] is not nullable, but an empty cell of a plain string is the empty string (the
    # VOD sample notebook imports titles without a year so); an empty ID is refused.
    (bucket / "items-union-empty.csv").write_text("ITEM_ID,GENRES,YEAR\ni1,,1999\n")
    job = run_import(personalize, items, "s3://bucket/items-union-empty.csv")
    assert job["status"] == "ACTIVE", job
    (bucket / "items-union-bad.csv").write_text("ITEM_ID,GENRES,YEAR\n,Drama,1999\n")
    job = run_import(personalize, items, "s3://bucket/items-union-bad.csv")
    assert job["status"] == "CREATE FAILED" and "ITEM_ID" in job["failureReason"], job
