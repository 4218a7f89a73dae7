"""Datasets: one per type in a dataset group, bound to a schema, holding imported Parquet data."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.orm import Session

from openpersonalize import arns
from openpersonalize.context import Context
from openpersonalize.data.schema import check_schema_for_dataset, normalize_dataset_type
from openpersonalize.errors import (
    InvalidInputException,
    ResourceAlreadyExistsException,
    ResourceInUseException,
)
from openpersonalize.jobs import runner
from openpersonalize.resources import dataset_groups, lifecycle, schemas
from openpersonalize.store.database import ResourceRow

KIND = lifecycle.Kind("dataset", "datasetArn", "dataset", name_scoped_to_parent=True)
UPDATE_PENDING, UPDATE_IN_PROGRESS = "UPDATE PENDING", "UPDATE IN_PROGRESS"


def data_key(dataset_arn: str) -> str:
    """Where a dataset's Parquet files live in the blob store: datasets/<group>/<TYPE>/."""
    group, dataset_type = arns.parse(dataset_arn, KIND.resource_type).resource.split("/", 1)
    return f"datasets/{group}/{dataset_type}"


def create(context: Context, request: dict[str, Any]) -> dict[str, Any]:
    dataset_type = normalize_dataset_type(request["datasetType"])
    group_arn = request["datasetGroupArn"]
    now = context.now()
    with context.database.transaction() as session:
        group = lifecycle.get(session, dataset_groups.KIND, group_arn)
        lifecycle.require_usable(group, dataset_groups.KIND)
        schema_row = lifecycle.get(session, schemas.KIND, request["schemaArn"])
        _check_schema(schema_row, dataset_type, group)
        arn = context.arn(KIND.resource_type, group.name, dataset_type.upper())
        if lifecycle.find(session, arn) is not None:
            raise ResourceAlreadyExistsException(
                f"The dataset group {group_arn} already has a {dataset_type} dataset: {arn}"
            )
        attributes = {
            "datasetGroupArn": group_arn,
            "datasetType": dataset_type,
            "schemaArn": schema_row.arn,
            "files": [],
            "rowCount": 0,
        }
        if dataset_type == "Action_Interactions":
            # Its own action-interaction tracker: the trackingId PutActionInteractions takes. It
            # is no event-tracker resource (ListEventTrackers and the one-per-group rule
            # ignore it) and goes with the dataset.
            attributes["trackingId"] = str(uuid.uuid4())
        lifecycle.create_pending(
            session,
            KIND,
            arn=arn,
            name=request["name"],
            now=now,
            parent_arn=group_arn,
            attributes=attributes,
            job="activate",
            tags=request.get("tags"),
        )
    return {"datasetArn": arn}


def _check_schema(schema_row: ResourceRow, dataset_type: str, group: ResourceRow) -> None:
    group_domain = group.attributes.get("domain")
    schema_domain = schema_row.attributes.get("domain")
    if group_domain != schema_domain:
        raise InvalidInputException(
            f"The schema {schema_row.arn} has domain {schema_domain or 'none'} but the dataset "
            f"group {group.arn} has domain {group_domain or 'none'}; they must match."
        )
    check_schema_for_dataset(schemas.load(schema_row), dataset_type, group_domain)


def _refuse_if_importing(session: Session, row: ResourceRow) -> None:
    busy = lifecycle.child_in_flight(session, row.arn)
    if busy:
        raise ResourceInUseException(f"The dataset {row.arn} has an import job in progress: {busy}")


delete = lifecycle.delete_handler(KIND, check=_refuse_if_importing)


def update(context: Context, request: dict[str, Any]) -> dict[str, Any]:
    """UpdateDataset: replace the schema with one that keeps every existing field."""
    arn = request["datasetArn"]
    now = context.now()
    with context.database.transaction() as session:
        row = lifecycle.get(session, KIND, arn)
        lifecycle.require_status(row, KIND, lifecycle.ACTIVE)
        pending = (row.attributes.get("latestDatasetUpdate") or {}).get("status")
        if pending in (UPDATE_PENDING, UPDATE_IN_PROGRESS):
            raise ResourceInUseException(f"The dataset {arn} is already being updated.")
        group = lifecycle.get(session, dataset_groups.KIND, row.attributes["datasetGroupArn"])
        new_row = lifecycle.get(session, schemas.KIND, request["schemaArn"])
        _check_schema(new_row, row.attributes["datasetType"], group)
        old_schema = schemas.load(lifecycle.get(session, schemas.KIND, row.attributes["schemaArn"]))
        new_schema = schemas.load(new_row)
        for field in old_schema.fields:
            replacement = new_schema.field(field.name)
            if replacement is None or replacement.type != field.type:
                raise InvalidInputException(
                    f"The new schema {new_row.arn} must keep field {field.name!r} of type "
                    f"{field.type!r} from the dataset's current schema."
                )
        for field in new_schema.fields:
            if (
                old_schema.field(field.name) is None
                and not field.nullable
                and row.attributes["files"]
            ):
                raise InvalidInputException(
                    f'Field {field.name!r} is new; it must be nullable (a union with "null") '
                    "because the dataset already holds data without it."
                )
        update_record = {
            "schemaArn": new_row.arn,
            "status": UPDATE_PENDING,
            "creationDateTime": now,
            "lastUpdatedDateTime": now,
        }
        lifecycle.update_attributes(
            row, now, latestDatasetUpdate=update_record, pendingSchemaArn=new_row.arn
        )
        runner.enqueue(session, "dataset_update", arn, now)
    return {"datasetArn": arn}


def _run_update(job: runner.JobHandle) -> None:
    context = job.context
    with context.database.transaction() as session:
        row = lifecycle.get(session, KIND, job.resource_arn)
        record = dict(row.attributes["latestDatasetUpdate"])
        record.update(status=lifecycle.ACTIVE, lastUpdatedDateTime=context.now())
        lifecycle.update_attributes(
            row,
            context.now(),
            schemaArn=row.attributes["pendingSchemaArn"],
            pendingSchemaArn=None,
            latestDatasetUpdate=record,
        )


def _fail_update(context: Context, arn: str, reason: str) -> None:
    with context.database.transaction() as session:
        row = lifecycle.find(session, arn)
        if row is not None:
            record = dict(row.attributes.get("latestDatasetUpdate") or {})
            record.update(
                status=lifecycle.CREATE_FAILED,
                failureReason=reason,
                lastUpdatedDateTime=context.now(),
            )
            lifecycle.update_attributes(
                row, context.now(), pendingSchemaArn=None, latestDatasetUpdate=record
            )


def remove_data(context: Context, row: ResourceRow) -> None:
    context.blobs.delete(data_key(row.arn))


runner.register("dataset_update", _run_update, _fail_update)


describe = lifecycle.describe_handler(KIND, "dataset")
list_ = lifecycle.list_handler(KIND, "datasets", parent=dataset_groups.KIND)
