"""The per-process record of which users streamed events stays bounded."""

from __future__ import annotations

import pytest

from openpersonalize.config import Settings
from openpersonalize.context import Context
from openpersonalize.serving import engine


def test_event_users_stop_being_tracked_past_the_limit(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(engine, "MAX_TRACKED_EVENT_USERS", 3)
    context = Context.open(Settings(data_dir=tmp_path))
    users = engine._EventUsers()
    dataset = "arn:aws:personalize:us-east-1:000000000000:dataset/g/EVENT_INTERACTIONS"
    assert not users.has_events(context, dataset, "u1")  # loaded from an empty events table
    users.add(dataset, {"u1", "u2"})
    assert users.has_events(context, dataset, "u1") and not users.has_events(context, dataset, "u9")
    users.add(dataset, {"u3", "u4"})  # four users: no longer tracked, so always queried
    assert users.has_events(context, dataset, "u9")
    assert dataset not in users._users
