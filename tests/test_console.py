"""The web console over plain HTTP: escaping, CSRF, the loopback rule, login with keys.

The browser tests (test_console_browser.py) drive the same pages in Chromium; these check
what a browser would not show: the exact HTML, status codes, cookies and refusals.
"""

from __future__ import annotations

import http.client
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import markupsafe
import pytest
from botocore.exceptions import ClientError
from helpers import ITEMS_SCHEMA, active_dataset, active_group, run_import, schema, unique

from openpersonalize.testing.server import ServerProcess

EVIL_SCRIPT = "<script>alert(1)</script>"
EVIL_IMAGE = "<img src=x onerror=alert(2)>"
KEY, SECRET = "AKIDCONSOLE", "console-secret-for-tests"


@dataclass
class Reply:
    status: int
    headers: Any  # case-insensitive, as http.client gives them
    text: str
    cookies: list[str]

    @property
    def csrf(self) -> str:
        match = re.search(r'name="csrf" value="([^"]+)"', self.text)
        assert match, self.text[:2000]
        return match.group(1)


@dataclass
class Console:
    """A client that keeps the console's cookie, as a browser does (no redirects followed)."""

    port: int
    cookie: str | None = None
    host: str = ""
    sent_cookies: list[str] = field(default_factory=list)

    def request(
        self,
        method: str,
        path: str,
        form: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        sent = {"Host": self.host or f"127.0.0.1:{self.port}", **(headers or {})}
        if self.cookie:
            sent["Cookie"] = self.cookie
        body = None
        if form is not None:
            body = urlencode(form)
            sent["Content-Type"] = "application/x-www-form-urlencoded"
        connection.request(method, path, body=body, headers=sent)
        response = connection.getresponse()
        text = response.read().decode()
        cookies = response.headers.get_all("set-cookie") or []
        for cookie in cookies:
            pair = cookie.split(";", 1)[0]
            if pair.endswith("="):
                self.cookie = None
            else:
                self.cookie = pair
        connection.close()
        return Reply(response.status, response.headers, text, cookies)

    def get(self, path: str, **query: str) -> Reply:
        return self.request("GET", path + (f"?{urlencode(query)}" if query else ""))

    def post(self, path: str, form: dict[str, str], **headers: str) -> Reply:
        return self.request("POST", path, form, headers)


@pytest.fixture(scope="module")
def group(personalize, s3_root: Path) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """A group with an Items dataset whose import failed on a hostile value, and a filter
    whose expression holds markup."""
    group_arn = active_group(personalize)
    items = active_dataset(personalize, group_arn, schema(personalize, ITEMS_SCHEMA), "Items")
    folder = s3_root / "console"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "bad-items.csv").write_text(
        f"ITEM_ID,GENRES,PRICE\ni1,drama,1.5\ni2,comedy,{EVIL_IMAGE}\n"
    )
    job = run_import(personalize, items, "s3://console/bad-items.csv")
    assert job["status"] == "CREATE FAILED", job
    filter_arn = personalize.create_filter(
        name=unique("evil"),
        datasetGroupArn=group_arn,
        filterExpression=f'EXCLUDE ItemID WHERE Items.GENRES IN ("{EVIL_SCRIPT}")',
    )["filterArn"]
    return {"arn": group_arn, "filter": filter_arn, "import": job}


def test_groups_page_links_each_group(server: ServerProcess, group: dict[str, Any]) -> None:
    reply = Console(server.port).get("/console")
    assert reply.status == 200
    assert reply.headers["Content-Type"].startswith("text/html")
    name = group["arn"].rsplit("/", 1)[1]
    assert f">{name}</a>" in reply.text
    assert (
        "/console/group?arn=" + group["arn"].replace(":", "%3A").replace("/", "%2F") in reply.text
    )


def test_group_page_escapes_user_data(server: ServerProcess, group: dict[str, Any]) -> None:
    reply = Console(server.port).get("/console/group", arn=group["arn"])
    assert reply.status == 200
    # The filter's expression and the import's failureReason are shown, as text.
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in reply.text
    assert EVIL_SCRIPT not in reply.text
    reason = group["import"]["failureReason"]
    assert "bad-items.csv" in reason
    assert _html_escape(reason) in reply.text
    if "onerror" in reason:  # the reason quotes the bad value: never as markup
        assert EVIL_IMAGE not in reply.text
    assert "CREATE FAILED" in reply.text
    # No script may run but the console's own.
    assert "script-src 'self'" in reply.headers["content-security-policy"]


def test_assets_are_served_locally(server: ServerProcess) -> None:
    console = Console(server.port)
    page = console.get("/console")
    plotly = re.search(r'src="(/console/static/console\.js\?v=\w+)"', page.text)
    assert plotly, page.text[:500]
    script = console.get("/console/static/plotly.min.js")
    assert script.status == 200 and "plotly" in script.text[:2000].lower()
    assert script.headers["Content-Type"] in ("text/javascript", "application/javascript")
    assert "http://" not in page.text and "https://" not in page.text  # nothing from a CDN
    assert console.get("/console/static/../app.py").status == 404


def test_post_without_csrf_token_is_refused(
    server: ServerProcess,
    personalize,
    group: dict[str, Any],  # type: ignore[no-untyped-def]
) -> None:
    console = Console(server.port)
    page = console.get("/console/group", arn=group["arn"])
    assert console.cookie and page.csrf
    form = {"type": "filter", "arn": group["filter"], "page": "group", "pageArn": group["arn"]}
    refused = console.post("/console/actions/delete", form)
    assert refused.status == 403 and "CSRF" in refused.text
    wrong = console.post("/console/actions/delete", {**form, "csrf": page.csrf[:-2] + "xx"})
    assert wrong.status == 403
    # Another session's token does not fit this session.
    other = Console(server.port)
    other_token = other.get("/console/group", arn=group["arn"]).csrf
    assert console.post("/console/actions/delete", {**form, "csrf": other_token}).status == 403
    # A form sent from another site is refused even with the token.
    crossed = console.post(
        "/console/actions/delete", {**form, "csrf": page.csrf}, Origin="http://evil.example"
    )
    assert crossed.status == 403
    status = personalize.describe_filter(filterArn=group["filter"])["filter"]["status"]
    assert status == "ACTIVE"


def test_action_error_is_shown_in_the_page(
    server: ServerProcess,
    personalize,
    group: dict[str, Any],  # type: ignore[no-untyped-def]
) -> None:
    console = Console(server.port)
    token = console.get("/console/group", arn=group["arn"]).csrf
    missing = group["arn"].replace(":dataset-group/", ":solution/") + "/0123abcd"
    name = unique("camp")
    reply = console.post(
        "/console/actions/create-campaign",
        {
            "csrf": token,
            "name": name,
            "solutionVersionArn": missing,
            "page": "group",  # the form was on the group page
            "pageArn": group["arn"],
        },
    )
    assert reply.status == 400
    assert "ResourceNotFoundException" in reply.text and missing in reply.text
    assert 'id="datasets"' in reply.text  # the group page, with the error on it
    names = {c["name"] for c in personalize.list_campaigns()["campaigns"]}
    assert name not in names
    invalid = console.post(
        "/console/actions/create-campaign",
        {
            "csrf": token,
            "name": "bad name!",
            "solutionVersionArn": missing,
            "page": "group",
            "pageArn": group["arn"],
        },
    )
    assert invalid.status == 400 and "InvalidInputException" in invalid.text


def test_delete_goes_through_the_resource_layer(
    server: ServerProcess,
    personalize,
    group: dict[str, Any],  # type: ignore[no-untyped-def]
) -> None:
    filter_arn = personalize.create_filter(
        name=unique("gone"),
        datasetGroupArn=group["arn"],
        filterExpression="EXCLUDE ItemID WHERE Items.PRICE > 10",
    )["filterArn"]
    console = Console(server.port)
    token = console.get("/console/group", arn=group["arn"]).csrf
    form = {"type": "filter", "arn": filter_arn, "page": "group", "pageArn": group["arn"]}
    reply = console.post("/console/actions/delete", {**form, "csrf": token})
    assert reply.status == 303, reply.text
    assert urlsplit(reply.headers["Location"]).path == "/console/group"
    try:
        status = personalize.describe_filter(filterArn=filter_arn)["filter"]["status"]
        assert status in ("DELETE PENDING", "DELETE IN_PROGRESS")
    except ClientError as error:
        assert error.response["Error"]["Code"] == "ResourceNotFoundException"
    # The group still holds resources: the service's refusal, shown on the page.
    refused = console.post(
        "/console/actions/delete",
        {
            "csrf": token,
            "type": "dataset-group",
            "arn": group["arn"],
            "page": "group",
            "pageArn": group["arn"],
        },
    )
    assert refused.status == 400 and "ResourceInUseException" in refused.text


def test_unknown_resources_and_pages(server: ServerProcess) -> None:
    console = Console(server.port)
    missing = "arn:aws:personalize:us-east-1:000000000000:dataset-group/nope"
    reply = console.get("/console/group", arn=missing)
    assert reply.status == 404 and missing in reply.text
    assert console.get("/console/group", arn="not-an-arn").status == 400
    assert console.get("/console/nowhere").status == 404
    assert console.request("PUT", "/console").status == 405


def test_other_host_names_are_refused_without_keys(server: ServerProcess) -> None:
    """A page whose name was re-pointed at 127.0.0.1 (DNS rebinding) cannot read it."""
    reply = Console(server.port, host="evil.example").get("/console")
    assert reply.status == 403 and "loopback" in reply.text
    assert Console(server.port, host=f"localhost:{server.port}").get("/console").status == 200


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    settings = {"access_key_id": KEY, "secret_access_key": SECRET, "workers": "1"}
    with ServerProcess(
        tmp_path_factory.mktemp("console-keys"),
        settings=settings,
        access_key_id=KEY,
        secret_access_key=SECRET,
    ) as running:
        running.client().create_dataset_group(name="secured-group")
        yield running


def test_login_is_required_with_keys(secured: ServerProcess) -> None:
    console = Console(secured.port)
    reply = console.get("/console")
    assert reply.status == 303 and reply.headers["Location"].startswith("/console/login")
    assert console.cookie is None
    assert console.post("/console/actions/delete", {"type": "dataset-group"}).status == 403
    login = console.get("/console/login")
    assert login.status == 200 and 'name="secretAccessKey"' in login.text
    wrong = console.post("/console/login", {"accessKeyId": KEY, "secretAccessKey": "nope"})
    assert wrong.status == 401 and console.cookie is None
    unknown = console.post(
        "/console/login", {"accessKeyId": "AKIDOTHER", "secretAccessKey": SECRET}
    )
    assert unknown.status == 401 and console.cookie is None
    ok = console.post(
        "/console/login", {"accessKeyId": KEY, "secretAccessKey": SECRET, "next": "/console"}
    )
    assert ok.status == 303 and ok.headers["Location"] == "/console"
    (cookie,) = ok.cookies
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/console" in cookie
    page = console.get("/console")
    assert page.status == 200 and "secured-group" in page.text and KEY in page.text


def test_forged_or_foreign_sessions_are_refused(
    secured: ServerProcess, server: ServerProcess
) -> None:
    console = Console(secured.port)
    console.post("/console/login", {"accessKeyId": KEY, "secretAccessKey": SECRET})
    assert console.cookie
    name, value = console.cookie.split("=", 1)
    payload, signature = value.split(".")
    tampered = Console(secured.port, cookie=f"{name}={payload}.{signature[:-3]}AAA")
    assert tampered.get("/console").status == 303
    # An anonymous session of a server without keys is no login here.
    anonymous = Console(server.port)
    anonymous.get("/console")
    assert Console(secured.port, cookie=anonymous.cookie).get("/console").status == 303
    # A login redirect never leaves the console.
    bounced = Console(secured.port).post(
        "/console/login",
        {"accessKeyId": KEY, "secretAccessKey": SECRET, "next": "//evil.example/"},
    )
    assert bounced.headers["Location"] == "/console"


def test_logout_ends_the_session(secured: ServerProcess) -> None:
    console = Console(secured.port)
    console.post("/console/login", {"accessKeyId": KEY, "secretAccessKey": SECRET})
    token = console.get("/console").csrf
    assert console.post("/console/logout", {"csrf": token}).status == 303
    assert console.cookie is None
    assert console.get("/console").status == 303


def _html_escape(text: str) -> str:
    return str(markupsafe.escape(text))  # as Jinja2 escapes


def test_sessions_hold_across_http_processes(tmp_path: Path) -> None:
    """A session and its CSRF token made by one HTTP process are good in every other."""
    with ServerProcess(tmp_path, settings={"http_processes": "2", "workers": "1"}) as running:
        group_arn = running.client().create_dataset_group(name=unique("multi"))["datasetGroupArn"]
        console = Console(running.port)
        first = console.get("/console/group", arn=group_arn)
        token = first.csrf
        answered = {first.headers["x-openpersonalize-process"]}
        missing = group_arn.replace(":dataset-group/", ":filter/")
        form = {"csrf": token, "type": "filter", "arn": missing, "page": "group"}
        for _ in range(60):
            reply = console.post("/console/actions/delete", {**form, "pageArn": group_arn})
            # Past the CSRF check, to the resource layer's answer.
            assert reply.status == 400 and "ResourceNotFoundException" in reply.text, reply.text
            answered.add(reply.headers["x-openpersonalize-process"])
            if len(answered) == 2:
                break
        assert len(answered) == 2, answered
