"""The blob store on a real S3-compatible endpoint (moto's server): datasets and models live in
the bucket, not in the data directory, and importing, training (full and UPDATE), serving and
deleting all still work through boto3."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import boto3
from helpers import active_dataset, active_group, run_import, schema
from test_e2e_campaigns import deploy
from test_e2e_imports import moto_s3  # noqa: F401 - a fixture
from test_e2e_solutions import POPULARITY, UP, create_solution, interactions_csv, train

from openpersonalize.testing.server import ServerProcess, free_port

CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "moto",
    "AWS_SECRET_ACCESS_KEY": "moto",
    "AWS_DEFAULT_REGION": "us-east-1",
}
STORE, PREFIX = "store", "openpersonalize"


def s3_client(endpoint: str):  # type: ignore[no-untyped-def]
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="moto",
        aws_secret_access_key="moto",
    )


def keys_under(s3, prefix: str) -> list[str]:  # type: ignore[no-untyped-def]
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=STORE, Prefix=f"{PREFIX}/{prefix}")
    return [item["Key"] for page in pages for item in page.get("Contents", [])]


def eventually(condition: Callable[[], bool], failure: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, failure
        time.sleep(0.2)


def test_datasets_and_models_live_in_the_bucket(moto_s3: str, tmp_path: Path) -> None:  # noqa: F811
    s3 = s3_client(moto_s3)
    s3.create_bucket(Bucket=STORE)
    s3.create_bucket(Bucket="input")
    s3.put_object(Bucket="input", Key="interactions.csv", Body=interactions_csv().encode())
    settings = {
        "s3_endpoint_url": moto_s3,
        "blob_store": f"s3://{STORE}/{PREFIX}",
        "workers": "1",
    }
    with ServerProcess(tmp_path / "server", settings=settings, environment=CREDENTIALS) as server:
        personalize = server.client()
        group = active_group(personalize)
        dataset = active_dataset(personalize, group, schema(personalize))
        assert run_import(personalize, dataset, "s3://input/interactions.csv")["status"] == "ACTIVE"
        first = keys_under(s3, "datasets/")
        assert first and all(key.endswith(".parquet") for key in first)
        # A FULL import replaces the data: the old import's objects go (just after it is ACTIVE).
        assert run_import(personalize, dataset, "s3://input/interactions.csv")["status"] == "ACTIVE"
        eventually(lambda: not set(first) & set(keys_under(s3, "datasets/")), "old import kept")
        assert keys_under(s3, "datasets/")

        solution = create_solution(personalize, {"group": group}, recipeArn=UP)
        version = train(personalize, solution)
        assert version["status"] == "ACTIVE", version
        version_id = version["solutionVersionArn"].rsplit("/", 1)[1]
        model_keys = keys_under(s3, "models/")
        assert any(f"/{version_id}/model/" in key for key in model_keys)
        assert not any("/hpo/" in key for key in model_keys)  # HPO inputs are removed after
        # UPDATE reads the previous model back from the bucket.
        update = train(personalize, solution, trainingMode="UPDATE")
        assert update["status"] == "ACTIVE", update

        campaign = deploy(personalize, update["solutionVersionArn"])
        runtime = server.client("personalize-runtime")
        items = runtime.get_recommendations(campaignArn=campaign, userId="u1", numResults=10)
        assert len(items["itemList"]) == 10

        # Nothing of the datasets or models is kept in the data directory, only cached copies.
        assert not (server.data_dir / "datasets").exists()
        assert not (server.data_dir / "models").exists()
        assert list((server.data_dir / "cache").rglob("*.npy"))

        popularity = create_solution(personalize, {"group": group}, recipeArn=POPULARITY)
        assert train(personalize, popularity)["status"] == "ACTIVE"
        name = popularity.rsplit("/", 1)[1]
        assert keys_under(s3, f"models/{name}/")
        personalize.delete_solution(solutionArn=popularity)
        eventually(lambda: not keys_under(s3, f"models/{name}/"), "deleted solution's models kept")


def test_serve_refuses_a_blob_store_without_its_bucket(moto_s3: str, tmp_path: Path) -> None:  # noqa: F811
    command = [sys.executable, "-m", "openpersonalize.cli", "serve", "--port", str(free_port())]
    command += ["--data-dir", str(tmp_path), "--blob-store", "s3://no-such-bucket/x"]
    command += ["--s3-endpoint-url", moto_s3]
    environment = {**os.environ, **CREDENTIALS}
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, env=environment)
    assert result.returncode == 2
    assert "no-such-bucket" in result.stderr
