"""Metadata persistence: three tables (resources, tags, jobs) in SQLAlchemy 2.

Every resource type shares one table: its identity, status and timestamps are
columns (so lists, uniqueness and state checks are plain SQL) and the rest of
its description is a JSON document. No business logic lives here.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import (
    JSON,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    inspect,
)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker


class Base(DeclarativeBase):
    pass


class ResourceRow(Base):
    __tablename__ = "resources"
    # Names are unique per type and account, or per type within a parent (datasets in a group).
    __table_args__ = (
        UniqueConstraint("resource_type", "scope", "name", name="uq_resource_type_scope_name"),
    )

    arn: Mapped[str] = mapped_column(String(256), primary_key=True)
    resource_type: Mapped[str] = mapped_column(String(64), index=True)
    name: Mapped[str] = mapped_column(String(256))
    scope: Mapped[str] = mapped_column(String(256), default="")
    parent_arn: Mapped[str | None] = mapped_column(String(256), index=True)
    status: Mapped[str | None] = mapped_column(String(64))
    failure_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)
    attributes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class TagRow(Base):
    __tablename__ = "tags"

    arn: Mapped[str] = mapped_column(
        String(256), ForeignKey("resources.arn", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    value: Mapped[str] = mapped_column(String(256))


class JobRow(Base):
    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(64))
    resource_arn: Mapped[str] = mapped_column(String(256), index=True)
    state: Mapped[str] = mapped_column(String(16), index=True)  # queued|running|done|failed
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=2)
    lease_owner: Mapped[str | None] = mapped_column(String(128))
    lease_expires: Mapped[float | None] = mapped_column(Float)
    cancel_requested: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)


class EventRow(Base):
    """One event from PutEvents: durable once the request is acknowledged."""

    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_dataset_user_time", "dataset_arn", "user_id", "timestamp"),
        # A dataset's events after a given one (metric attribution reports read what is new).
        Index("ix_events_dataset_id", "dataset_arn", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    dataset_arn: Mapped[str] = mapped_column(String(256))
    tracking_id: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[str] = mapped_column(String(256))  # the session id for anonymous events
    session_id: Mapped[str] = mapped_column(String(256))
    item_id: Mapped[str | None] = mapped_column(String(256))
    event_type: Mapped[str] = mapped_column(String(256))
    event_value: Mapped[float | None] = mapped_column(Float)
    timestamp: Mapped[float] = mapped_column(Float)
    event_id: Mapped[str | None] = mapped_column(String(256))
    recommendation_id: Mapped[str | None] = mapped_column(String(64))
    # metricAttribution.eventAttributionSource (added later: see _upgrade_tables)
    event_attribution_source: Mapped[str | None] = mapped_column(String(1024))
    impression: Mapped[str | None] = mapped_column(Text)  # item ids joined with "|"
    properties: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    received_at: Mapped[float] = mapped_column(Float)


class RecordRow(Base):
    """One item or user from PutItems / PutUsers (the newest record of an ID wins)."""

    __tablename__ = "records"

    dataset_arn: Mapped[str] = mapped_column(String(256), primary_key=True)
    record_id: Mapped[str] = mapped_column(String(256), primary_key=True)
    properties: Mapped[dict[str, Any]] = mapped_column(JSON)
    updated_at: Mapped[float] = mapped_column(Float)


class DeletedUserRow(Base):
    """A user whose data a data deletion job removed from a dataset group, and when: models
    trained before then must no longer answer for them."""

    __tablename__ = "deleted_users"

    dataset_group_arn: Mapped[str] = mapped_column(String(256), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(256), primary_key=True)
    deleted_at: Mapped[float] = mapped_column(Float)


class Database:
    """An engine plus a transaction helper; SQLite gets WAL and immediate write locks."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        options: dict[str, Any] = {"future": True}
        if self.is_sqlite:
            options["connect_args"] = {"timeout": 60, "check_same_thread": False}
        self.engine: Engine = create_engine(url, **options)
        # Reads on the hot path need no write lock: a second engine without BEGIN IMMEDIATE.
        self.read_engine: Engine = create_engine(url, **options) if self.is_sqlite else self.engine
        if self.is_sqlite:
            _configure_sqlite(self.engine, immediate=True)
            _configure_sqlite(self.read_engine, immediate=False)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._read_sessions = sessionmaker(self.read_engine, expire_on_commit=False)

    def create_tables(self) -> None:
        Base.metadata.create_all(self.engine)
        _upgrade_tables(self.engine)

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """One unit of work: committed when the block ends, rolled back if it raises."""
        with self._sessions() as session, session.begin():
            yield session

    @contextmanager
    def snapshot(self) -> Iterator[Session]:
        """A read-only unit of work that never waits for, or blocks, writers."""
        with self._read_sessions() as session:  # closing releases it; loaded rows stay usable
            yield session

    def dispose(self) -> None:
        self.engine.dispose()
        self.read_engine.dispose()


def _upgrade_tables(engine: Engine) -> None:
    """Give a database made by an earlier version the nullable columns and the indexes added
    since: create_all makes missing tables only. Several processes may start at once, so a
    column or index another one has just added is not an error."""
    for table in Base.metadata.sorted_tables:
        present = {column["name"] for column in inspect(engine).get_columns(table.name)}
        for column in table.columns:
            if column.name in present or not column.nullable:
                continue
            kind = column.type.compile(dialect=engine.dialect)
            try:
                with engine.begin() as connection:
                    connection.exec_driver_sql(
                        f"ALTER TABLE {table.name} ADD COLUMN {column.name} {kind}"
                    )
            except DBAPIError:
                if column.name not in {c["name"] for c in inspect(engine).get_columns(table.name)}:
                    raise
        for index in table.indexes:
            try:
                index.create(engine, checkfirst=True)
            except DBAPIError:
                if index.name not in {i["name"] for i in inspect(engine).get_indexes(table.name)}:
                    raise


def _configure_sqlite(engine: Engine, *, immediate: bool) -> None:
    # pysqlite's own transaction handling starts transactions lazily as DEFERRED, so two
    # processes that read and then write can deadlock with SQLITE_BUSY; take the write
    # lock up front instead (the documented SQLAlchemy recipe).
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=60000")
        cursor.close()

    if immediate:

        @event.listens_for(engine, "begin")
        def _on_begin(connection: Any) -> None:
            connection.exec_driver_sql("BEGIN IMMEDIATE")
