"""Tags for every taggable resource: TagResource, UntagResource, ListTagsForResource."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from openpersonalize import arns
from openpersonalize.context import Context
from openpersonalize.errors import (
    InvalidInputException,
    ResourceNotFoundException,
    TooManyTagsException,
)
from openpersonalize.resources import lifecycle
from openpersonalize.store.database import TagRow

MAX_TAGS_PER_RESOURCE = 50


def put_tags(session: Session, arn: str, tags: list[dict[str, str]] | None) -> None:
    """Add or overwrite tags on a resource (inside the caller's transaction)."""
    if not tags:
        return
    for tag in tags:
        if tag["tagKey"].lower().startswith("aws:"):
            raise InvalidInputException(
                f"Tag key {tag['tagKey']!r} uses the reserved prefix 'aws:'."
            )
    new = {tag["tagKey"]: tag["tagValue"] for tag in tags}
    existing = set(session.scalars(select(TagRow.key).where(TagRow.arn == arn)))
    if len(existing | set(new)) > MAX_TAGS_PER_RESOURCE:
        raise TooManyTagsException(
            f"{arn} would have {len(existing | set(new))} tags; at most "
            f"{MAX_TAGS_PER_RESOURCE} are allowed."
        )
    for key, value in new.items():
        session.merge(TagRow(arn=arn, key=key, value=value))


def _taggable(session: Session, arn: str) -> None:
    arns.parse(arn)
    if lifecycle.find(session, arn) is None:
        raise ResourceNotFoundException(f"Could not find resource {arn}")


def tag_resource(context: Context, request: dict[str, Any]) -> dict[str, Any]:
    with context.database.transaction() as session:
        _taggable(session, request["resourceArn"])
        put_tags(session, request["resourceArn"], request["tags"])
    return {}


def untag_resource(context: Context, request: dict[str, Any]) -> dict[str, Any]:
    with context.database.transaction() as session:
        _taggable(session, request["resourceArn"])
        session.execute(
            delete(TagRow).where(
                TagRow.arn == request["resourceArn"], TagRow.key.in_(request["tagKeys"])
            )
        )
    return {}


def list_tags(context: Context, request: dict[str, Any]) -> dict[str, Any]:
    with context.database.transaction() as session:
        _taggable(session, request["resourceArn"])
        rows = session.scalars(
            select(TagRow).where(TagRow.arn == request["resourceArn"]).order_by(TagRow.key)
        )
        return {"tags": [{"tagKey": row.key, "tagValue": row.value} for row in rows]}


def count(session: Session, arn: str) -> int:
    return int(session.scalar(select(func.count()).select_from(TagRow).where(TagRow.arn == arn)))
