"""The wire contract, read from botocore's service models.

Nothing here is written per operation: each operation's input shape becomes a
validator (compiled once, on first use) and its output shape drives
serialization. boto3 checks only required members, types and minimums on the
client side, so everything else (max, pattern, enum, unknown members) must be
checked here.
"""

from __future__ import annotations

import datetime as dt
import math
import reprlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

import botocore.session
import regex
from botocore.model import OperationModel, ServiceModel, Shape

from openpersonalize.errors import InvalidInputException

SERVICES = ("personalize", "personalize-runtime", "personalize-events")

# A validator checks one value at one path and returns it converted
# (timestamps to datetimes); problems are appended to the list it is given.
Validator = Callable[[Any, str, list[str]], Any]

# Past this many problems a validation stops: a list of 100,000 bad elements is answered with
# the first few, not a 40 MB message that took seconds to build.
MAX_PROBLEMS = 50
# The model's "integer" is 32 bits and "long" 64 bits, as the service's (Java) types are.
INTEGER_RANGE = {"integer": (-(2**31), 2**31 - 1), "long": (-(2**63), 2**63 - 1)}
# Timestamps: what a datetime holds, 0001-01-01 to 9999-12-31 (UTC); epoch seconds outside
# that (1e20, -1e20) are not times.
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
FIRST_SECONDS = (dt.datetime.min.replace(tzinfo=dt.UTC) - _EPOCH).total_seconds()
LAST_SECONDS = (dt.datetime.max.replace(tzinfo=dt.UTC) - _EPOCH).total_seconds()


@cache
def service_model(service: str) -> ServiceModel:
    return botocore.session.get_session().get_service_model(service)


@dataclass(frozen=True)
class Operation:
    service: str
    name: str
    model: OperationModel

    @property
    def protocol(self) -> str:
        return self.model.service_model.protocol

    def error_status(self, code: str, default: int) -> int:
        """HTTP status of a modeled error for this operation (REST services set it per error)."""
        if default in (403, 500):  # authentication and internal failures, in every protocol
            return default
        if self.protocol == "json":  # the control plane answers every modeled error with 400
            return 400
        for shape in self.model.error_shapes:
            if shape.name == code:
                return int(shape.metadata.get("error", {}).get("httpStatusCode", default))
        return default


@cache
def operations() -> dict[tuple[str, str], Operation]:
    """Every operation of the three services, keyed by (service, operation name)."""
    found = {}
    for service in SERVICES:
        model = service_model(service)
        for name in model.operation_names:
            found[(service, name)] = Operation(service, name, model.operation_model(name))
    return found


@cache
def rest_routes() -> dict[tuple[str, str], Operation]:
    """(method, path) -> operation for the REST-JSON services."""
    routes = {}
    for operation in operations().values():
        if operation.protocol == "rest-json":
            http = operation.model.http
            routes[(http["method"], http["requestUri"])] = operation
    return routes


class _Enough(Exception):
    """Raised by _Problems when MAX_PROBLEMS are found: the validation stops there."""


class _Problems(list[str]):
    def append(self, problem: str) -> None:
        super().append(problem)
        if len(self) >= MAX_PROBLEMS:
            raise _Enough


def validate_input(operation: Operation, body: Any) -> dict[str, Any]:
    """Validate a decoded JSON body against the operation's input shape."""
    problems = _Problems()
    try:
        value = _validator(operation.service, operation.name)(body, "", problems)
    except _Enough:
        raise InvalidInputException(
            f"At least {len(problems)} validation errors detected: " + "; ".join(problems)
        ) from None
    if problems:
        count = len(problems)
        noun = "error" if count == 1 else "errors"
        raise InvalidInputException(f"{count} validation {noun} detected: " + "; ".join(problems))
    return value or {}


@cache
def _validator(service: str, operation_name: str) -> Validator:
    shape = service_model(service).operation_model(operation_name).input_shape
    if shape is None:
        return lambda value, path, problems: {}
    return _compile(shape, {})


def _compile(shape: Shape, compiled: dict[str, Validator]) -> Validator:
    """Build the validator for a shape; recursive shapes reuse the entry being built."""
    if shape.name in compiled:
        return lambda value, path, problems: compiled[shape.name](value, path, problems)
    kind = shape.type_name
    if kind == "structure":
        validator = _structure(shape, compiled)
    elif kind == "list":
        validator = _list(shape, compiled)
    elif kind == "map":
        validator = _map(shape, compiled)
    elif kind == "string":
        validator = _string(shape)
    elif kind in ("integer", "long"):
        validator = _number(shape, integral=True)
    elif kind in ("float", "double"):
        validator = _number(shape, integral=False)
    elif kind == "boolean":
        validator = _boolean
    elif kind == "timestamp":
        validator = _timestamp
    else:
        validator = _anything
    compiled[shape.name] = validator
    return validator


def _at(path: str) -> str:
    return path or "input"


def _type_problem(value: Any, path: str, expected: str) -> str:
    return (
        f"Value {_show(value)} at '{_at(path)}' failed to satisfy constraint: "
        f"Member must be {expected}"
    )


# repr() of a 20 MB string copies it, and of a 1,000-deep list overflows the stack: reprlib
# looks at no more than it shows.
_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxstring, _REPR.maxother, _REPR.maxlong = 3, 80, 80, 80


def _show(value: Any) -> str:
    text = _REPR.repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _structure(shape: Shape, compiled: dict[str, Validator]) -> Validator:
    members: dict[str, Validator] = {}
    compiled[shape.name] = lambda value, path, problems: structure(value, path, problems)
    for name, member in shape.members.items():
        members[name] = _compile(member, compiled)
    required = tuple(shape.required_members)

    def structure(value: Any, path: str, problems: list[str]) -> Any:
        if not isinstance(value, dict):
            problems.append(_type_problem(value, path, "an object"))
            return None
        result = {}
        prefix = f"{path}." if path else ""
        for name in required:
            if value.get(name) is None:
                problems.append(
                    f"Value null at '{prefix}{name}' failed to satisfy constraint: "
                    "Member must not be null"
                )
        for name, item in value.items():
            if name not in members:
                problems.append(
                    f"Unknown parameter '{prefix}{name}': "
                    f"must be one of {', '.join(members) or 'nothing'}"
                )
            elif item is not None:
                result[name] = members[name](item, prefix + name, problems)
        return result

    return structure


def _check_length(value: Any, shape: Shape, path: str, problems: list[str], what: str) -> bool:
    """Whether the length is within the model's bounds (a problem is added where not)."""
    low, high = shape.metadata.get("min"), shape.metadata.get("max")
    if low is not None and len(value) < low:
        problems.append(
            f"Value {_show(value)} at '{_at(path)}' failed to satisfy constraint: "
            f"Member must have {what} greater than or equal to {low}"
        )
        return False
    if high is not None and len(value) > high:
        problems.append(
            f"Value {_show(value)} at '{_at(path)}' failed to satisfy constraint: "
            f"Member must have {what} less than or equal to {high}"
        )
        return False
    return True


def _list(shape: Shape, compiled: dict[str, Validator]) -> Validator:
    element = _compile(shape.member, compiled)

    def validate(value: Any, path: str, problems: list[str]) -> Any:
        if not isinstance(value, list):
            problems.append(_type_problem(value, path, "a list"))
            return None
        if not _check_length(value, shape, path, problems, "length"):
            return None  # one problem per member: its elements are not looked at
        return [element(item, f"{path}.{index + 1}", problems) for index, item in enumerate(value)]

    return validate


def _map(shape: Shape, compiled: dict[str, Validator]) -> Validator:
    key_validator = _compile(shape.key, compiled)
    value_validator = _compile(shape.value, compiled)

    def validate(value: Any, path: str, problems: list[str]) -> Any:
        if not isinstance(value, dict):
            problems.append(_type_problem(value, path, "a map"))
            return None
        if not _check_length(value, shape, path, problems, "length"):
            return None
        return {
            key_validator(key, f"{path}.key", problems): value_validator(
                item, f"{path}.{key}", problems
            )
            for key, item in value.items()
        }

    return validate


def _string(shape: Shape) -> Validator:
    pattern = shape.metadata.get("pattern")
    # Model patterns are sometimes unanchored at the end; the service treats them as whole-value.
    compiled_pattern = regex.compile(pattern) if pattern else None
    enum = tuple(shape.metadata.get("enum", ()))

    def validate(value: Any, path: str, problems: list[str]) -> Any:
        if not isinstance(value, str):
            problems.append(_type_problem(value, path, "a string"))
            return None
        if not _check_length(value, shape, path, problems, "length"):
            return value  # too long (or short) already: a pattern check could only cost time
        if compiled_pattern is not None and not _matches(compiled_pattern, value):
            problems.append(
                f"Value {_show(value)} at '{_at(path)}' failed to satisfy constraint: "
                f"Member must satisfy regular expression pattern: {pattern}"
            )
        if enum and value not in enum:
            problems.append(
                f"Value {_show(value)} at '{_at(path)}' failed to satisfy constraint: "
                f"Member must satisfy enum value set: [{', '.join(enum)}]"
            )
        return value

    return validate


PATTERN_SECONDS = 0.05  # a model pattern that backtracks on some input gives up this soon
# Values that matched, remembered (pattern, value) so the ARNs every request repeats are
# matched once; cleared when this many are held.
MATCHED_LIMIT = 4096
_matched: set[tuple[str, str]] = set()


def _matches(pattern: regex.Pattern[str], value: str) -> bool:
    """Whole-value match that cannot stall a request: a pattern still running after
    PATTERN_SECONDS counts as not matched (the value is malformed for every model pattern)."""
    key = (pattern.pattern, value)
    if key in _matched:
        return True
    try:
        matched = pattern.fullmatch(value, timeout=PATTERN_SECONDS) is not None
    except TimeoutError:
        return False
    if matched:
        if len(_matched) >= MATCHED_LIMIT:
            _matched.clear()
        _matched.add(key)
    return matched


def _number(shape: Shape, *, integral: bool) -> Validator:
    low, high = shape.metadata.get("min"), shape.metadata.get("max")
    if shape.type_name in INTEGER_RANGE:
        smallest, largest = INTEGER_RANGE[shape.type_name]
        low = smallest if low is None else max(low, smallest)
        high = largest if high is None else min(high, largest)

    def validate(value: Any, path: str, problems: list[str]) -> Any:
        ok_type = int if integral else (int, float)
        if isinstance(value, bool) or not isinstance(value, ok_type):
            problems.append(_type_problem(value, path, "an integer" if integral else "a number"))
            return None
        if not integral and not math.isfinite(value):
            problems.append(_type_problem(value, path, "a finite number"))
            return None
        if low is not None and value < low:
            problems.append(
                f"Value {value} at '{_at(path)}' failed to satisfy constraint: "
                f"Member must have value greater than or equal to {low}"
            )
        if high is not None and value > high:
            problems.append(
                f"Value {value} at '{_at(path)}' failed to satisfy constraint: "
                f"Member must have value less than or equal to {high}"
            )
        return value

    return validate


def _boolean(value: Any, path: str, problems: list[str]) -> Any:
    if not isinstance(value, bool):
        problems.append(_type_problem(value, path, "a boolean"))
        return None
    return value


def _timestamp(value: Any, path: str, problems: list[str]) -> Any:
    """Both JSON protocols send timestamps as epoch seconds; ISO 8601 text is accepted too.

    The rule: a finite number of seconds, or text, naming an instant from 0001-01-01 to
    9999-12-31 UTC (what a datetime holds); anything else is InvalidInputException."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if math.isfinite(value) and FIRST_SECONDS <= value <= LAST_SECONDS:
            try:
                return dt.datetime.fromtimestamp(value, dt.UTC)
            except (OverflowError, OSError, ValueError):
                pass  # the last microsecond of year 9999 rounded up
    elif isinstance(value, str):
        try:
            parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
            # In UTC: 9999-12-31T23:00-05:00 is in year 10000, which no datetime holds.
            return (parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)).astimezone(dt.UTC)
        except (OverflowError, ValueError):
            pass
    problems.append(
        _type_problem(value, path, "a timestamp (epoch seconds) between years 1 and 9999")
    )
    return None


def _anything(value: Any, path: str, problems: list[str]) -> Any:
    return value


def serialize_output(operation: Operation, result: dict[str, Any] | None) -> dict[str, Any]:
    """Keep only the members the output shape defines, in wire form (timestamps as epoch seconds).

    Handlers may return richer records (internal fields); the model decides what goes out.
    """
    if result is None:
        return {}
    return _serializer(operation.service, operation.name)(result)


Serializer = Callable[[Any], Any]


@cache
def _serializer(service: str, operation_name: str) -> Serializer:
    shape = service_model(service).operation_model(operation_name).output_shape
    if shape is None:
        return lambda value: {}
    return _compile_output(shape, {})


def _as_is(value: Any) -> Any:
    return value


def _compile_output(shape: Shape, compiled: dict[str, Serializer]) -> Serializer:
    """Build the serializer for a shape once, like the validators (recursion included)."""
    if shape.name in compiled:
        return lambda value: compiled[shape.name](value)
    kind = shape.type_name
    serializer: Serializer
    if kind == "structure":
        compiled[shape.name] = _as_is  # placeholder while members refer back to this shape
        serializer = _output_structure(shape, compiled)
    elif kind == "list":
        member = _compile_output(shape.member, compiled)
        if member is _as_is:
            serializer = list
        else:
            serializer = lambda value: [member(item) for item in value]  # noqa: E731
    elif kind == "map":
        item_serializer = _compile_output(shape.value, compiled)
        serializer = lambda value: {k: item_serializer(v) for k, v in value.items()}  # noqa: E731
    elif kind == "timestamp":
        serializer = _epoch_seconds
    elif kind in ("float", "double"):
        serializer = float
    else:  # string, integer, long, boolean, blob: nothing to convert
        serializer = _as_is
    compiled[shape.name] = serializer
    return serializer


def _output_structure(shape: Shape, compiled: dict[str, Serializer]) -> Serializer:
    members = {name: _compile_output(member, compiled) for name, member in shape.members.items()}
    # Recursive members read the finished entry at call time, so only plain ones are pinned.
    plain = frozenset(name for name, serializer in members.items() if serializer is _as_is)

    def serialize(value: Any) -> Any:
        if not isinstance(value, dict):
            return {}
        # Walk the value's keys (usually few), keeping the ones the shape defines.
        return {
            name: item if name in plain else members[name](item)
            for name, item in value.items()
            if item is not None and name in members
        }

    return serialize


def _epoch_seconds(value: Any) -> float:
    if isinstance(value, dt.datetime):
        return value.timestamp()
    return float(value)
