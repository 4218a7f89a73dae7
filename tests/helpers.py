"""Small steps the end-to-end tests share (each a real boto3 call)."""

from __future__ import annotations

import importlib.util
import json
import os
import uuid
from typing import Any

import pyarrow as pa
import pytest

from openpersonalize.data.importer import read_dataset
from openpersonalize.store.blobs import BlobStore
from openpersonalize.testing.server import wait_for_status
from openpersonalize.testing.synthetic import INTERACTIONS_SCHEMA_JSON

INTERACTIONS_SCHEMA = (
    INTERACTIONS_SCHEMA_JSON  # USER_ID, ITEM_ID, TIMESTAMP, EVENT_TYPE, EVENT_VALUE
)
ITEMS_SCHEMA = json.dumps(
    {
        "type": "record",
        "name": "Items",
        "namespace": "com.amazonaws.personalize.schema",
        "fields": [
            {"name": "ITEM_ID", "type": "string"},
            {"name": "GENRES", "type": ["null", "string"], "categorical": True},
            {"name": "PRICE", "type": "float"},
        ],
        "version": "1.0",
    }
)


def avro_schema(name: str, *fields: tuple[str, Any] | dict[str, Any]) -> str:
    """A Personalize Avro schema text: fields as (name, type) pairs or whole field objects."""
    return json.dumps(
        {
            "type": "record",
            "name": name,
            "namespace": "com.amazonaws.personalize.schema",
            "fields": [f if isinstance(f, dict) else {"name": f[0], "type": f[1]} for f in fields],
            "version": "1.0",
        }
    )


def read_files(files: list[str]) -> pa.Table:
    """The Parquet files an import wrote (absolute paths), as read_dataset reads them."""
    return read_dataset(BlobStore("/"), [path.lstrip("/") for path in files])


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def active_group(client: Any, name: str | None = None, **extra: Any) -> str:
    arn = client.create_dataset_group(name=name or unique("dg"), **extra)["datasetGroupArn"]
    status = wait_for_status(client.describe_dataset_group, "datasetGroup", "datasetGroupArn", arn)
    assert status["status"] == "ACTIVE", status
    return arn


def schema(client: Any, text: str = INTERACTIONS_SCHEMA, **extra: Any) -> str:
    return client.create_schema(name=unique("schema"), schema=text, **extra)["schemaArn"]


def active_dataset(
    client: Any, group_arn: str, schema_arn: str, dataset_type: str = "Interactions"
) -> str:
    arn = client.create_dataset(
        name=unique("ds"), datasetGroupArn=group_arn, schemaArn=schema_arn, datasetType=dataset_type
    )["datasetArn"]
    status = wait_for_status(client.describe_dataset, "dataset", "datasetArn", arn)
    assert status["status"] == "ACTIVE", status
    return arn


def run_import(
    client: Any, dataset_arn: str, location: str, mode: str = "FULL", timeout: float = 300.0
) -> dict[str, Any]:
    arn = client.create_dataset_import_job(
        jobName=unique("import"),
        datasetArn=dataset_arn,
        dataSource={"dataLocation": location},
        importMode=mode,
    )["datasetImportJobArn"]
    return wait_for_status(
        client.describe_dataset_import_job,
        "datasetImportJob",
        "datasetImportJobArn",
        arn,
        timeout=timeout,
    )


def trained_version(client: Any, group_arn: str, recipe: str, **solution: Any) -> str:
    """A solution of `recipe` in the group and its first version, trained to ACTIVE."""
    solution_arn = client.create_solution(
        name=unique("sol"),
        datasetGroupArn=group_arn,
        recipeArn=f"arn:aws:personalize:::recipe/{recipe}",
        **solution,
    )["solutionArn"]
    version = client.create_solution_version(solutionArn=solution_arn)["solutionVersionArn"]
    final = wait_for_status(
        client.describe_solution_version,
        "solutionVersion",
        "solutionVersionArn",
        version,
        timeout=300,
    )
    assert final["status"] == "ACTIVE", final.get("failureReason")
    return version


def active_campaign(client: Any, version_arn: str, **config: Any) -> str:
    """A campaign of the version, waited for until ACTIVE."""
    arn = client.create_campaign(name=unique("camp"), solutionVersionArn=version_arn, **config)[
        "campaignArn"
    ]
    status = wait_for_status(client.describe_campaign, "campaign", "campaignArn", arn)
    assert status["status"] == "ACTIVE", status
    return arn


def error_code(error: Exception) -> str:
    return error.response["Error"]["Code"]  # type: ignore[attr-defined]


def require_service(available: bool, reason: str) -> None:
    """Skip a test whose service (a binary, a package) is missing; under CI=true fail instead,
    because `make test` installs everything its tests need there.

    The one rule for every such test. Tests of the real data sets in ../shared/datasets are
    the exception: they skip even in CI, where a clean clone has no ../shared.
    """
    if available:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: `make test` should have installed it)")
    pytest.skip(reason)


def require_moto_server() -> None:
    """moto's S3-compatible server (`python -m moto.server`), the tests' real S3 endpoint."""
    require_service(
        all(importlib.util.find_spec(name) is not None for name in ("moto", "flask", "flask_cors")),
        "moto's server is not installed (pip install 'moto[server]')",
    )
