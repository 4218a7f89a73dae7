"""Malformed requests, generated from botocore's models, get a typed 4xx, fast, and stall nobody.

The fuzzer walks every operation of the three services and sends raw HTTP (no boto3, which
would refuse to send most of this): missing required members, wrong types, length, range,
pattern and enum violations, oversize and deeply nested values, tampered nextTokens, timestamps
out of range, garbage bodies and wrong HTTP methods. Each answer must be a 4xx with AWS's error
body (never a 5xx, never a 2xx for invalid input) and come back within a second, which is a
correctness bound (no request may stall the server), not a benchmark.
"""

from __future__ import annotations

import base64
import http.client
import json
import random
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import botocore.session
import pytest
import regex
from botocore.model import OperationModel, Shape

from openpersonalize.testing.server import ServerProcess

SEED = 20240511
SERVICES = ("personalize", "personalize-runtime", "personalize-events")
TARGET = "AmazonPersonalize"  # the control plane's X-Amz-Target prefix
LIMIT_S = 1.0  # every answer, valid or not, within this
DEADLINE_S = 90.0  # a server that stalls is reported, not waited for request after request
MAX_ERROR_BYTES = 65536  # an error answer names problems, it does not echo the request
BIG = 65536  # "oversize": 64 KB, far over every modeled max length
DEEP = 5000  # nesting depth of the "deeply nested" values
NEAR_LIMIT = 1000  # just under a JSON parser's own depth limit, but over Python's recursion
MAX_PATH_DEPTH = 6  # how deep into nested structures members are mutated
WRONG_METHODS = ("GET", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD")

# Samples tried, in order, for a string with a pattern: the first that matches (and fits the
# length bounds) is the valid value; candidates for a pattern violation are the opposite.
PATTERN_SAMPLES = (
    "arn:aws:personalize:us-east-1:000000000000:dataset-group/fuzz",
    "fuzz",
    "FUZZ_1",
    "Interactions",
    "s3://fuzz-bucket/fuzz.csv",
    "rate(7 days)",
    "arn:aws:iam::000000000000:role/fuzz",
    "arn:aws:kms:us-east-1:000000000000:key/fuzz",
    "x",
)
PATTERN_MISSES = ("\n", "a\n", "!", "\x00", " ", "é", "\x7f")

# Timestamps the service cannot represent (epoch seconds outside years 1-9999, non-numbers).
BAD_TIMESTAMPS: tuple[Any, ...] = (
    1e20,
    -1e20,
    -62135596801,  # one second before 0001-01-01
    253402300800,  # 10000-01-01
    "0000-01-01T00:00:00Z",
    "10000-01-01T00:00:00Z",
    "NaN",
    "Infinity",
    "-Infinity",
    "not a time",
    True,
    [],
)
RAW_BAD_NUMBERS = ("1e999", "-1e999", "NaN", "Infinity")  # JSON that no JSON parser accepts


class Raw:
    """A JSON fragment spliced into a body verbatim (what json.dumps will not write)."""

    def __init__(self, text: str) -> None:
        self.text = text


MISSING = object()  # the leaf "value" that removes a member
KEY = "\x00key"  # path step into a map's key rather than its value


@dataclass
class Case:
    label: str  # "<operation> <what was done>" for the report
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    invalid: bool  # a 2xx for this request is a defect


def _service_models() -> dict[str, Any]:
    session = botocore.session.get_session()
    return {service: session.get_service_model(service) for service in SERVICES}


def _deep_array(depth: int = DEEP) -> str:
    return "[" * depth + "]" * depth


def _token(payload: dict[str, Any] | str) -> str:
    text = payload if isinstance(payload, str) else json.dumps(payload)
    return base64.urlsafe_b64encode(text.encode()).decode()


def bad_tokens(real: str | None = None) -> list[str]:
    """nextTokens that must be refused: forged, garbled, or a real one with its offset tampered."""
    tokens = [
        _token('{"offset": 1e999, "scope": "x"}'),
        _token('{"offset": -1e999, "scope": "x"}'),
        _token('{"offset": NaN, "scope": "x"}'),
        _token({"offset": 10**30, "scope": "x"}),
        _token({"offset": 2**63, "scope": "x"}),
        _token({"offset": -1, "scope": "x"}),
        _token({"offset": 1.5, "scope": "x"}),
        _token({"offset": "5", "scope": "x"}),
        _token({"offset": True, "scope": "x"}),
        _token([1, 2]),
        _token("not json"),
        "!!!not base64!!!",
        "AAAA",
        "=",
    ]
    if real:
        scope = json.dumps(json.loads(base64.urlsafe_b64decode(real))["scope"])
        for offset in ("1e999", str(10**30), str(2**63), str(2**63 - 1), "-1", "1.0e18"):
            tokens.append(_token(f'{{"offset": {offset}, "scope": {scope}}}'))
    return tokens


class Generator:
    """Valid and invalid values for botocore shapes, seeded."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    # ---- valid values ----------------------------------------------------------------------

    def valid(self, shape: Shape) -> Any:
        kind = shape.type_name
        if kind == "structure":
            return {name: self.valid(shape.members[name]) for name in shape.required_members}
        if kind == "list":
            return [self.valid(shape.member) for _ in range(max(1, shape.metadata.get("min", 1)))]
        if kind == "map":
            return {self.valid(shape.key): self.valid(shape.value)}
        if kind == "string":
            return self.valid_string(shape)
        if kind in ("integer", "long"):
            low, high = shape.metadata.get("min", 1), shape.metadata.get("max", 10)
            return max(low, min(high, 1))
        if kind in ("float", "double"):
            low, high = shape.metadata.get("min", 0.0), shape.metadata.get("max", 1.0)
            return float(max(low, min(high, 0.5)))
        if kind == "boolean":
            return True
        if kind == "timestamp":
            return 1_700_000_000
        return "x"

    def valid_string(self, shape: Shape) -> str:
        enum = shape.metadata.get("enum")
        if enum:
            return str(enum[0])
        low, high = shape.metadata.get("min", 0), shape.metadata.get("max", 10_000)
        pattern = shape.metadata.get("pattern")
        for sample in PATTERN_SAMPLES:
            padded = sample + "x" * max(0, low - len(sample))
            if len(padded) <= high and (pattern is None or regex.fullmatch(pattern, padded)):
                return padded
        return "x" * max(1, low)

    # ---- invalid values --------------------------------------------------------------------

    def invalid(self, shape: Shape, member_name: str) -> Iterator[tuple[str, Any, bool]]:
        """(label, value, definitely invalid) for one member of this shape."""
        kind = shape.type_name
        meta = shape.metadata
        low, high = meta.get("min"), meta.get("max")
        if member_name == "nextToken":
            for token in bad_tokens():
                yield "bad nextToken", token, True
        if kind == "string":
            yield "wrong type (number)", 12345, True
            yield "wrong type (list)", ["x"], True
            yield "wrong type (object)", {"x": 1}, True
            if high is not None:
                yield "too long", "a" * (high + 1), True
            # 64 KB near-misses: the shape of input that makes backtracking patterns explode.
            for filler, last in ((":", "\n"), ("a", "\x7f"), (" ", "\x01")):
                sample = self.valid_string(shape)
                value = sample + filler * (BIG - len(sample) - 1) + last
                yield f"64 KB near-miss ({filler!r})", value, high is not None
            if low:
                yield "too short", "a" * (low - 1), True
            pattern = meta.get("pattern")
            if pattern:
                for miss in PATTERN_MISSES:
                    fits = (low or 0) <= len(miss) <= (high if high is not None else BIG)
                    if fits and not regex.fullmatch(pattern, miss):
                        yield "pattern violation", miss, True
                        break
            if meta.get("enum"):
                yield "not in enum", "NOT_AN_ENUM_VALUE", True
                yield "enum in wrong case", str(meta["enum"][0]).swapcase() + "!", True
            if high is None or high >= 2000:
                # JSON inside a string (CreateSchema's schema): nested past any parser's stack.
                depth = min(DEEP, (high or 2 * DEEP) // 2)
                yield "deeply nested JSON text", _deep_array(depth), False
        elif kind in ("integer", "long"):
            yield "wrong type (string)", "1", True
            yield "wrong type (boolean)", True, True
            yield "fraction", 1.5, True
            bits = 31 if kind == "integer" else 63
            yield "overflow", 2**bits, True
            yield "underflow", -(2**bits) - 1, True
            yield "huge", 10**30, True
            if low is not None:
                yield "below min", low - 1, True
            if high is not None:
                yield "above max", high + 1, True
            for raw in RAW_BAD_NUMBERS:
                yield f"raw {raw}", Raw(raw), True
        elif kind in ("float", "double"):
            yield "wrong type (string)", "0.5", True
            yield "wrong type (boolean)", False, True
            if low is not None:
                yield "below min", low - 1.5, True
            if high is not None:
                yield "above max", high + 1.5, True
            for raw in RAW_BAD_NUMBERS:
                yield f"raw {raw}", Raw(raw), True
        elif kind == "boolean":
            yield "wrong type (string)", "true", True
            yield "wrong type (number)", 1, True
        elif kind == "timestamp":
            for value in BAD_TIMESTAMPS:
                yield f"bad timestamp {value!r}", value, True
            for raw in RAW_BAD_NUMBERS:
                yield f"raw {raw}", Raw(raw), True
        elif kind == "structure":
            yield "wrong type (list)", [], True
            yield "wrong type (string)", "x", True
            yield "unknown member", {**self.valid(shape), "fuzzUnknownMember": 1}, True
            yield "deeply nested", Raw(_deep_array()), True
            yield "nested 1,000 deep", Raw(_deep_array(NEAR_LIMIT)), True
        elif kind == "list":
            yield "wrong type (object)", {}, True
            yield "wrong type (string)", "x", True
            yield "deeply nested", Raw(_deep_array()), True
            yield "nested 1,000 deep", Raw(_deep_array(NEAR_LIMIT)), True
            if high is not None and high < 5000:
                yield "too many", [self.valid(shape.member)] * (high + 1), True
                yield "far too many", [{"bad": True}] * 20_000, True
            if low:
                yield "too few", [], True
        elif kind == "map":
            yield "wrong type (list)", [], True
            yield "wrong type (string)", "x", True
            if high is not None and high < 5000:
                many = {f"k{i}": self.valid(shape.value) for i in range(high + 1)}
                yield "too many", many, True


def member_paths(
    shape: Shape, path: tuple[str, ...] = (), seen: frozenset[str] = frozenset()
) -> Iterator[tuple[tuple[str, ...], Shape, bool]]:
    """(path, shape, required) of every member reachable without recursion, breadth-limited."""
    if len(path) >= MAX_PATH_DEPTH or shape.name in seen:
        return
    seen = seen | {shape.name}
    kind = shape.type_name
    if kind == "structure":
        required = set(shape.required_members)
        for name, member in shape.members.items():
            yield (*path, name), member, name in required
            yield from member_paths(member, (*path, name), seen)
    elif kind == "list":
        yield (*path, "0"), shape.member, False
        yield from member_paths(shape.member, (*path, "0"), seen)
    elif kind == "map":
        yield (*path, KEY), shape.key, False
        yield (*path, "fuzzkey"), shape.value, False
        yield from member_paths(shape.value, (*path, "fuzzkey"), seen)


def build(generator: Generator, shape: Shape, path: tuple[str, ...], leaf: Any) -> Any:
    """A valid value of `shape` except at `path`, which holds `leaf` (or is removed: MISSING)."""
    if not path:
        return leaf
    head, rest = path[0], path[1:]
    kind = shape.type_name
    if kind == "structure":
        value = generator.valid(shape)
        if leaf is MISSING and not rest:
            value.pop(head, None)
        else:
            value[head] = build(generator, shape.members[head], rest, leaf)
        return value
    if kind == "list":
        extra = max(0, shape.metadata.get("min", 1) - 1)
        return [build(generator, shape.member, rest, leaf)] + [
            generator.valid(shape.member) for _ in range(extra)
        ]
    if kind == "map":
        if head == KEY:
            return {leaf: generator.valid(shape.value)}
        return {head: build(generator, shape.value, rest, leaf)}
    raise AssertionError(f"cannot descend into a {kind}")


def encode(body: Any) -> bytes:
    """JSON for a body, with Raw fragments spliced in where they stand."""
    fragments: list[str] = []

    def default(value: Any) -> str:
        if isinstance(value, Raw):
            fragments.append(value.text)
            return f"\x00raw{len(fragments) - 1}\x00"
        raise TypeError(type(value))

    text = json.dumps(body, default=default)
    for index, fragment in enumerate(fragments):
        text = text.replace(json.dumps(f"\x00raw{index}\x00"), fragment)
    return text.encode()


def request_for(
    service: str, operation: OperationModel, body: bytes, method: str | None = None
) -> tuple[str, str, dict[str, str]]:
    if operation.service_model.protocol == "json":
        prefix = operation.service_model.metadata["targetPrefix"]
        headers = {
            "Content-Type": "application/x-amz-json-1.1",
            "X-Amz-Target": f"{prefix}.{operation.name}",
        }
        return method or "POST", "/", headers
    return (
        method or operation.http["method"],
        operation.http["requestUri"],
        {"Content-Type": "application/json"},
    )


def cases_for(
    generator: Generator, service: str, operation: OperationModel, real_token: str | None
) -> Iterator[Case]:
    shape = operation.input_shape
    name = f"{service}:{operation.name}"

    def case(label: str, body: bytes, invalid: bool, method: str | None = None) -> Case:
        verb, path, headers = request_for(service, operation, body, method)
        return Case(f"{name} {label}", verb, path, headers, body, invalid)

    baseline = generator.valid(shape) if shape is not None else {}
    has_required = bool(shape is not None and shape.required_members)
    yield case("valid baseline", encode(baseline), False)
    for method in WRONG_METHODS:
        yield case(f"method {method}", encode(baseline), True, method)
    garbage = bytes(generator.rng.randrange(256) for _ in range(generator.rng.randrange(1, 300)))
    yield case("garbage body", garbage, True)
    yield case("not JSON", b"{not json", True)
    yield case("truncated JSON", encode(baseline)[:-1] or b"{", True)
    for text in (b"[]", b"1", b'"x"', b"true", b"null", b"[{}]"):
        yield case(f"JSON {text.decode()} (not an object)", text, True)
    yield case("deeply nested body", _deep_array().encode(), True)
    yield case("deeply nested object", ('{"a":' * DEEP + "1" + "}" * DEEP).encode(), True)
    yield case("body nested 1,000 deep", _deep_array(NEAR_LIMIT).encode(), True)
    near = '{"fuzz":' * NEAR_LIMIT + "1" + "}" * NEAR_LIMIT
    yield case("member nested 1,000 deep", encode({**baseline, "fuzz": Raw(near)}), True)
    yield case("empty body", b"", has_required)
    yield case("unknown member", encode({**baseline, "fuzzUnknownMember": 1}), True)
    many = {f"fuzz{index}": index for index in range(20_000)}
    yield case("20,000 unknown members", encode({**baseline, **many}), True)
    if shape is None:
        return
    for path, member, required in member_paths(shape):
        member_name = path[-1]
        if required:
            yield case(
                f"missing {'.'.join(path)}", encode(build(generator, shape, path, MISSING)), True
            )
            yield case(f"null {'.'.join(path)}", encode(build(generator, shape, path, None)), True)
        for label, value, invalid in generator.invalid(member, member_name):
            if path[-1] == KEY and not isinstance(value, str):
                continue  # JSON object keys are always strings
            try:
                body = encode(build(generator, shape, path, value))
            except (TypeError, ValueError):
                continue
            yield case(f"{'.'.join(path)}: {label}", body, invalid)
        if member_name == "nextToken" and real_token:
            for token in bad_tokens(real_token)[-6:]:
                yield case(
                    "tampered real nextToken", encode({**baseline, "nextToken": token}), True
                )


@dataclass
class Answer:
    status: int
    body: bytes
    seconds: float


class Client:
    """One keep-alive connection, reopened whenever the server closes it."""

    def __init__(self, port: int, timeout: float = 30.0) -> None:
        self.port = port
        self.timeout = timeout
        self.connection: http.client.HTTPConnection | None = None

    def send(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Answer:
        for attempt in range(2):
            if self.connection is None:
                self.connection = http.client.HTTPConnection(
                    "127.0.0.1", self.port, timeout=self.timeout
                )
            started = time.monotonic()
            try:
                self.connection.request(method, path, body=body, headers=headers)
                reply = self.connection.getresponse()
                data = reply.read()
            except (ConnectionError, http.client.RemoteDisconnected, http.client.BadStatusLine):
                self.close()
                if attempt:
                    raise
                continue
            seconds = time.monotonic() - started
            if reply.getheader("connection", "").lower() == "close":
                self.close()
            return Answer(reply.status, data, seconds)
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None


def check(case: Case, answer: Answer) -> str | None:
    """What is wrong with an answer, or None."""
    if answer.status >= 500:
        return f"{answer.status} {answer.body[:160]!r}"
    if case.invalid and answer.status < 400:
        return f"{answer.status} for invalid input"
    if answer.seconds > LIMIT_S:
        return f"took {answer.seconds:.2f} s"
    if answer.status >= 400 and len(answer.body) > MAX_ERROR_BYTES:
        return f"{answer.status} with an answer of {len(answer.body)} bytes"
    if answer.status >= 400 and case.method != "HEAD":
        try:
            error = json.loads(answer.body)
        except ValueError:
            return f"{answer.status} with a non-JSON body {answer.body[:80]!r}"
        if not (
            isinstance(error, dict)
            and isinstance(error.get("__type"), str)
            and isinstance(error.get("message"), str)
        ):
            return f"{answer.status} without AWS's error body: {answer.body[:80]!r}"
    return None


def real_tokens(client: Client, models: dict[str, Any]) -> dict[str, str]:
    """A genuine nextToken for each List operation that has a second page, to tamper with."""
    tokens = {}
    for service, service_model in models.items():
        for name in service_model.operation_names:
            operation = service_model.operation_model(name)
            shape = operation.input_shape
            if shape is None or "nextToken" not in shape.members or shape.required_members:
                continue
            body = {"maxResults": 1} if "maxResults" in shape.members else {}
            method, path, headers = request_for(service, operation, b"")
            answer = client.send(method, path, headers, json.dumps(body).encode())
            if answer.status == 200:
                token = json.loads(answer.body).get("nextToken")
                if token:
                    tokens[f"{service}:{name}"] = token
    return tokens


def fuzz_cases(client: Client) -> list[Case]:
    """Every case for every operation of the three models, in a seeded order."""
    rng = random.Random(SEED)
    generator = Generator(rng)
    models = _service_models()
    tokens = real_tokens(client, models)
    cases: list[Case] = []
    for service, service_model in models.items():
        for name in service_model.operation_names:
            operation = service_model.operation_model(name)
            cases.extend(cases_for(generator, service, operation, tokens.get(f"{service}:{name}")))
    json_11 = {"Content-Type": "application/x-amz-json-1.1"}
    cases += [
        Case(
            "- unknown target",
            "POST",
            "/",
            {**json_11, "X-Amz-Target": f"{TARGET}.NoSuchOp"},
            b"{}",
            True,
        ),
        Case(
            "- foreign target",
            "POST",
            "/",
            {**json_11, "X-Amz-Target": "DynamoDB_20120810.ListTables"},
            b"{}",
            True,
        ),
        Case("- bare target prefix", "POST", "/", {**json_11, "X-Amz-Target": TARGET}, b"{}", True),
        Case("- no target", "POST", "/", json_11, b"{}", True),
        Case("- unknown path", "POST", "/no-such-path", {}, b"{}", True),
        Case(
            "- body over 16 MB",
            "POST",
            "/",
            {**json_11, "X-Amz-Target": f"{TARGET}.ListSchemas"},
            b'{"nextToken": "' + b"a" * (17 * 2**20) + b'"}',
            True,
        ),
    ]
    rng.shuffle(cases)
    return cases


def send_all(client: Client, cases: list[Case]) -> tuple[list[str], float]:
    """(findings, seconds) for sending every case, one at a time, on one keep-alive connection."""
    findings: list[str] = []
    started = time.monotonic()
    for index, case in enumerate(cases):
        if time.monotonic() - started > DEADLINE_S:
            findings.append(f"stopped after {index} of {len(cases)} requests: over {DEADLINE_S} s")
            break
        try:
            answer = client.send(case.method, case.path, case.headers, case.body)
        except (OSError, http.client.HTTPException) as error:
            findings.append(f"{case.label}: no answer ({error!r})")
            client.close()
            continue
        problem = check(case, answer)
        if problem:
            findings.append(f"{case.label}: {problem}")
    return findings, time.monotonic() - started


@pytest.fixture(scope="module")
def fuzzed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with ServerProcess(tmp_path_factory.mktemp("fuzz")) as running:
        yield running


def _control(server: ServerProcess, operation: str, body: Any, method: str = "POST") -> Answer:
    headers = {
        "Content-Type": "application/x-amz-json-1.1",
        "X-Amz-Target": f"{TARGET}.{operation}",
    }
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return Client(server.port, timeout=10).send(method, "/", headers, raw)


def _rest(server: ServerProcess, path: str, body: Any, method: str = "POST") -> Answer:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return Client(server.port, timeout=10).send(
        method, path, {"Content-Type": "application/json"}, raw
    )


def _error_type(answer: Answer) -> str:
    return str(json.loads(answer.body)["__type"])


def _health_seconds(server: ServerProcess) -> float:
    answer = Client(server.port, timeout=10).send("GET", "/health", {}, b"")
    assert answer.status == 200
    return answer.seconds


def test_fuzz_every_operation(fuzzed_server: ServerProcess) -> None:
    client = Client(fuzzed_server.port, timeout=5 * LIMIT_S)
    # Two dataset groups, so the List operations have a second page and a genuine nextToken.
    for index in range(2):
        _control(fuzzed_server, "CreateDatasetGroup", {"name": f"fuzz-{SEED}-{index}"})
    cases = fuzz_cases(client)
    findings, elapsed = send_all(client, cases)
    client.close()
    operations = {case.label.split(" ", 1)[0] for case in cases} - {"-"}
    invalid = sum(case.invalid for case in cases)
    print(
        f"\nfuzz: {len(cases)} requests ({invalid} invalid by construction) over "
        f"{len(operations)} operations in {elapsed:.1f} s, {len(findings)} findings"
    )
    causes = Counter(finding.split(": ", 1)[-1][:48] for finding in findings)
    assert not findings, f"{len(findings)} findings {causes.most_common(8)}:\n" + "\n".join(
        findings[:40]
    )
    assert len(operations) == 79  # every operation of personalize, -runtime and -events
    assert _health_seconds(fuzzed_server) < LIMIT_S


def test_the_fuzz_cases_are_seeded() -> None:
    class Offline(Client):  # no server: the List operations have no genuine tokens to tamper
        def send(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Answer:
            return Answer(400, b"{}", 0.0)

    first = [(case.label, case.body) for case in fuzz_cases(Offline(0))]
    assert first == [(case.label, case.body) for case in fuzz_cases(Offline(0))]
    assert len(first) > 3000


# ---- one regression test per cause the model-driven fuzzer found ---------------------------


def test_tampered_next_tokens_are_invalid_next_token(fuzzed_server: ServerProcess) -> None:
    """Cause 1: an offset of 1e999 or 10**30 reached int() or SQLite (500 on every List)."""
    for index in range(2):
        _control(fuzzed_server, "CreateDatasetGroup", {"name": f"tokens-{index}"})
    for operation in ("ListDatasetGroups", "ListRecipes"):  # a database list, an in-memory one
        first = _control(fuzzed_server, operation, {"maxResults": 1})
        real = json.loads(first.body)["nextToken"]
        assert _control(fuzzed_server, operation, {"nextToken": real}).status == 200
        for token in bad_tokens(real):
            answer = _control(fuzzed_server, operation, {"nextToken": token, "maxResults": 1})
            assert answer.status == 400, (operation, token, answer)
            assert _error_type(answer) == "InvalidNextTokenException", (token, answer)


@pytest.mark.parametrize("sent_at", BAD_TIMESTAMPS, ids=repr)
def test_timestamps_outside_years_1_to_9999_are_invalid_input(
    fuzzed_server: ServerProcess, sent_at: Any
) -> None:
    """Cause 2: sentAt 1e20 (or year 0, year 10000) raised OverflowError: a 500."""
    event = {"eventType": "click", "sentAt": sent_at}
    answer = _rest(
        fuzzed_server, "/events", {"trackingId": "t", "sessionId": "s", "eventList": [event]}
    )
    assert answer.status == 400 and _error_type(answer) == "InvalidInputException", answer
    assert "eventList.1.sentAt" in json.loads(answer.body)["message"]
    interaction = {"actionId": "a", "sessionId": "s", "eventType": "Taken", "timestamp": sent_at}
    answer = _rest(
        fuzzed_server,
        "/action-interactions",
        {"trackingId": "t", "actionInteractions": [interaction]},
    )
    assert answer.status == 400 and _error_type(answer) == "InvalidInputException", answer
    assert "actionInteractions.1.timestamp" in json.loads(answer.body)["message"]


@pytest.mark.parametrize(
    "sent_at", [-62135596800, 253402300799, "0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z"]
)
def test_the_first_and_last_instants_are_timestamps(
    fuzzed_server: ServerProcess, sent_at: Any
) -> None:
    event = {"eventType": "click", "sentAt": sent_at}
    answer = _rest(
        fuzzed_server, "/events", {"trackingId": "t", "sessionId": "s", "eventList": [event]}
    )
    # Past validation: only the made-up tracking ID is wrong.
    assert answer.status == 400 and "trackingId" in json.loads(answer.body)["message"], answer


def test_deeply_nested_json_is_invalid_input(fuzzed_server: ServerProcess) -> None:
    """Cause 3: a 5,000-deep array as a schema overflowed the stack (RecursionError: a 500)."""
    for depth in (NEAR_LIMIT, DEEP):
        answer = _control(
            fuzzed_server, "CreateSchema", {"name": "deep", "schema": _deep_array(depth)}
        )
        assert answer.status == 400 and _error_type(answer) == "InvalidInputException", answer
        for body in (_deep_array(depth), '{"name": ' + _deep_array(depth) + "}"):
            answer = _control(fuzzed_server, "CreateDatasetGroup", body.encode())
            assert answer.status == 400 and _error_type(answer) == "InvalidInputException", answer
    answer = _control(fuzzed_server, "ListSchemas", {})
    assert "deep" not in {schema["name"] for schema in json.loads(answer.body)["schemas"]}


def _near_misses(size: int) -> list[str]:
    return [
        "arn:aws:personalize:" + "a:" * ((size - 20) // 2),
        "arn:aws:personalize:" + ":" * (size - 21) + "\n",
        "a" * (size - 1) + "\x7f",
        " " * (size - 1) + "\x01",
    ]


def test_near_miss_values_are_refused_fast(fuzzed_server: ServerProcess) -> None:
    """Cause 4: a 64 KB near-miss ARN kept a backtracking pattern busy for 20+ s."""
    for value in _near_misses(BIG):
        answer = _control(fuzzed_server, "DeleteCampaign", {"campaignArn": value})
        assert answer.status == 400 and answer.seconds < LIMIT_S, answer
        assert "length less than or equal to 256" in json.loads(answer.body)["message"]
        event = {
            "eventType": "click",
            "sentAt": 1,
            "metricAttribution": {"eventAttributionSource": value},
        }
        body = {"trackingId": "t", "sessionId": "s", "eventList": [event]}
        answer = _rest(fuzzed_server, "/events", body)
        assert answer.status == 400 and answer.seconds < LIMIT_S, answer


def test_every_model_pattern_is_fast_on_near_misses_at_its_max_length() -> None:
    """Within its max length no model pattern backtracks for long (validated in-process)."""
    from openpersonalize.wire.model import operations, validate_input

    for operation in operations().values():
        shape = operation.model.input_shape
        if shape is None:
            continue
        for name, member in shape.members.items():
            if member.type_name != "string" or "pattern" not in member.metadata:
                continue
            for value in _near_misses(int(member.metadata.get("max", BIG))):
                started = time.monotonic()
                try:
                    validate_input(operation, {name: value})
                except Exception:  # the problems found are not what is timed
                    pass
                assert time.monotonic() - started < 0.1, (operation.name, name, value[:40])


def test_health_answers_while_slow_requests_are_in_flight(fuzzed_server: ServerProcess) -> None:
    """Cause 5: validation ran on the event loop, so one slow request stalled /health too."""
    port = fuzzed_server.port
    target = {"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": f"{TARGET}.ListSchemas"}
    answers: list[Answer] = []

    def dribble() -> None:
        # A malformed body sent slowly: the request is in flight for about 1.5 s.
        body = json.dumps({"campaignArn": _near_misses(BIG)[0]}).encode()
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        connection.putrequest("POST", "/")
        connection.putheader("Content-Type", "application/x-amz-json-1.1")
        connection.putheader("X-Amz-Target", f"{TARGET}.DeleteCampaign")
        connection.putheader("Content-Length", str(len(body)))
        connection.endheaders()
        started = time.monotonic()
        for offset in range(0, len(body), len(body) // 15 + 1):
            connection.send(body[offset : offset + len(body) // 15 + 1])
            time.sleep(0.1)
        reply = connection.getresponse()
        answers.append(Answer(reply.status, reply.read(), time.monotonic() - started))
        connection.close()

    def near_misses() -> None:
        client = Client(port, timeout=60)
        for value in _near_misses(BIG) * 3:
            answers.append(_control(fuzzed_server, "DeleteCampaign", {"campaignArn": value}))
            body = {"campaignArn": value, "userId": "u"}
            answers.append(_rest(fuzzed_server, "/recommendations", body))
        # A 15 MB body: decoding and walking it is real work for the server (on a thread).
        big = json.dumps({"fuzz": list(range(1_500_000))}).encode()
        answers.append(client.send("POST", "/", target, big))
        client.close()

    threads = [threading.Thread(target=dribble)] + [
        threading.Thread(target=near_misses) for _ in range(3)
    ]
    for thread in threads:
        thread.start()
    health: list[float] = []
    while any(thread.is_alive() for thread in threads) and len(health) < 400:
        health.append(_health_seconds(fuzzed_server))
        time.sleep(0.02)
    for thread in threads:
        thread.join(timeout=60)
    assert len(answers) == 1 + 3 * (4 * 3 * 2 + 1)
    assert {answer.status for answer in answers} == {400}, answers
    assert len(health) >= 10 and max(health) < LIMIT_S, health


@pytest.mark.parametrize("method", WRONG_METHODS)
def test_wrong_methods_never_run_the_operation(fuzzed_server: ServerProcess, method: str) -> None:
    """Cause 6: GET (or PUT, DELETE, ...) with an X-Amz-Target ran the operation: a 200."""
    name = f"by-{method.lower()}"
    answer = _control(fuzzed_server, "CreateDatasetGroup", {"name": name}, method)
    assert answer.status == 405, answer
    if method != "HEAD":
        assert _error_type(answer) == "UnknownOperationException"
    answer = _control(fuzzed_server, "ListDatasetGroups", {})
    assert name not in {group["name"] for group in json.loads(answer.body)["datasetGroups"]}
    answer = _rest(fuzzed_server, "/recommendations", {"campaignArn": "x", "userId": "u"}, method)
    assert answer.status == 405, answer
    assert Client(fuzzed_server.port).send("GET", "/health", {}, b"").status == 200


def test_garbage_is_a_typed_4xx_with_a_short_answer(fuzzed_server: ServerProcess) -> None:
    for body in (b"\xff\xfe\x00", b"{not json", b"[]", b"null", b'"x"', b"12"):
        answer = _control(fuzzed_server, "ListSchemas", body)
        assert answer.status == 400 and _error_type(answer) == "InvalidInputException", answer
    # 20,000 bad events: one problem (the list is too long), not 40 MB of them.
    body = {"trackingId": "t", "sessionId": "s", "eventList": [{}] * 20_000}
    answer = _rest(fuzzed_server, "/events", body)
    assert answer.status == 400 and len(answer.body) < 1000, answer.body[:200]
    answer = _control(fuzzed_server, "ListSchemas", {f"k{i}": i for i in range(20_000)})
    message = json.loads(answer.body)["message"]
    assert answer.status == 400 and message.startswith("At least 50 validation errors"), message
    answer = _control(fuzzed_server, "ListSchemas", b'{"nextToken": "' + b"a" * 2**25 + b'"}')
    assert answer.status == 413 and _error_type(answer) == "RequestEntityTooLargeException"
