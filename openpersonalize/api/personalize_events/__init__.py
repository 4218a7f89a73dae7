"""personalize-events (REST-JSON): streamed events, items and users."""

from __future__ import annotations

from openpersonalize.api import Handler
from openpersonalize.resources import actions, event_trackers

OPERATIONS: dict[str, Handler] = {
    "PutEvents": event_trackers.put_events,
    "PutItems": event_trackers.put_items,
    "PutUsers": event_trackers.put_users,
    "PutActions": actions.put_actions,
    "PutActionInteractions": actions.put_action_interactions,
}
