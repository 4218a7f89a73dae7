"""What every handler and job needs: settings, the metadata database, the blob store and a clock."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from openpersonalize import arns
from openpersonalize.config import Settings
from openpersonalize.store.blobs import BlobStore
from openpersonalize.store.database import Database


@dataclass
class Context:
    settings: Settings
    database: Database
    blobs: BlobStore
    # Injectable so tests (and the training scheduler) can move time honestly.
    clock: Callable[[], float] = field(default=time.time)

    @classmethod
    def open(cls, settings: Settings) -> Context:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        database = Database(settings.resolved_database_url)
        database.create_tables()
        blobs = BlobStore.for_settings(settings, cache_dir=settings.data_dir.resolve() / "cache")
        context = cls(settings=settings, database=database, blobs=blobs)
        if settings.clock_offset_seconds:
            offset = settings.clock_offset_seconds
            context.clock = lambda: time.time() + offset
        return context

    def arn(self, resource_type: str, *parts: str) -> str:
        return arns.build(self.settings.region, self.settings.account_id, resource_type, *parts)

    @property
    def data_dir(self) -> Path:
        return self.settings.data_dir

    def now(self) -> float:
        return self.clock()
