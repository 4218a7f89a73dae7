"""personalize-runtime (REST-JSON): recommendations. Operations arrive with the campaigns issue."""

from __future__ import annotations

from openpersonalize.api import Handler

OPERATIONS: dict[str, Handler] = {}
