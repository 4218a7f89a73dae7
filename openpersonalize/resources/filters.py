"""Filters: business rules in the service's filter expression language, per dataset group."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from openpersonalize.context import Context
from openpersonalize.data.schema import Schema
from openpersonalize.errors import LimitExceededException
from openpersonalize.filters.expression import check_filter, parse_filter
from openpersonalize.resources import dataset_groups, lifecycle, schemas, solutions
from openpersonalize.store.database import ResourceRow

KIND = lifecycle.Kind("filter", "filterArn", "filter")
MAX_FILTERS_PER_GROUP = 10


def create(context: Context, request: dict[str, Any]) -> dict[str, Any]:
    expression = parse_filter(request["filterExpression"])  # position and reason on errors
    name = request["name"]
    arn = context.arn(KIND.resource_type, name)
    now = context.now()
    with context.database.transaction() as session:
        group = lifecycle.get(session, dataset_groups.KIND, request["datasetGroupArn"])
        lifecycle.require_usable(group, dataset_groups.KIND)
        check_filter(expression, group_schemas(session, group.arn))
        count = session.scalar(
            select(func.count())
            .select_from(ResourceRow)
            .where(
                ResourceRow.resource_type == KIND.resource_type, ResourceRow.parent_arn == group.arn
            )
        )
        if count >= MAX_FILTERS_PER_GROUP:
            raise LimitExceededException(
                f"The dataset group {group.arn} already has {count} filters; the limit is "
                f"{MAX_FILTERS_PER_GROUP}."
            )
        lifecycle.create_pending(
            session,
            KIND,
            arn=arn,
            name=name,
            now=now,
            parent_arn=group.arn,
            attributes={
                "datasetGroupArn": group.arn,
                "filterExpression": request["filterExpression"],
            },
            job="activate",
            tags=request.get("tags"),
        )
    return {"filterArn": arn}


describe = lifecycle.describe_handler(KIND, "filter")
list_ = lifecycle.list_handler(KIND, "Filters", parent=dataset_groups.KIND)


delete = lifecycle.delete_handler(KIND)


def group_schemas(session: Session, group_arn: str) -> dict[str, Schema]:
    """The schemas of a dataset group's datasets, by dataset type (what filters read)."""
    return {
        dataset_type: schemas.load(
            lifecycle.get(session, schemas.KIND, dataset.attributes["schemaArn"])
        )
        for dataset_type, dataset in solutions.datasets_of(session, group_arn).items()
    }


def serving_record(session: Session, arn: str) -> ResourceRow:
    row = lifecycle.get(session, KIND, arn)
    lifecycle.require_usable(row, KIND)
    return row
