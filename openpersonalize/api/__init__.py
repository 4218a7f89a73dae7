"""One thin handler per operation, keyed by (service, operation name). No business logic here."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from openpersonalize.context import Context

Handler = Callable[[Context, dict[str, Any]], dict[str, Any] | None]


def handlers() -> dict[tuple[str, str], Handler]:
    """Every operation built so far; the wire layer answers the others with a clear error."""
    from openpersonalize.api import personalize, personalize_events, personalize_runtime

    table: dict[tuple[str, str], Handler] = {}
    for service, module in (
        ("personalize", personalize),
        ("personalize-runtime", personalize_runtime),
        ("personalize-events", personalize_events),
    ):
        for name, handler in module.OPERATIONS.items():
            table[(service, name)] = handler
    return table
