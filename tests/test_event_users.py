"""The record of which users streamed events: shared by every server process, bounded."""

from __future__ import annotations

from pathlib import Path

import pytest

from openpersonalize.config import Settings
from openpersonalize.context import Context
from openpersonalize.serving import event_users
from openpersonalize.serving.event_users import EventUsers

DATASET = "arn:aws:personalize:us-east-1:000000000000:dataset/g/INTERACTIONS"


def test_users_stop_being_tracked_past_the_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(event_users, "MAX_TRACKED_USERS", 3)
    context = Context.open(Settings(data_dir=tmp_path))
    users = EventUsers()
    assert not users.has_events(context, DATASET, "u1")  # loaded from an empty events table
    users.add(context, DATASET, {"u1", "u2"})
    assert users.has_events(context, DATASET, "u1")
    assert not users.has_events(context, DATASET, "u9")
    users.add(context, DATASET, {"u3", "u4"})  # four users: no longer tracked, so always queried
    assert users.has_events(context, DATASET, "u9")


def test_an_event_put_through_one_process_is_seen_by_another(tmp_path: Path) -> None:
    # Two records over one data directory stand for two server processes.
    context = Context.open(Settings(data_dir=tmp_path))
    first, second = EventUsers(), EventUsers()
    assert not second.has_events(context, DATASET, "u1")
    first.add(context, DATASET, {"u1"})
    assert second.has_events(context, DATASET, "u1")
    assert not second.has_events(context, DATASET, "u2")
    assert not second.has_events(context, DATASET.replace("/g/", "/other/"), "u1")


def test_a_process_a_whole_ring_behind_reloads_from_the_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(event_users, "RING_SLOTS", 4)
    monkeypatch.setattr(event_users, "RING_BYTES", 8 + 4 * 8)
    context = Context.open(Settings(data_dir=tmp_path))
    writer, reader = EventUsers(), EventUsers()
    assert not reader.has_events(context, DATASET, "u0")
    writer.add(context, DATASET, {f"u{n}" for n in range(10)})  # wraps the ring twice
    # Nothing is in the events table: a reader that knows it fell behind goes by the table,
    # not by the slots (which hold the newest users, u9 among them).
    assert not reader.has_events(context, DATASET, "u9")
