"""The console's ASGI application: routing, the login and CSRF gate, pages and assets.

Pages are rendered on the server (Jinja2, autoescaping every value) and work without
JavaScript: links and forms, with Post/Redirect/Get after an action. `static/console.js` adds
the charts (Plotly, served from the `plotly` package's own file), refreshes a page while
something on it is still in progress, and shows only the filter values the chosen filter
takes. Rendering runs on a thread, like the API's handlers, so the event loop stays free.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import logging
import mimetypes
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from http.cookies import CookieError, SimpleCookie
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

import jinja2

from openpersonalize.console import security, views
from openpersonalize.context import Context
from openpersonalize.errors import InvalidInputException, ResourceNotFoundException, ServiceError

log = logging.getLogger("openpersonalize.console")

PREFIX = "/console"
MAX_FORM_BYTES = 1 << 20
HERE = Path(__file__).resolve().parent
STATIC = {
    "console.js": HERE / "static" / "console.js",
    "console.css": HERE / "static" / "console.css",
}
# What a page may load: only its own scripts and styles (Plotly sets inline styles on its SVG).
SECURITY_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        b"img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
]
NOTICES = {
    "campaign-created": "Campaign created; it deploys in the background.",
    "campaign-updated": "Campaign update started.",
    "version-stopping": "Stop requested.",
    "deleted": "Delete requested.",
    "event-sent": "Event sent.",
}


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    form: dict[str, str]
    headers: dict[str, str]
    cookies: dict[str, str]
    client: Any
    scheme: str


@dataclass
class Response:
    status: int
    body: bytes
    content_type: bytes = b"text/html; charset=utf-8"
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)


def _plotly_js() -> Path:
    return Path(str(resources.files("plotly") / "package_data" / "plotly.min.js"))


@cache
def _asset(name: str) -> tuple[bytes, bytes, str]:
    """An asset's bytes, gzipped bytes and ETag (read once per process)."""
    path = _plotly_js() if name == "plotly.min.js" else STATIC[name]
    raw = path.read_bytes()
    return raw, gzip.compress(raw, 6), hashlib.sha256(raw).hexdigest()[:16]


class ConsoleApp:
    """Answers every path under /console."""

    def __init__(self, context: Context) -> None:
        self.context = context
        self.signer = security.Signer(context.settings)
        self.templates = jinja2.Environment(
            loader=jinja2.FileSystemLoader(HERE / "templates"),
            autoescape=True,  # every template, whatever its name: no value goes out raw
            undefined=jinja2.ChainableUndefined,  # a member a resource lacks shows as blank
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.templates.filters.update(
            when=views.when, duration=views.duration, recipe=views.recipe_name, short=_short
        )
        self.templates.globals.update(url=_url, asset=_asset_url)

    async def __call__(self, scope: dict[str, Any], receive: Callable, send: Callable) -> None:
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = bool(message.get("more_body"))
            if len(body) > MAX_FORM_BYTES:
                await _send(send, Response(413, b"The form is too large."))
                return
        request = _request(scope, body)
        response = await asyncio.get_running_loop().run_in_executor(None, self.respond, request)
        await _send(send, response)

    # ----------------------------------------------------------------------- the gate

    def respond(self, request: Request) -> Response:
        try:
            return self._respond(request)
        except Exception:
            request_id = str(uuid.uuid4())
            log.exception(
                "console request %s %s failed (%s)", request.method, request.path, request_id
            )
            return Response(500, f"The console failed (request id {request_id}).".encode())

    def _respond(self, request: Request) -> Response:
        if request.path.startswith(PREFIX + "/static/"):
            return self._static(request)
        if not self.signer.login_required and not (
            security.is_loopback_client(request.client)
            and security.is_loopback_host(request.headers.get("host", ""))
        ):
            return Response(
                403,
                b"Without access keys the console answers loopback clients only (as the API "
                b"does); set OPENPERSONALIZE_ACCESS_KEY_ID and OPENPERSONALIZE_SECRET_ACCESS_KEY "
                b"to use it from elsewhere.",
            )
        now = self.context.now()
        session = self.signer.verify(request.cookies.get(security.COOKIE), now)
        if request.path == PREFIX + "/login":
            return self._login(request, session)
        new_cookie = None
        if session is None:
            if self.signer.login_required:
                if request.method != "GET":
                    return Response(403, b"Log in first.")
                target = request.path + (f"?{urlencode(request.query)}" if request.query else "")
                return _redirect(_url("/login", next=target))
            new_cookie = self.signer.issue("", now)
            session = self.signer.verify(new_cookie, now)
            assert session is not None
        if request.method == "POST":
            refusal = self._check_post(request, session, bool(new_cookie))
            if refusal is not None:
                return refusal
        elif request.method != "GET":
            return Response(
                405, b"The console answers GET and POST.", headers=[(b"allow", b"GET, POST")]
            )
        response = self._route(request, session)
        if new_cookie:
            response.headers.append(self._cookie_header(request, new_cookie))
        return response

    def _check_post(
        self, request: Request, session: security.Session, fresh: bool
    ) -> Response | None:
        origin = request.headers.get("origin")
        if origin and origin != "null" and urlsplit(origin).netloc != request.headers.get("host"):
            return Response(403, b"The form was sent from another site.")
        if fresh or not self.signer.check_csrf(session, request.form.get("csrf")):
            return self._page_error(
                request,
                session,
                403,
                "The form's CSRF token is missing or wrong: reload the page and try again.",
            )
        return None

    def _cookie_header(self, request: Request, value: str) -> tuple[bytes, bytes]:
        secure = "; Secure" if request.scheme == "https" else ""
        return (
            b"set-cookie",
            f"{security.COOKIE}={value}; Path={PREFIX}; HttpOnly; SameSite=Strict; "
            f"Max-Age={security.SESSION_SECONDS}{secure}".encode(),
        )

    def _login(self, request: Request, session: security.Session | None) -> Response:
        target = request.query.get("next") or request.form.get("next") or PREFIX
        if not target.startswith(PREFIX) or target.startswith("//"):
            target = PREFIX  # only pages of the console: no open redirect
        if not self.signer.login_required:
            return _redirect(target)
        if request.method == "POST":
            key_id = request.form.get("accessKeyId", "")
            if self.signer.check_login(key_id, request.form.get("secretAccessKey", "")):
                response = _redirect(target)
                response.headers.append(
                    self._cookie_header(request, self.signer.issue(key_id, self.context.now()))
                )
                return response
            return self._render(
                "login.html",
                None,
                status=401,
                next=target,
                error="The access key ID or the secret access key is not right.",
            )
        return self._render("login.html", None, next=target, error=None)

    # ----------------------------------------------------------------------- routes

    def _route(self, request: Request, session: security.Session) -> Response:
        path = request.path.rstrip("/") or PREFIX
        if request.method == "GET":
            page = {
                PREFIX: "groups",
                PREFIX + "/group": "group",
                PREFIX + "/version": "version",
                PREFIX + "/campaign": "campaign",
                PREFIX + "/recommender": "recommender",
            }.get(path)
            if page is None:
                return self._page_error(request, session, 404, f"No console page at {path}.")
            return self._page(request, session, page)
        if path == PREFIX + "/logout":
            response = _redirect(_url("/login") if self.signer.login_required else PREFIX)
            response.headers.append(
                (b"set-cookie", f"{security.COOKIE}=; Path={PREFIX}; Max-Age=0".encode())
            )
            return response
        action = ACTIONS.get(path.removeprefix(PREFIX + "/actions/"))
        if action is None:
            return self._page_error(request, session, 404, f"No console action at {path}.")
        try:
            location = action(self.context, request.form)
        except ServiceError as error:
            # Shown on the page the form was on, in the API's words.
            return self._page(
                request,
                session,
                request.form.get("page", ""),
                status=400,
                action_error=f"{error.code}: {error.message}",
                arn=request.form.get("pageArn", ""),
            )
        return _redirect(location)

    def _page(
        self,
        request: Request,
        session: security.Session,
        page: str,
        *,
        status: int = 200,
        action_error: str | None = None,
        arn: str | None = None,
    ) -> Response:
        arn = arn if arn is not None else request.query.get("arn", "")
        query = request.query if request.method == "GET" else {}
        try:
            if page == "groups":
                data = views.groups_page(self.context)
            elif page == "group":
                data = views.group_page(self.context, arn)
            elif page == "version":
                data = views.version_page(self.context, arn)
            elif page in ("campaign", "recommender"):
                data = views.deployment_page(self.context, page, arn, query)
                page = "deployment"
            else:
                return self._page_error(request, session, 404, "No such console page.")
        except ServiceError as error:
            not_found = isinstance(error, ResourceNotFoundException)
            return self._page_error(request, session, 404 if not_found else 400, error.message)
        return self._render(
            f"{page}.html",
            session,
            status=status,
            action_error=action_error,
            notice=NOTICES.get(request.query.get("notice", "")),
            refresh=views.in_flight(data),
            **data,
        )

    def _page_error(
        self, request: Request, session: security.Session | None, status: int, message: str
    ) -> Response:
        return self._render("error.html", session, status=status, message=message)

    def _render(
        self, name: str, session: security.Session | None, *, status: int = 200, **values: Any
    ) -> Response:
        values.setdefault("action_error", None)
        values.setdefault("notice", None)
        values.setdefault("refresh", False)
        html = self.templates.get_template(name).render(
            csrf=self.signer.csrf_token(session) if session else "",
            session=session,
            login_required=self.signer.login_required,
            **values,
        )
        return Response(status, html.encode(), headers=list(SECURITY_HEADERS))

    def _static(self, request: Request) -> Response:
        name = request.path.removeprefix(PREFIX + "/static/")
        if name not in STATIC and name != "plotly.min.js":
            return Response(404, b"No such asset.", b"text/plain")
        raw, packed, etag = _asset(name)
        headers = [
            (b"etag", f'"{etag}"'.encode()),
            (b"cache-control", b"public, max-age=86400"),
            (b"x-content-type-options", b"nosniff"),
        ]
        if request.headers.get("if-none-match") == f'"{etag}"':
            return Response(304, b"", b"text/plain", headers)
        content_type = (mimetypes.guess_type(name)[0] or "application/octet-stream").encode()
        if "gzip" in request.headers.get("accept-encoding", ""):
            headers.append((b"content-encoding", b"gzip"))
            return Response(200, packed, content_type, headers)
        return Response(200, raw, content_type, headers)


# ---------------------------------------------------------------------------- actions


def _create_campaign(context: Context, form: dict[str, str]) -> str:
    arn = views.create_campaign(context, form)
    return _url("/campaign", arn=arn, notice="campaign-created")


def _update_campaign(context: Context, form: dict[str, str]) -> str:
    arn = views.update_campaign(context, form)
    return _url("/campaign", arn=arn, notice="campaign-updated")


def _stop_version(context: Context, form: dict[str, str]) -> str:
    views.stop_version(context, form)
    return _url("/version", arn=form.get("solutionVersionArn", ""), notice="version-stopping")


def _delete(context: Context, form: dict[str, str]) -> str:
    views.delete_resource(context, form)
    back = form.get("page", "")
    if back in ("group", "version", "campaign", "recommender") and form.get("pageArn"):
        if form.get("pageArn") != form.get("arn"):
            return _url(f"/{back}", arn=form["pageArn"], notice="deleted")
    if form.get("groupArn") and form.get("type") != "dataset-group":
        return _url("/group", arn=form["groupArn"], notice="deleted")
    return _url("", notice="deleted")


def _send_event(context: Context, form: dict[str, str]) -> str:
    for name in ("trackingId", "userId", "itemId"):
        if not form.get(name):
            raise InvalidInputException(f"{name} is required to send an event.")
    views.send_event(
        context,
        form["trackingId"],
        form["userId"],
        form["itemId"],
        form.get("eventType") or "click",
    )
    kind = "recommender" if form.get("page") == "recommender" else "campaign"
    # Back to the same try-it request, which now sees the event.
    query = {
        key: value
        for key, value in form.items()
        if key in ("userId", "filterArn", "numResults") or key.startswith("fv.")
    }
    return _url(f"/{kind}", arn=form.get("pageArn", ""), notice="event-sent", **query)


ACTIONS: dict[str, Callable[[Context, dict[str, str]], str]] = {
    "create-campaign": _create_campaign,
    "update-campaign": _update_campaign,
    "stop-version": _stop_version,
    "delete": _delete,
    "send-event": _send_event,
}


# ---------------------------------------------------------------------------- helpers


def _url(page: str, **query: str) -> str:
    """A console URL; query values are encoded (ARNs hold ':' and '/')."""
    text = urlencode({key: value for key, value in query.items() if value not in (None, "")})
    return PREFIX + page + (f"?{text}" if text else "")


def _asset_url(name: str) -> str:
    return f"{PREFIX}/static/{quote(name)}?v={_asset(name)[2]}"


def _short(arn: str | None) -> str:
    """The part of an ARN after its type: what people recognize."""
    if not arn:
        return ""
    return arn.split(":", 5)[-1].split("/", 1)[-1] if ":" in arn else arn


def _request(scope: dict[str, Any], body: bytes) -> Request:
    headers: dict[str, str] = {}
    for raw_name, raw_value in scope.get("headers", []):
        headers[raw_name.decode("latin-1").lower()] = raw_value.decode("latin-1")
    cookies: dict[str, str] = {}
    if "cookie" in headers:
        try:
            jar = SimpleCookie(headers["cookie"])
            cookies = {name: morsel.value for name, morsel in jar.items()}
        except CookieError:
            cookies = {}
    query = dict(
        parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
    )
    form: dict[str, str] = {}
    if scope["method"] == "POST" and headers.get("content-type", "").startswith(
        "application/x-www-form-urlencoded"
    ):
        form = dict(parse_qsl(body.decode("utf-8", errors="replace"), keep_blank_values=True))
    return Request(
        method=scope["method"],
        path=scope["path"],
        query=query,
        form=form,
        headers=headers,
        cookies=cookies,
        client=scope.get("client"),
        scheme=scope.get("scheme", "http"),
    )


def _redirect(location: str) -> Response:
    return Response(303, b"", b"text/plain", [(b"location", location.encode())])


async def _send(send: Callable, response: Response) -> None:
    headers = [
        (b"content-type", response.content_type),
        (b"content-length", str(len(response.body)).encode()),
        (b"cache-control", b"no-store"),
        (b"x-openpersonalize-process", str(os.getpid()).encode()),  # which HTTP process answered
        *response.headers,
    ]
    if any(name == b"cache-control" for name, _ in response.headers):
        headers.pop(2)  # the asset's own caching
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": response.body})
