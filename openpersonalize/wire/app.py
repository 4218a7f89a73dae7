"""The HTTP server: one port for the three services, dispatched the way AWS clients address them.

`X-Amz-Target: AmazonPersonalize.<Op>` selects a control-plane operation
(JSON 1.1); otherwise the method and path select a REST-JSON operation of
personalize-runtime or personalize-events.

A plain ASGI callable rather than a web framework: there is one route that
matters and it is the serving hot path, where a framework's request objects,
routing and middleware cost more than the recommendation itself.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson

from openpersonalize.api import handlers
from openpersonalize.context import Context
from openpersonalize.errors import InvalidInputException, ServiceError
from openpersonalize.wire import model, sigv4

log = logging.getLogger("openpersonalize.wire")

TARGET_PREFIX = "AmazonPersonalize"
JSON_11 = b"application/x-amz-json-1.1"
JSON = b"application/json"

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class UnknownOperationException(ServiceError):
    pass


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
        self.table = handlers()
        self.on_startup = on_startup or []
        self.on_shutdown = on_shutdown or []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            if scope["path"] == "/health" and scope["method"] == "GET":
                reply = Reply(200, JSON, b'{"status": "ok"}', [])
            else:
                reply = await self.dispatch(scope, await _read_body(receive))
            headers = [
                (b"content-type", reply.content_type),
                (b"content-length", str(len(reply.body)).encode()),
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
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                for stop in self.on_shutdown:
                    stop()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def dispatch(self, scope: Scope, body: bytes) -> Reply:
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
            handler = self.table.get((operation.service, operation.name))
            if handler is None:
                raise InvalidInputException(
                    f"{operation.name} ({operation.service}) is not implemented by "
                    "openpersonalize yet."
                )
            call = functools.partial(_validated_call, handler, self.context, operation, body)
            if operation.service == "personalize-runtime":
                # The hot path is short numpy work: a thread hop would cost more than it saves
                # (its validation is bounded: lengths first, patterns under a time limit).
                result = call()
            else:
                # Off the event loop, so no request (however malformed) stalls the others.
                result = await asyncio.get_running_loop().run_in_executor(None, call)
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


def _validated_call(
    handler: Callable[[Context, dict[str, Any]], dict[str, Any] | None],
    context: Context,
    operation: model.Operation,
    body: bytes,
) -> dict[str, Any] | None:
    return handler(context, model.validate_input(operation, _decode(body)))


def create_app(
    context: Context,
    on_startup: list[Callable[[], object]] | None = None,
    on_shutdown: list[Callable[[], object]] | None = None,
) -> App:
    return App(context, on_startup, on_shutdown)


async def _read_body(receive: Receive) -> bytes:
    message = await receive()
    body = message.get("body", b"")
    if not message.get("more_body"):
        return body
    chunks = [body]
    while message.get("more_body"):
        message = await receive()
        chunks.append(message.get("body", b""))
    return b"".join(chunks)


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
                f"{method} is not a method of the AWS JSON 1.1 protocol; send {target} as POST."
            )
        prefix, _, name = target.partition(".")
        operation = model.operations().get(("personalize", name))
        if prefix != TARGET_PREFIX or operation is None:
            raise UnknownOperationException(f"Unknown operation {target}.")
        return operation
    operation = model.rest_routes().get((method, path))
    if operation is None:
        raise UnknownOperationException(
            f"No operation at {method} {path}; control-plane requests need "
            f"an X-Amz-Target header ({TARGET_PREFIX}.<Operation>)."
        )
    return operation


def _decode(body: bytes) -> Any:
    if not body.strip():
        return {}
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise InvalidInputException(f"The request body is not valid JSON: {error}") from error


def _success(operation: model.Operation, body: dict[str, Any], request_id: str) -> Reply:
    content_type = JSON_11 if operation.protocol == "json" else JSON
    return Reply(
        200, content_type, orjson.dumps(body), [(b"x-amzn-requestid", request_id.encode())]
    )


def _error(operation: model.Operation | None, error: ServiceError, request_id: str) -> Reply:
    if operation is not None:
        status = operation.error_status(error.code, error.http_status)
    else:
        status = error.http_status if error.http_status in (403, 500) else 400
    rest = operation is not None and operation.protocol == "rest-json"
    headers = [
        (b"x-amzn-requestid", request_id.encode()),
        (b"x-amzn-errortype", error.code.encode()),
    ]
    body = orjson.dumps({"__type": error.code, "message": error.message})
    return Reply(status, JSON if rest else JSON_11, body, headers)
