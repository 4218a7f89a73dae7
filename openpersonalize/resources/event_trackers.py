"""Event trackers (one per dataset group) and the personalize-events operations they enable:
PutEvents appends to the Interactions data; PutItems / PutUsers add or replace records."""

from __future__ import annotations

import json
import math
import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from openpersonalize.context import Context
from openpersonalize.data.schema import Schema
from openpersonalize.data.streamed import ID_FIELDS
from openpersonalize.errors import (
    InvalidInputException,
    ResourceAlreadyExistsException,
)
from openpersonalize.resources import dataset_groups, datasets, lifecycle, schemas
from openpersonalize.store.database import EventRow, RecordRow, ResourceRow

KIND = lifecycle.Kind("event-tracker", "eventTrackerArn", "event tracker")
# Keys the service reserves in an event's `properties` (they are members of the event itself).
RESERVED_PROPERTIES = {
    "userid",
    "sessionid",
    "eventtype",
    "timestamp",
    "recommendationid",
    "impression",
}


def create(context: Context, request: dict[str, Any]) -> dict[str, Any]:
    name = request["name"]
    arn = context.arn(KIND.resource_type, name)
    tracking_id = str(uuid.uuid4())
    now = context.now()
    with context.database.transaction() as session:
        group = lifecycle.get(session, dataset_groups.KIND, request["datasetGroupArn"])
        lifecycle.require_usable(group, dataset_groups.KIND)
        existing = session.scalars(
            select(ResourceRow.arn).where(
                ResourceRow.resource_type == KIND.resource_type,
                ResourceRow.parent_arn == group.arn,
            )
        ).first()
        if existing:
            raise ResourceAlreadyExistsException(
                f"The dataset group {group.arn} already has an event tracker: {existing}"
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
                "trackingId": tracking_id,
                "accountId": context.settings.account_id,
            },
            job="activate",
            tags=request.get("tags"),
        )
        interactions = _dataset_of_type(session, group.arn, "Interactions")
        if interactions is not None:  # DescribeDataset shows the tracker that feeds it
            lifecycle.update_attributes(
                interactions, interactions.updated_at, trackingId=tracking_id
            )
    return {"eventTrackerArn": arn, "trackingId": tracking_id}


describe = lifecycle.describe_handler(KIND, "eventTracker")
list_ = lifecycle.list_handler(KIND, "eventTrackers", parent=dataset_groups.KIND)


delete = lifecycle.delete_handler(KIND)


def _tracker(session: Session, tracking_id: str) -> ResourceRow:
    for row in session.scalars(
        select(ResourceRow).where(ResourceRow.resource_type == KIND.resource_type)
    ):
        if row.attributes.get("trackingId") == tracking_id:
            if row.status not in lifecycle.USABLE:
                raise InvalidInputException(
                    f"The event tracker {row.arn} for trackingId {tracking_id} is {row.status}."
                )
            return row
    raise InvalidInputException(f"No event tracker has the trackingId {tracking_id}.")


def parse_properties(text: str | None, where: str) -> dict[str, Any]:
    """An event's or record's `properties` JSON text as an object ({} when absent)."""
    if not text:
        return {}
    try:
        properties = json.loads(text)
    except json.JSONDecodeError as error:
        raise InvalidInputException(f"{where}.properties is not valid JSON: {error}") from error
    if not isinstance(properties, dict):
        raise InvalidInputException(f"{where}.properties must be a JSON object.")
    return properties


def put_events(context: Context, request: dict[str, Any]) -> dict[str, Any]:
    """PutEvents: validated, then committed before the 200 goes out (durable once acknowledged)."""
    now = context.now()
    with context.database.transaction() as session:
        tracker = _tracker(session, request["trackingId"])
        interactions = _dataset_of_type(session, tracker.parent_arn or "", "Interactions")
        if interactions is None:
            raise InvalidInputException(
                f"The dataset group {tracker.parent_arn} has no Interactions dataset to record "
                "events in."
            )
        rows = []
        for index, event in enumerate(request["eventList"], start=1):
            where = f"eventList.{index}"
            properties = parse_properties(event.get("properties"), where)
            reserved = sorted(k for k in properties if k.lower() in RESERVED_PROPERTIES)
            if reserved:
                raise InvalidInputException(
                    f"{where}.properties may not use the reserved key(s) {', '.join(reserved)}."
                )
            rows.append(
                EventRow(
                    dataset_arn=interactions.arn,
                    tracking_id=request["trackingId"],
                    user_id=request.get("userId") or request["sessionId"],
                    session_id=request["sessionId"],
                    item_id=event.get("itemId") or _from_properties(properties, "ITEM_ID"),
                    event_type=event["eventType"],
                    event_value=_event_value(event, properties),
                    timestamp=event["sentAt"].timestamp(),
                    event_id=event.get("eventId"),
                    recommendation_id=event.get("recommendationId"),
                    event_attribution_source=(event.get("metricAttribution") or {}).get(
                        "eventAttributionSource"
                    ),
                    impression="|".join(event["impression"]) if event.get("impression") else None,
                    properties=properties or None,
                    received_at=now,
                )
            )
        session.add_all(rows)
    from openpersonalize.serving.engine import EVENT_USERS

    EVENT_USERS.add(context, interactions.arn, {row.user_id for row in rows})  # after the commit
    return {}


def _from_properties(properties: dict[str, Any], field: str) -> Any:
    """A field given in `properties` (camelCase, as older sample code sends `itemId`)."""
    wanted = _property_key(field)
    return next((v for k, v in properties.items() if _property_key(k) == wanted), None)


def _event_value(event: dict[str, Any], properties: dict[str, Any]) -> float | None:
    value = event.get("eventValue")
    if value is None:
        value = _from_properties(properties, "EVENT_VALUE")
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number):
        raise InvalidInputException(f"eventValue {value!r} in properties is not a number.")
    return number


def _dataset_of_type(session: Session, group_arn: str, dataset_type: str) -> ResourceRow | None:
    for row in session.scalars(
        select(ResourceRow).where(
            ResourceRow.resource_type == datasets.KIND.resource_type,
            ResourceRow.parent_arn == group_arn,
        )
    ):
        if row.attributes.get("datasetType") == dataset_type:
            return row
    return None


def put_records(
    context: Context, request: dict[str, Any], dataset_type: str, list_key: str, id_key: str
) -> dict[str, Any]:
    """PutItems / PutUsers / PutActions: each record replaces the one with its ID."""
    now = context.now()
    with context.database.transaction() as session:
        dataset = lifecycle.get(session, datasets.KIND, request["datasetArn"])
        if dataset.attributes["datasetType"] != dataset_type:
            raise InvalidInputException(
                f"{request['datasetArn']} is a {dataset.attributes['datasetType']} dataset; "
                f"{list_key} go to a {dataset_type} dataset."
            )
        lifecycle.require_usable(dataset, datasets.KIND)
        schema = schemas.load(lifecycle.get(session, schemas.KIND, dataset.attributes["schemaArn"]))
        for index, record in enumerate(request[list_key], start=1):
            where = f"{list_key}.{index}"
            properties = _check_record(
                parse_properties(record.get("properties"), where), schema, where, dataset_type
            )
            values = {
                "dataset_arn": dataset.arn,
                "record_id": record[id_key],
                "properties": properties,
                "updated_at": now,
            }
            session.execute(_upsert(session, values))
    return {}


def _upsert(session: Session, values: dict[str, Any]) -> Any:
    dialect = session.get_bind().dialect.name
    insert = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(RecordRow)
    return insert.values(**values).on_conflict_do_update(
        index_elements=["dataset_arn", "record_id"],
        set_={"properties": values["properties"], "updated_at": values["updated_at"]},
    )


def _property_key(name: str) -> str:
    """How a properties key and a field name are compared: the service writes fields in
    camelCase (ITEM_ID is itemId), so without underscores and ignoring case."""
    return name.replace("_", "").lower()


def field_for_property(schema: Schema, key: str) -> str | None:
    """The schema field a properties key names."""
    wanted = _property_key(key)
    for field in schema.fields:
        if _property_key(field.name) == wanted:
            return field.name
    return None


def _check_record(
    properties: dict[str, Any], schema: Schema, where: str, dataset_type: str
) -> dict[str, Any]:
    """Properties keyed by schema field name, type-checked; unknown keys refused."""
    checked: dict[str, Any] = {}
    id_field = ID_FIELDS[dataset_type]
    for key, value in properties.items():
        name = field_for_property(schema, key)
        if name is None or name == id_field:
            raise InvalidInputException(
                f"{where}.properties key {key!r} is not a field of the {dataset_type} schema."
            )
        field = schema.field(name)
        assert field is not None
        numeric = field.type in ("int", "long", "float", "double")
        if numeric and isinstance(value, str):
            value = _number_in_text(value, field.type)  # the model's examples: {"value": "100"}
        ok = (
            value is None
            and field.nullable
            or field.type == "string"
            and isinstance(value, str)
            or field.type == "boolean"
            and isinstance(value, bool)
            or numeric
            and isinstance(value, (int, float))
            and not isinstance(value, bool)
        )
        if not ok:
            raise InvalidInputException(
                f"{where}.properties {key!r} must be a {field.type}, got {value!r}."
            )
        checked[name] = value
    return checked


def _number_in_text(text: str, field_type: str) -> Any:
    """The number a string holds, for a numeric field (the text itself when it holds none)."""
    try:
        number: float = int(text) if field_type in ("int", "long") else float(text)
    except ValueError:
        return text
    return number if math.isfinite(number) else text


def put_items(context: Context, request: dict[str, Any]) -> dict[str, Any]:
    return put_records(context, request, "Items", "items", "itemId")


def put_users(context: Context, request: dict[str, Any]) -> dict[str, Any]:
    return put_records(context, request, "Users", "users", "userId")
