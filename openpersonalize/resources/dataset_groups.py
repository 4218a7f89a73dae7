"""Dataset groups: the container of datasets, solutions, campaigns and the rest."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from openpersonalize.context import Context
from openpersonalize.errors import InvalidInputException, ResourceInUseException
from openpersonalize.resources import lifecycle
from openpersonalize.store.database import ResourceRow

KIND = lifecycle.Kind("dataset-group", "datasetGroupArn", "dataset group")


def create(context: Context, request: dict[str, Any]) -> dict[str, Any]:
    if request.get("roleArn") and not request.get("kmsKeyArn"):
        raise InvalidInputException("roleArn is only valid together with kmsKeyArn.")
    name = request["name"]
    arn = context.arn(KIND.resource_type, name)
    now = context.now()
    attributes = {k: request[k] for k in ("roleArn", "kmsKeyArn", "domain") if k in request}
    with context.database.transaction() as session:
        lifecycle.create_pending(
            session,
            KIND,
            arn=arn,
            name=name,
            now=now,
            attributes=attributes,
            job="activate",
            tags=request.get("tags"),
        )
    return {"datasetGroupArn": arn, "domain": request.get("domain")}


def _refuse_if_not_empty(session: Session, row: ResourceRow) -> None:
    # Children already being deleted do not count: user code deletes the tracker, then the
    # group, without waiting (their delete jobs run first, in the order they were asked for).
    children = session.scalars(
        select(ResourceRow.arn)
        .where(
            ResourceRow.parent_arn == row.arn,
            ResourceRow.status.is_(None) | ResourceRow.status.not_in(lifecycle.DELETING),
            # Finished data deletion jobs are records of the past (they cannot be deleted).
            ~(
                (ResourceRow.resource_type == "data-deletion-job")
                & ResourceRow.status.in_((lifecycle.COMPLETED, lifecycle.FAILED))
            ),
        )
        .limit(3)
    ).all()
    if children:
        raise ResourceInUseException(
            f"The dataset group {row.arn} still has resources ({', '.join(children)}); "
            "delete them first."
        )


delete = lifecycle.delete_handler(KIND, check=_refuse_if_not_empty)


describe = lifecycle.describe_handler(KIND, "datasetGroup")
list_ = lifecycle.list_handler(KIND, "datasetGroups")
