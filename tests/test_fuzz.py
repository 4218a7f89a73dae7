"""A seeded fuzz test driven by botocore's models of the three services.

Every request sent is invalid by construction (a required member missing, a wrong type, a
length, range, pattern or enum violation, an oversize or deeply nested value, a bad
nextToken or timestamp, a garbage body, a wrong HTTP method). Each must get a typed 4xx
in AWS's error shape, quickly, and the server must stay responsive throughout: no 5xx, no
2xx, no answer slower than a second, /health fast while slow requests are in flight.
"""

from __future__ import annotations

import base64
import http.client
import json
import random
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.model import Shape

from openpersonalize.testing.server import ServerProcess
from openpersonalize.wire.model import Operation, operations

SEED = 20261202
MAX_SECONDS = 1.0  # a correctness bound on each answer, not a benchmark
PER_OPERATION = 40  # mutations sampled per operation (seeded)
BIG = 65_536


@pytest.fixture(scope="module")
def fuzzed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with ServerProcess(tmp_path_factory.mktemp("fuzz")) as running:
        yield running


def _filler(shape: Shape, name: str) -> Any:
    """A plausible value for a required member (the request stays invalid elsewhere)."""
    kind = shape.type_name
    if kind == "string":
        enum = shape.metadata.get("enum")
        if enum:
            return enum[0]
        if name.lower().endswith("arn"):
            return "arn:aws:personalize:us-east-1:000000000000:campaign/fuzz"
        return "fuzz"[: shape.metadata.get("max", 4)].ljust(shape.metadata.get("min", 1), "z")
    if kind in ("integer", "long"):
        return int(shape.metadata.get("min", 1))
    if kind in ("float", "double"):
        return float(shape.metadata.get("min", 1))
    if kind == "boolean":
        return True
    if kind == "timestamp":
        return 1_700_000_000
    if kind == "list":
        return [_filler(shape.member, name)] * max(1, int(shape.metadata.get("min", 1)))
    if kind == "map":
        return {}
    if kind == "structure":
        return {m: _filler(shape.members[m], m) for m in shape.required_members}
    return "fuzz"


def _baseline(operation: Operation) -> dict[str, Any]:
    shape = operation.model.input_shape
    if shape is None:
        return {}
    return {m: _filler(shape.members[m], m) for m in shape.required_members}


def _wrong_type(shape: Shape) -> Any:
    return {"string": 12345, "boolean": "yes", "structure": "text", "list": {"a": 1}}.get(
        shape.type_name, [1, 2]
    )


def _token(payload: str) -> str:
    return base64.urlsafe_b64encode(payload.encode()).decode()


def _mutations(operation: Operation) -> Iterator[tuple[str, dict[str, Any] | bytes]]:
    """(what, body) pairs, each invalid for this operation."""
    shape = operation.model.input_shape
    base = _baseline(operation)
    yield "unknown member", {**base, "notAMemberOfAnyShape": 1}
    yield "deeply nested", b'{"x": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    for garbage in (b"\xff\xfe\x00garbage", b"[]", b"null", b"123", b'"text"', b"{", b"[" * 3000):
        yield "garbage body", garbage
    if shape is None:
        return
    for name in shape.required_members:
        yield f"missing {name}", {k: v for k, v in base.items() if k != name}
    for name, member in shape.members.items():
        yield f"wrong type {name}", {**base, name: _wrong_type(member)}
        kind, meta = member.type_name, member.metadata
        if kind == "string":
            high = meta.get("max")
            if high is not None:
                yield f"too long {name}", {**base, name: "a" * (high + 1)}
                yield f"64 KB near-miss {name}", {**base, name: "arn:aws:personalize:" + "a:" * BIG}
            if meta.get("min", 0) > 0:
                yield f"too short {name}", {**base, name: ""}
            if meta.get("enum"):
                yield f"enum {name}", {**base, name: "NOT_IN_THE_ENUM"}
            if meta.get("pattern") and high is not None:
                yield f"pattern {name}", {**base, name: "\u0000" * min(high, 200)}
            if name == "nextToken":
                for payload in (
                    '{"offset": 1e999, "scope": "x"}',
                    '{"offset": 123456789012345678901234567890, "scope": "x"}',
                    '{"offset": -5, "scope": "x"}',
                    "not json",
                ):
                    yield "bad nextToken", {**base, name: _token(payload)}
        elif kind in ("integer", "long", "float", "double"):
            if "max" in meta:
                yield f"above range {name}", {**base, name: meta["max"] + 1}
            if "min" in meta:
                yield f"below range {name}", {**base, name: meta["min"] - 1}
        elif kind == "timestamp":
            for bad in (1e20, -1e20, "0000-01-01T00:00:00Z", "10000-01-01T00:00:00Z", "soon"):
                yield f"timestamp {name}", {**base, name: bad}
        elif kind == "list":
            element = member.member
            if element.type_name == "structure" and "timestamp" in {
                m.type_name for m in element.members.values()
            }:
                for field, inner in element.members.items():
                    if inner.type_name == "timestamp":
                        entry = {**_filler(element, name), field: 1e20}
                        yield f"timestamp {name}.{field}", {**base, name: [entry]}
            if "max" in meta:
                too_many = [_filler(element, name)] * (meta["max"] + 1)
                yield f"too many {name}", {**base, name: too_many}


def _send(
    port: int, method: str, path: str, headers: dict[str, str], body: bytes
) -> tuple[int, bytes, float]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    started = time.monotonic()
    try:
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        data = response.read()
        return response.status, data, time.monotonic() - started
    finally:
        connection.close()


def _address(operation: Operation) -> tuple[str, str, dict[str, str]]:
    if operation.protocol == "json":
        return "POST", "/", {
            "Content-Type": "application/x-amz-json-1.1",
            "X-Amz-Target": f"AmazonPersonalize.{operation.name}",
        }
    http_spec = operation.model.http
    return http_spec["method"], http_spec["requestUri"], {"Content-Type": "application/json"}


def _cases() -> list[tuple[Operation, str, str, str, dict[str, str], bytes]]:
    rng = random.Random(SEED)
    cases = []
    for operation in operations().values():
        method, path, headers = _address(operation)
        mutations = list(_mutations(operation))
        for what, body in rng.sample(mutations, min(PER_OPERATION, len(mutations))):
            raw = body if isinstance(body, bytes) else json.dumps(body).encode()
            cases.append((operation, what, method, path, headers, raw))
        if operation.protocol == "json":  # the model says POST; every other method is refused
            for wrong in ("GET", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"):
                cases.append((operation, f"method {wrong}", wrong, path, headers, b"{}"))
    rng.shuffle(cases)
    return cases


def test_every_malformed_request_gets_a_typed_4xx_fast(fuzzed_server: ServerProcess) -> None:
    cases = _cases()
    assert len(cases) > 2000  # every operation of the three models, many ways each
    failures = []
    for operation, what, method, path, headers, body in cases:
        status, data, seconds = _send(fuzzed_server.port, method, path, headers, body)
        typed = method == "HEAD" or "__type" in json.loads(data or b"{}")
        if not 400 <= status < 500 or not typed or seconds > MAX_SECONDS:
            failures.append((operation.service, operation.name, what, status, seconds, data[:200]))
    assert not failures, f"{len(failures)} of {len(cases)}: {failures[:10]}"
    status, _, _ = _send(fuzzed_server.port, "GET", "/health", {}, b"")
    assert status == 200


def test_slow_requests_do_not_stall_the_others(fuzzed_server: ServerProcess) -> None:
    # Several 64 KB near-miss ARNs and event sources at once; /health answers meanwhile.
    big = json.dumps({"campaignArn": "arn:aws:personalize:" + "a:" * BIG}).encode()
    headers = {
        "Content-Type": "application/x-amz-json-1.1",
        "X-Amz-Target": "AmazonPersonalize.DeleteCampaign",
    }
    results: list[int] = []

    def hammer() -> None:
        for _ in range(5):
            results.append(_send(fuzzed_server.port, "POST", "/", headers, big)[0])

    threads = [threading.Thread(target=hammer) for _ in range(6)]
    for thread in threads:
        thread.start()
    health = [_send(fuzzed_server.port, "GET", "/health", {}, b"") for _ in range(20)]
    for thread in threads:
        thread.join()
    assert all(status == 200 and seconds < MAX_SECONDS for status, _, seconds in health)
    assert results and set(results) == {400}


def test_the_fuzz_cases_are_seeded() -> None:
    first = [(c[0].name, c[1], c[5]) for c in _cases()]
    assert first == [(c[0].name, c[1], c[5]) for c in _cases()]
