"""Data that arrived through personalize-events (PutEvents, PutItems, PutUsers, PutActions,
PutActionInteractions), as Arrow tables in a dataset's schema, so training reads it exactly
like imported data."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pyarrow as pa
from sqlalchemy import select
from sqlalchemy.orm import Session

from openpersonalize.data.importer import arrow_schema_of, read_dataset
from openpersonalize.data.schema import Schema
from openpersonalize.store.database import EventRow, RecordRow

if TYPE_CHECKING:
    from openpersonalize.store.blobs import BlobStore


#: The ID column of each dataset of records (PutItems, PutUsers, PutActions).
ID_FIELDS = {"Items": "ITEM_ID", "Users": "USER_ID", "Actions": "ACTION_ID"}


def property_value(properties: dict[str, Any] | None, field_name: str) -> Any:
    """A field's value in an event's `properties` (keys compared without underscores and case)."""
    if not properties:
        return None
    wanted = field_name.replace("_", "").lower()
    for key, value in properties.items():
        if key.replace("_", "").lower() == wanted:
            return value
    return None


def events_table(session: Session, dataset_arn: str, schema: Schema) -> pa.Table:
    """Streamed events of an Interactions or Action_Interactions dataset (events without an
    item or action are skipped)."""
    rows = session.scalars(
        select(EventRow).where(EventRow.dataset_arn == dataset_arn, EventRow.item_id.is_not(None))
    ).all()
    columns: dict[str, list[Any]] = {}
    for field in schema.fields:
        if field.name == "USER_ID":
            values: list[Any] = [row.user_id for row in rows]
        elif field.name in ("ITEM_ID", "ACTION_ID"):  # an action interaction's action
            values = [row.item_id for row in rows]
        elif field.name == "TIMESTAMP":
            values = [int(row.timestamp) for row in rows]
        elif field.name == "EVENT_TYPE":
            values = [row.event_type for row in rows]
        elif field.name == "EVENT_VALUE":
            values = [row.event_value for row in rows]
        elif field.name == "IMPRESSION":
            values = [row.impression for row in rows]
        elif field.name == "RECOMMENDATION_ID":
            values = [row.recommendation_id for row in rows]
        elif field.name == "EVENT_ATTRIBUTION_SOURCE":
            values = [row.event_attribution_source for row in rows]
        else:
            values = [property_value(row.properties, field.name) for row in rows]
        columns[field.name] = values
    return pa.table(columns, schema=arrow_schema_of(schema))


def dataset_table(
    blobs: BlobStore,
    session: Session,
    dataset_arn: str,
    dataset_type: str,
    files: list[str],
    schema: Schema,
) -> pa.Table | None:
    """All of a dataset's data, as training and serving read it: its imported Parquet `files`
    plus what arrived through personalize-events, in the schema's column order (None if empty)."""
    imported = read_dataset(blobs, files)
    if dataset_type in ("Interactions", "Action_Interactions"):
        streamed = events_table(session, dataset_arn, schema)
    else:
        streamed = records_table(session, dataset_arn, schema, ID_FIELDS[dataset_type])
    parts = [t.select(schema.names) for t in (imported, streamed) if t.num_columns and t.num_rows]
    return pa.concat_tables(parts) if parts else None


def records_table(session: Session, dataset_arn: str, schema: Schema, id_field: str) -> pa.Table:
    """Items, users or actions put with PutItems / PutUsers / PutActions (one row per ID, the
    newest)."""
    rows = session.scalars(select(RecordRow).where(RecordRow.dataset_arn == dataset_arn)).all()
    columns = {
        field.name: [
            row.record_id if field.name == id_field else row.properties.get(field.name)
            for row in rows
        ]
        for field in schema.fields
    }
    return pa.table(columns, schema=arrow_schema_of(schema))


def latest_event_time(session: Session, dataset_arn: str) -> float | None:
    """When the newest streamed event of a dataset arrived (for automatic training)."""
    row = session.scalars(
        select(EventRow.received_at)
        .where(EventRow.dataset_arn == dataset_arn)
        .order_by(EventRow.received_at.desc())
        .limit(1)
    ).first()
    return row
