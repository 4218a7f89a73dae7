"""personalize-events (REST-JSON): event ingestion. Operations arrive with the events issue."""

from __future__ import annotations

from openpersonalize.api import Handler

OPERATIONS: dict[str, Handler] = {}
