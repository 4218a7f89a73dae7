"""personalize-events for next best action: PutActions adds or replaces actions in an Actions
dataset; PutActionInteractions records action interactions through the action-interaction
tracker an Action_Interactions dataset gets when it is created (its trackingId).

Both are committed before the 200 goes out, and training reads them through
`data.streamed.dataset_table` like imported data.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from openpersonalize.context import Context
from openpersonalize.data.schema import action_event_type
from openpersonalize.errors import InvalidInputException, ResourceNotFoundException
from openpersonalize.resources import datasets, lifecycle
from openpersonalize.resources.event_trackers import (
    RESERVED_PROPERTIES,
    parse_properties,
    put_records,
)
from openpersonalize.store.database import EventRow, ResourceRow

ACTION_INTERACTIONS = "Action_Interactions"


def put_actions(context: Context, request: dict[str, Any]) -> dict[str, Any]:
    """PutActions: like PutItems, each action replaces the one with its ID."""
    return put_records(context, request, "Actions", "actions", "actionId")


def action_interactions_dataset(session: Session, tracking_id: str) -> ResourceRow:
    """The Action_Interactions dataset whose action-interaction tracker has this ID."""
    for row in session.scalars(
        select(ResourceRow).where(ResourceRow.resource_type == datasets.KIND.resource_type)
    ):
        attributes = row.attributes
        if (
            attributes.get("datasetType") == ACTION_INTERACTIONS
            and attributes.get("trackingId") == tracking_id
        ):
            return row
    raise ResourceNotFoundException(
        f"No Action_Interactions dataset has the action interaction tracker {tracking_id} "
        "(DescribeDataset shows an Action_Interactions dataset's trackingId)."
    )


def put_action_interactions(context: Context, request: dict[str, Any]) -> dict[str, Any]:
    """PutActionInteractions: validated as a whole, then stored. An event whose eventId was
    seen before for the same user, or one identical to a stored event (user, action, type,
    time, properties), is acknowledged but stored once only (the service does not train on
    repeats)."""
    now = context.now()
    tracking_id = request["trackingId"]
    with context.database.transaction() as session:
        dataset = action_interactions_dataset(session, tracking_id)
        lifecycle.require_usable(dataset, datasets.KIND)
        rows: list[EventRow] = []
        for index, interaction in enumerate(request["actionInteractions"], start=1):
            row = _event_row(dataset.arn, tracking_id, interaction, f"actionInteractions.{index}")
            row.received_at = now
            if not any(_same_event(row, other) for other in rows) and not _stored(session, row):
                rows.append(row)
        session.add_all(rows)
    return {}


def _event_row(
    dataset_arn: str, tracking_id: str, interaction: dict[str, Any], where: str
) -> EventRow:
    event_type = interaction["eventType"]
    if action_event_type(event_type) is None:
        raise InvalidInputException(
            f"{where}.eventType {event_type!r} is not an action event type; use Taken, "
            "Not Taken or Viewed (any case; TAKEN, NOT_TAKEN and VIEWED too)."
        )
    properties = parse_properties(interaction.get("properties"), where)
    reserved = sorted(k for k in properties if k.lower() in RESERVED_PROPERTIES)
    if reserved:
        raise InvalidInputException(
            f"{where}.properties may not use the reserved key(s) {', '.join(reserved)}."
        )
    impression = interaction.get("impression")
    return EventRow(
        dataset_arn=dataset_arn,
        tracking_id=tracking_id,
        # Without a userId the event belongs to the session, as PutEvents does it.
        user_id=interaction.get("userId") or interaction["sessionId"],
        session_id=interaction["sessionId"],
        item_id=interaction["actionId"],
        event_type=event_type,
        timestamp=interaction["timestamp"].timestamp(),
        event_id=interaction.get("eventId") or str(uuid.uuid4()),
        recommendation_id=interaction.get("recommendationId"),
        # Accepted and kept, never used: the service says to record Viewed events instead.
        impression="|".join(impression) if impression else None,
        properties=properties or None,
    )


def _same_event(row: EventRow, other: EventRow) -> bool:
    return row.event_id == other.event_id or (
        row.user_id == other.user_id
        and row.item_id == other.item_id
        and row.event_type == other.event_type
        and row.timestamp == other.timestamp
        and row.properties == other.properties
    )


def _stored(session: Session, row: EventRow) -> bool:
    """Whether the dataset holds this event already: the user's event with its eventId, or
    one identical to it (one indexed read of the user's events)."""
    candidates = session.scalars(
        select(EventRow).where(
            EventRow.dataset_arn == row.dataset_arn,
            EventRow.user_id == row.user_id,
            or_(EventRow.event_id == row.event_id, EventRow.timestamp == row.timestamp),
        )
    )
    return any(_same_event(row, other) for other in candidates)
