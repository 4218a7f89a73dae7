"""Dataset import jobs: CSV files from s3:// into a dataset's Parquet data, in a worker process.

The new data is written beside the old and swapped in by one transaction, so a
failed import leaves the dataset exactly as it was.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from openpersonalize.context import Context
from openpersonalize.data.importer import ImportFailed, import_csv
from openpersonalize.data.sources import resolve_with_settings
from openpersonalize.errors import InvalidInputException, ResourceInUseException
from openpersonalize.jobs import runner
from openpersonalize.resources import datasets, lifecycle, schemas

KIND = lifecycle.Kind(
    "dataset-import-job", "datasetImportJobArn", "dataset import job", name_key="jobName"
)
# The service refuses Interactions imports smaller than this (Developer Guide, quotas).
MIN_INTERACTIONS_PER_IMPORT = 1000


def create(context: Context, request: dict[str, Any]) -> dict[str, Any]:
    location = request["dataSource"].get("dataLocation")
    if not location:
        raise InvalidInputException("dataSource.dataLocation is required.")
    if not location.startswith("s3://"):
        raise InvalidInputException(f"dataLocation {location} must be an s3:// location.")
    mode = request.get("importMode", "FULL")
    name = request["jobName"]
    arn = context.arn(KIND.resource_type, name)
    now = context.now()
    with context.database.transaction() as session:
        dataset = lifecycle.get(session, datasets.KIND, request["datasetArn"])
        lifecycle.require_usable(dataset, datasets.KIND)
        busy = lifecycle.child_in_flight(session, dataset.arn)
        if busy:
            raise ResourceInUseException(
                f"The dataset {dataset.arn} already has an import job in progress: {busy}"
            )
        if mode == "INCREMENTAL" and not dataset.attributes.get("files"):
            raise InvalidInputException(
                f"The dataset {dataset.arn} has no data yet; its first import must use "
                "importMode FULL."
            )
        attributes = {
            "datasetArn": dataset.arn,
            "dataSource": {"dataLocation": location},
            "roleArn": request.get("roleArn"),
            "importMode": mode,
            "publishAttributionMetricsToS3": request.get("publishAttributionMetricsToS3"),
        }
        lifecycle.create_pending(
            session,
            KIND,
            arn=arn,
            name=name,
            now=now,
            parent_arn=dataset.arn,
            attributes=attributes,
            job="dataset_import",
            tags=request.get("tags"),
        )
    return {"datasetImportJobArn": arn}


def _run(job: runner.JobHandle) -> None:
    context = job.context
    with context.database.transaction() as session:
        dataset_arn = lifecycle.get(session, KIND, job.resource_arn).attributes["datasetArn"]
    # An import may be asked for while its dataset is still CREATE PENDING.
    lifecycle.await_active(context, datasets.KIND, dataset_arn)
    with context.database.transaction() as session:
        row = lifecycle.get(session, KIND, job.resource_arn)
        lifecycle.set_status(row, lifecycle.CREATE_IN_PROGRESS, context.now())
        dataset = lifecycle.get(session, datasets.KIND, row.attributes["datasetArn"])
        schema = schemas.load(lifecycle.get(session, schemas.KIND, dataset.attributes["schemaArn"]))
        dataset_type = dataset.attributes["datasetType"]
        location = row.attributes["dataSource"]["dataLocation"]
        mode = row.attributes["importMode"]
    job.progress(0.0, f"importing {location} into {dataset.arn} ({mode})")
    key = f"{datasets.data_key(dataset.arn)}/{row.name}"
    scratch = context.data_dir / "scratch" / f"import-{job.job_id}"
    output = context.data_dir / "scratch" / f"import-{job.job_id}-parquet"
    context.blobs.delete(key)  # a retried attempt starts clean
    try:
        sources = resolve_with_settings(location, context.settings, scratch)
        result = import_csv(
            sources, schema, output, progress=lambda fraction: job.progress(fraction, location)
        )
        if dataset_type == "Interactions" and result.row_count < MIN_INTERACTIONS_PER_IMPORT:
            raise ImportFailed(
                f"{location} has {result.row_count} interaction records; an Interactions import "
                f"needs at least {MIN_INTERACTIONS_PER_IMPORT}."
            )
        if result.ignored_columns:  # the service skips them too; say which
            job.progress(
                1.0,
                f"{job.resource_arn}: ignored columns the schema does not name: "
                + ", ".join(result.ignored_columns[:20]),
            )
        context.blobs.put_dir(output, key)
        files = [f"{key}/{Path(path).name}" for path in result.files]
        replaced = _swap_in(context, job.resource_arn, dataset.arn, files, result.row_count)
    except BaseException:
        context.blobs.delete(key)
        raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        shutil.rmtree(output, ignore_errors=True)
    for old_key in replaced:
        context.blobs.delete(old_key)
    job.progress(1.0, f"imported {result.row_count} rows into {dataset.arn}")
    from openpersonalize.resources import metric_attributions  # it imports this module

    metric_attributions.publish_import(context, job.resource_arn)  # never raises


def _swap_in(
    context: Context, job_arn: str, dataset_arn: str, files: list[str], row_count: int
) -> set[str]:
    """Point the dataset at the new files and mark the job ACTIVE, in one transaction."""
    now = context.now()
    with context.database.transaction() as session:
        row = lifecycle.get(session, KIND, job_arn)
        dataset = lifecycle.get(session, datasets.KIND, dataset_arn)
        old_files = list(dataset.attributes.get("files", []))
        if row.attributes["importMode"] == "FULL":
            new_files, total, replaced = files, row_count, {_parent(f) for f in old_files}
        else:
            new_files = old_files + files
            total = dataset.attributes.get("rowCount", 0) + row_count
            replaced = set()
        lifecycle.update_attributes(dataset, now, files=new_files, rowCount=total)
        lifecycle.update_attributes(row, now, rowCount=row_count)
        lifecycle.set_status(row, lifecycle.ACTIVE, now)
    return replaced - {_parent(f) for f in files}


def _parent(path: str) -> str:
    return path.rsplit("/", 1)[0]


def _fail(context: Context, arn: str, reason: str) -> None:
    with context.database.transaction() as session:
        row = lifecycle.find(session, arn)
        if row is not None and row.status in lifecycle.IN_FLIGHT:
            lifecycle.set_status(row, lifecycle.CREATE_FAILED, context.now(), reason)


runner.register("dataset_import", _run, _fail)


describe = lifecycle.describe_handler(KIND, "datasetImportJob")
list_ = lifecycle.list_handler(KIND, "datasetImportJobs", parent=datasets.KIND)
