"""Serving on every core: several HTTP server processes sharing one listening port.

uvicorn binds the port in the `serve` process and starts `http_processes` children that
accept on it (and restarts one that dies). Each child opens the same database and blob store
from the settings, which `serve` hands down as OPENPERSONALIZE_* variables. Everything a
child caches is either re-read within a second (campaigns, catalogs, deleted users) or shared
at once through the data directory (which users streamed events: serving/event_users.py), so
an answer never depends on which process a request reaches. The job workers stay processes
of `serve` itself.
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time

from openpersonalize.config import ENV_PREFIX, Settings

APP_FACTORY = "openpersonalize.wire.processes:child_app"
PARENT_CHECK_SECONDS = 0.5


def export_settings(settings: Settings) -> None:
    """Put the settings where the children's Settings.from_env() finds them."""
    for setting in dataclasses.fields(Settings):
        name = ENV_PREFIX + setting.name.upper()
        value = getattr(settings, setting.name)
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = str(value)


def child_app():  # type: ignore[no-untyped-def]  # the ASGI app of one child
    from threadpoolctl import threadpool_limits

    from openpersonalize.context import Context
    from openpersonalize.wire.app import create_app

    _exit_with_parent(os.getppid())
    # One BLAS thread: a request's matrix-vector product is small, and helper threads
    # would take the cores from the other requests and processes.
    threadpool_limits(limits=1, user_api="blas")
    return create_app(Context.open(Settings.from_env()))


def _exit_with_parent(parent: int) -> None:
    """A child whose `serve` process died (kill -9) stops too, freeing the port."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_CHECK_SECONDS)
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()
