"""The web console at /console: server-rendered pages over the same operations as the API.

`wire.app.App` hands every request under /console to `create_console(context)`'s app; see
console/app.py for the pages, console/views.py for what they read, console/security.py for
who may see them.
"""

from __future__ import annotations

from openpersonalize.context import Context


def create_console(context: Context):  # type: ignore[no-untyped-def]  # an ASGI callable
    from openpersonalize.console.app import ConsoleApp

    return ConsoleApp(context)
