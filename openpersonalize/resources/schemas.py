"""Schemas: immutable Avro record definitions that datasets refer to."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from openpersonalize.context import Context
from openpersonalize.data.schema import Schema, parse_schema
from openpersonalize.errors import ResourceInUseException
from openpersonalize.resources import lifecycle
from openpersonalize.store.database import ResourceRow

KIND = lifecycle.Kind("schema", "schemaArn", "schema")


def create(context: Context, request: dict[str, Any]) -> dict[str, Any]:
    parse_schema(request["schema"], request.get("domain"))  # refuses a bad schema, naming the rule
    name = request["name"]
    arn = context.arn(KIND.resource_type, name)
    attributes = {"schema": request["schema"], "domain": request.get("domain")}
    with context.database.transaction() as session:
        # Schemas have no status on the wire: usable as soon as they exist.
        lifecycle.insert(
            session, KIND, arn=arn, name=name, now=context.now(), status=None, attributes=attributes
        )
    return {"schemaArn": arn}


def load(row: ResourceRow) -> Schema:
    return parse_schema(row.attributes["schema"], row.attributes.get("domain"))


def delete(context: Context, request: dict[str, Any]) -> dict[str, Any]:
    arn = request["schemaArn"]
    with context.database.transaction() as session:
        row = lifecycle.get(session, KIND, arn)
        datasets = session.scalars(
            select(ResourceRow).where(ResourceRow.resource_type == "dataset")
        ).all()
        users = [
            d.arn
            for d in datasets
            if arn in (d.attributes.get("schemaArn"), d.attributes.get("pendingSchemaArn"))
        ]
        if users:
            raise ResourceInUseException(
                f"The schema {arn} is used by {', '.join(users[:3])}; delete those datasets first."
            )
        lifecycle.remove(session, row)
    return {}


describe = lifecycle.describe_handler(KIND, "schema")
list_ = lifecycle.list_handler(KIND, "schemas")
