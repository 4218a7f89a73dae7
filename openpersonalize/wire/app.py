"""The HTTP server: one port for the three services, dispatched the way AWS clients address them.

`X-Amz-Target: AmazonPersonalize.<Op>` selects a control-plane operation
(JSON 1.1); otherwise the method and path select a REST-JSON operation of
personalize-runtime or personalize-events.

A plain ASGI callable rather than a web framework: there is one route that
matters and it is the serving hot path, where a framework's request objects,
routing and middleware cost more than the recommendation itself.

The event loop reads bodies and writes answers; what a request costs besides
(signature check, JSON decoding, validation, the handler, serialization) runs on
a thread, so no request, however slow or malformed, holds up the others or
/health. The runtime service has threads of its own, so a burst of slow
control-plane calls cannot queue GetRecommendations behind it.

One exception keeps the hot path fast: on two busy cores a thread hop halves
GetRecommendations' throughput (the hop waits for a core), so a small runtime
request runs on the loop when the last one for the same campaign or recommender
and filter answered in under INLINE_SECONDS. The first request for a campaign,
which loads its model and catalog, and any whose predecessor was slow, take the
thread.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from typing import Any

import orjson

from openpersonalize.api import handlers
from openpersonalize.context import Context
from openpersonalize.errors import InvalidInputException, ServiceError
from openpersonalize.serving import engine
from openpersonalize.wire import model, sigv4

log = logging.getLogger("openpersonalize.wire")

TARGET_PREFIX = "AmazonPersonalize"
JSON_11 = b"application/x-amz-json-1.1"
JSON = b"application/json"
# No operation takes more than about 1 MB (PutItems: 10 items of 24 KB of properties); a body
# past this is refused unread rather than held in memory.
MAX_BODY_BYTES = 16 * 2**20
# The model's deepest input is 8 levels; a body nested deeper is malformed, and refusing it
# while decoding keeps deep values out of validation and error messages.
MAX_JSON_DEPTH = 64
# Runtime requests this small, whose predecessor for the same key took less than this, run on
# the event loop (see the module docstring); at most this many keys are remembered.
INLINE_BODY_BYTES = 16_384
INLINE_SECONDS = 0.005
INLINE_KEYS = 10_000
# How often each server process loads the models of newly deployed campaigns and recommenders
# ahead of their first request (serving/engine.warm_deployments).
WARM_SECONDS = 5.0

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class UnknownOperationException(ServiceError):
    def __init__(self, message: str, *, allow: str | None = None) -> None:
        super().__init__(message)
        # Set when the operation or path exists but not for this HTTP method: a 405 then.
        self.allow = allow
        if allow is not None:
            self.http_status = 405


class RequestEntityTooLargeException(ServiceError):
    http_status = 413


class InternalFailure(ServiceError):
    http_status = 500


@dataclass(slots=True)
class Reply:
    """A response to send: status, content type, body and extra headers."""

    status: int
    content_type: bytes
    body: bytes
    headers: list[tuple[bytes, bytes]]


class App:
    """The ASGI application: lifespan hooks, GET /health, and every AWS operation."""

    def __init__(
        self,
        context: Context,
        on_startup: list[Callable[[], object]] | None = None,
        on_shutdown: list[Callable[[], object]] | None = None,
    ) -> None:
        self.context = context
        # Which server process answered (several share the port): for logs and tests.
        self.process_id = str(os.getpid()).encode()
        self.table = handlers()
        self.on_startup = on_startup or []
        self.on_shutdown = on_shutdown or []
        self.runtime_threads = ThreadPoolExecutor(
            min(32, (os.cpu_count() or 1) + 4), thread_name_prefix="runtime"
        )
        # Seconds the last successful runtime request of each key took (read on the loop only).
        self.runtime_seconds: dict[tuple[str | None, ...], float] = {}
        self.console: Callable[[Scope, Receive, Send], Awaitable[None]] | None = None
        self.stopping = threading.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            if scope["path"] == "/console" or scope["path"].startswith("/console/"):
                if self.console is None:  # built on first use: the API never pays for it
                    from openpersonalize.console import create_console

                    self.console = create_console(self.context)
                await self.console(scope, receive, send)
                return
            if scope["path"] == "/health":
                reply = _health(scope["method"])
            else:
                body = await _read_body(receive)
                if body is None:
                    reply = _error(
                        None,
                        RequestEntityTooLargeException(
                            f"The request body is larger than {MAX_BODY_BYTES} bytes."
                        ),
                        str(uuid.uuid4()),
                    )
                elif scope["path"] in _runtime_paths():
                    reply = await self._runtime(scope, body)
                else:
                    reply = await asyncio.get_running_loop().run_in_executor(
                        None, self.dispatch, scope, body
                    )
            headers = [
                (b"content-type", reply.content_type),
                (b"content-length", str(len(reply.body)).encode()),
                (b"x-openpersonalize-process", self.process_id),
                *reply.headers,
            ]
            await send({"type": "http.response.start", "status": reply.status, "headers": headers})
            await send({"type": "http.response.body", "body": reply.body})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                for start in self.on_startup:
                    start()
                threading.Thread(target=self._warm, name="warm-models", daemon=True).start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.stopping.set()
                for stop in self.on_shutdown:
                    stop()
                self.runtime_threads.shutdown(wait=False)
                await send({"type": "lifespan.shutdown.complete"})
                return

    def _warm(self) -> None:
        """Load deployed models before their first request, now and every WARM_SECONDS."""
        while True:
            try:
                engine.warm_deployments(self.context)
            except Exception:  # e.g. the database is being replaced; the next round retries
                log.debug("warming the deployed models failed", exc_info=True)
            if self.stopping.wait(WARM_SECONDS):
                return

    async def _runtime(self, scope: Scope, body: bytes) -> Reply:
        key = _runtime_key(scope["path"], body) if len(body) <= INLINE_BODY_BYTES else None
        last = self.runtime_seconds.get(key) if key is not None else None
        if last is not None and last < INLINE_SECONDS:
            reply, seconds = _timed(self.dispatch, scope, body)
        else:
            reply, seconds = await asyncio.get_running_loop().run_in_executor(
                self.runtime_threads, _timed, self.dispatch, scope, body
            )
        if key is not None:
            if reply.status == 200:  # a fast 404 says nothing of the campaign's first load
                if len(self.runtime_seconds) >= INLINE_KEYS:
                    self.runtime_seconds.clear()
                self.runtime_seconds[key] = seconds
            else:
                self.runtime_seconds.pop(key, None)
        return reply

    def dispatch(self, scope: Scope, body: bytes) -> Reply:
        """Answer one AWS request (on a worker thread: see the module docstring)."""
        request_id = str(uuid.uuid4())
        operation: model.Operation | None = None
        try:
            headers = _headers(scope)
            if self.context.settings.auth_required:
                sigv4.verify_request(
                    scope["method"],
                    scope.get("raw_path", b"/").decode("latin-1"),
                    scope.get("query_string", b"").decode("latin-1"),
                    headers,
                    body,
                    self.context.settings.credentials,
                )
            operation = _find_operation(scope["method"], scope["path"], headers)
            # Validated first: the model's contract holds for operations not built yet, too.
            arguments = model.validate_input(operation, _decode(body))
            handler = self.table.get((operation.service, operation.name))
            if handler is None:
                raise InvalidInputException(
                    f"{operation.name} ({operation.service}) is not implemented by "
                    "openpersonalize yet."
                )
            result = handler(self.context, arguments)
            return _success(operation, model.serialize_output(operation, result), request_id)
        except ServiceError as error:
            return _error(operation, error, request_id)
        except Exception:
            log.exception("request %s failed", request_id)
            return _error(
                operation,
                InternalFailure(
                    f"The server could not complete the request (request id {request_id})."
                ),
                request_id,
            )


def create_app(
    context: Context,
    on_startup: list[Callable[[], object]] | None = None,
    on_shutdown: list[Callable[[], object]] | None = None,
) -> App:
    return App(context, on_startup, on_shutdown)


async def _read_body(receive: Receive) -> bytes | None:
    """The request body, or None as soon as it passes MAX_BODY_BYTES (the rest is not read)."""
    message = await receive()
    body = message.get("body", b"")
    if not message.get("more_body"):
        return body if len(body) <= MAX_BODY_BYTES else None
    chunks = [body]
    size = len(body)
    while message.get("more_body"):
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _health(method: str) -> Reply:
    if method == "GET":
        return Reply(200, JSON, b'{"status": "ok"}', [])
    return _error(
        None, UnknownOperationException("/health answers GET.", allow="GET"), str(uuid.uuid4())
    )


def _timed(
    dispatch: Callable[[Scope, bytes], Reply], scope: Scope, body: bytes
) -> tuple[Reply, float]:
    started = time.perf_counter()
    reply = dispatch(scope, body)
    return reply, time.perf_counter() - started


def _runtime_key(path: str, body: bytes) -> tuple[str | None, ...] | None:
    """What a runtime request's cost depends on: its path, campaign or recommender, filter."""
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(value, dict):
        return None
    fields = (value.get(name) for name in ("campaignArn", "recommenderArn", "filterArn"))
    return (path, *(field if isinstance(field, str) else None for field in fields))


@cache
def _runtime_paths() -> frozenset[str]:
    return frozenset(
        path
        for (_, path), operation in model.rest_routes().items()
        if operation.service == "personalize-runtime"
    )


def _headers(scope: Scope) -> dict[str, str]:
    """Header names lower-cased; a repeated header's values joined with ',' (RFC 9110)."""
    headers: dict[str, str] = {}
    for raw_name, raw_value in scope["headers"]:
        name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
        headers[name] = f"{headers[name]},{value}" if name in headers else value
    return headers


def _find_operation(method: str, path: str, headers: dict[str, str]) -> model.Operation:
    target = headers.get("x-amz-target")
    if target:
        if method != "POST":  # the JSON 1.1 protocol is POST only, as botocore's model says
            raise UnknownOperationException(
                f"{method} is not a method of the AWS JSON 1.1 protocol; send {target} as POST.",
                allow="POST",
            )
        prefix, _, name = target.partition(".")
        operation = model.operations().get(("personalize", name))
        if prefix != TARGET_PREFIX or operation is None:
            raise UnknownOperationException(f"Unknown operation {target}.")
        return operation
    operation = model.rest_routes().get((method, path))
    if operation is None:
        allowed = sorted(verb for verb, route in model.rest_routes() if route == path)
        if allowed:
            raise UnknownOperationException(
                f"{path} answers {', '.join(allowed)}, not {method}.", allow=", ".join(allowed)
            )
        raise UnknownOperationException(
            f"No operation at {method} {path}; control-plane requests need "
            f"an X-Amz-Target header ({TARGET_PREFIX}.<Operation>)."
        )
    return operation


def _decode(body: bytes) -> Any:
    if not body.strip():
        return {}
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise InvalidInputException(f"The request body is not valid JSON: {error}") from error
    if len(body) > 2 * MAX_JSON_DEPTH and _deeper_than(value, MAX_JSON_DEPTH):
        raise InvalidInputException(
            f"The request body is nested more than {MAX_JSON_DEPTH} levels deep."
        )
    return value


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether arrays and objects nest past `limit` levels (a loop, not recursion)."""
    if not isinstance(value, (dict, list)):
        return False
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item
        for child in children:
            if isinstance(child, (dict, list)):
                if depth >= limit:
                    return True
                stack.append((child, depth + 1))
    return False


def _success(operation: model.Operation, body: dict[str, Any], request_id: str) -> Reply:
    content_type = JSON_11 if operation.protocol == "json" else JSON
    return Reply(
        200, content_type, orjson.dumps(body), [(b"x-amzn-requestid", request_id.encode())]
    )


def _error(operation: model.Operation | None, error: ServiceError, request_id: str) -> Reply:
    if operation is not None:
        status = operation.error_status(error.code, error.http_status)
    else:
        status = error.http_status if error.http_status in (403, 405, 413, 500) else 400
    rest = operation is not None and operation.protocol == "rest-json"
    headers = [
        (b"x-amzn-requestid", request_id.encode()),
        (b"x-amzn-errortype", error.code.encode()),
    ]
    allow = getattr(error, "allow", None)
    if allow:
        headers.append((b"allow", allow.encode()))
    body = orjson.dumps({"__type": error.code, "message": error.message})
    return Reply(status, JSON if rest else JSON_11, body, headers)
