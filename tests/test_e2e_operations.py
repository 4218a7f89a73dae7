"""Every operation of the three botocore models is served: a request that satisfies the
model reaches a handler, never the wire layer's "not implemented" answer.

The requests are made from the models themselves (required members only, each value the
first of a few plain candidates that the member's pattern and length accept), so a new
operation in botocore fails this test until it is built.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import botocore.session
import pytest
import regex
from botocore import xform_name
from botocore.exceptions import ClientError
from botocore.model import Shape

SERVICES = ("personalize", "personalize-runtime", "personalize-events")
STRING_CANDIDATES = (
    "arn:aws:personalize:us-east-1:000000000000:dataset-group/nothing-here",
    "arn:aws:iam::000000000000:role/PersonalizeRole",
    "s3://bucket/folder/",
    "name-1",
    "Interactions",
    "{}",
    "1",
)


def _string(shape: Shape) -> str:
    minimum = shape.metadata.get("min", 0)
    maximum = shape.metadata.get("max", 10**6)
    if "enum" in shape.metadata:
        return str(shape.metadata["enum"][0])
    pattern = shape.metadata.get("pattern")
    for candidate in STRING_CANDIDATES:
        if not minimum <= len(candidate) <= maximum:
            continue
        if pattern is None or regex.fullmatch(pattern, candidate):
            return candidate
    raise AssertionError(f"no candidate string fits {shape.name} ({pattern})")


def example(shape: Shape) -> Any:
    """A value of `shape` with only what the model requires."""
    kind = shape.type_name
    if kind == "structure":
        return {name: example(shape.members[name]) for name in shape.required_members}
    if kind == "list":
        return [example(shape.member) for _ in range(shape.metadata.get("min", 0))]
    if kind == "map":
        return {}
    if kind == "string":
        return _string(shape)
    if kind in ("integer", "long"):
        return max(int(shape.metadata.get("min", 1)), 1)
    if kind in ("float", "double"):
        return float(shape.metadata.get("min", 1))
    if kind == "boolean":
        return False
    if kind == "timestamp":
        return datetime(2024, 1, 1, tzinfo=UTC)
    if kind == "blob":
        return b"x"
    raise AssertionError(f"unexpected shape type {kind}")


def _operations() -> list[tuple[str, str]]:
    session = botocore.session.get_session()
    return [
        (service, name)
        for service in SERVICES
        for name in session.get_service_model(service).operation_names
    ]


def test_the_models_hold_79_operations() -> None:
    assert len(_operations()) == 79


@pytest.mark.parametrize(("service", "name"), _operations())
def test_operation_is_served(server, service: str, name: str) -> None:  # type: ignore[no-untyped-def]
    client = server.client(service)
    operation = client.meta.service_model.operation_model(name)
    request = example(operation.input_shape) if operation.input_shape is not None else {}
    method = getattr(client, xform_name(name))
    try:
        method(**request)
    except ClientError as error:
        message = error.response["Error"].get("Message", "")
        assert "not implemented" not in message, f"{service} {name}: {message}"
        # The request met the model, so the handler itself answered.
        assert "validation error detected" not in message, f"{service} {name}: {message}"
