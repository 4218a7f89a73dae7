"""The HTTP server: one port for the three services, dispatched the way AWS clients address them.

`X-Amz-Target: AmazonPersonalize.<Op>` selects a control-plane operation
(JSON 1.1); otherwise the method and path select a REST-JSON operation of
personalize-runtime or personalize-events.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from openpersonalize.api import handlers
from openpersonalize.context import Context
from openpersonalize.errors import InvalidInputException, ServiceError
from openpersonalize.wire import model, sigv4

log = logging.getLogger("openpersonalize.wire")

TARGET_PREFIX = "AmazonPersonalize"
JSON_11 = "application/x-amz-json-1.1"


class UnknownOperationException(ServiceError):
    pass


class InternalFailure(ServiceError):
    http_status = 500


def create_app(
    context: Context, on_startup: list[Any] | None = None, on_shutdown: list[Any] | None = None
) -> Starlette:
    table = handlers()

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        for start in on_startup or []:
            start()
        try:
            yield
        finally:
            for stop in on_shutdown or []:
                stop()

    async def health(_request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def dispatch(request: Request) -> Response:
        request_id = str(uuid.uuid4())
        operation: model.Operation | None = None
        try:
            body = await request.body()
            if context.settings.auth_required:
                sigv4.verify_request(
                    request.method,
                    request.scope.get("raw_path", b"/").decode("latin-1"),
                    request.scope.get("query_string", b"").decode("latin-1"),
                    request.headers,
                    body,
                    context.settings.credentials,
                )
            operation = _find_operation(request)
            payload = _decode(body)
            arguments = model.validate_input(operation, payload)
            handler = table.get((operation.service, operation.name))
            if handler is None:
                raise InvalidInputException(
                    f"{operation.name} ({operation.service}) is not implemented by "
                    "openpersonalize yet."
                )
            if operation.service == "personalize-runtime":
                # The hot path is short numpy work: a thread hop would cost more than it saves.
                result = handler(context, arguments)
            else:
                result = await run_in_threadpool(handler, context, arguments)
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

    routes = [
        Route("/health", health, methods=["GET"]),
        Route("/{path:path}", dispatch, methods=["POST", "GET", "PUT", "DELETE", "PATCH"]),
    ]
    return Starlette(routes=routes, lifespan=lifespan)


def _find_operation(request: Request) -> model.Operation:
    target = request.headers.get("x-amz-target")
    if target:
        prefix, _, name = target.partition(".")
        operation = model.operations().get(("personalize", name))
        if prefix != TARGET_PREFIX or operation is None:
            raise UnknownOperationException(f"Unknown operation {target}.")
        return operation
    operation = model.rest_routes().get((request.method, request.url.path))
    if operation is None:
        raise UnknownOperationException(
            f"No operation at {request.method} {request.url.path}; control-plane requests need "
            f"an X-Amz-Target header ({TARGET_PREFIX}.<Operation>)."
        )
    return operation


def _decode(body: bytes) -> Any:
    if not body.strip():
        return {}
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InvalidInputException(f"The request body is not valid JSON: {error}") from error


def _success(operation: model.Operation, body: dict[str, Any], request_id: str) -> Response:
    media_type = JSON_11 if operation.protocol == "json" else "application/json"
    return Response(
        json.dumps(body), media_type=media_type, headers={"x-amzn-RequestId": request_id}
    )


def _error(operation: model.Operation | None, error: ServiceError, request_id: str) -> Response:
    if operation is not None:
        status = operation.error_status(error.code, error.http_status)
    else:
        status = error.http_status if error.http_status in (403, 500) else 400
    rest = operation is not None and operation.protocol == "rest-json"
    headers = {"x-amzn-RequestId": request_id, "x-amzn-ErrorType": error.code}
    body = {"__type": error.code, "message": error.message}
    return Response(
        json.dumps(body),
        status_code=status,
        media_type="application/json" if rest else JSON_11,
        headers=headers,
    )
