"""SigV4 verification against requests signed by botocore itself."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import botocore.auth
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from openpersonalize.errors import (
    InvalidSignatureException,
    MissingAuthenticationTokenException,
    UnrecognizedClientException,
)
from openpersonalize.wire.sigv4 import canonical_query_string, canonical_uri, verify_request

ACCESS_KEY = "AKIDEXAMPLE"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
CREDENTIALS = {ACCESS_KEY: SECRET_KEY}
ENDPOINT = "http://localhost:8080"
SIGNED_AT = datetime(2024, 5, 1, 12, 30, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _fixed_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    # botocore stamps X-Amz-Date from this; a fixed time makes `now=` shifts exact.
    monkeypatch.setattr(
        botocore.auth, "get_current_datetime", lambda *a, **k: SIGNED_AT.replace(tzinfo=None)
    )


def sign(
    method: str,
    url: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    *,
    params: dict[str, str] | None = None,
    secret: str = SECRET_KEY,
    access_key: str = ACCESS_KEY,
    service: str = "personalize",
    region: str = "us-east-1",
) -> dict[str, object]:
    """Sign with botocore and return what the server would see: method, path, query, headers."""
    request = AWSRequest(method=method, url=url, data=body, headers=headers or {}, params=params)
    SigV4Auth(Credentials(access_key, secret), service, region).add_auth(request)
    prepared = request.prepare()
    parts = urlsplit(prepared.url)
    wire_headers = dict(prepared.headers.items())
    # The HTTP client adds Host; botocore signs the value it will send.
    wire_headers.setdefault("Host", parts.netloc)
    return {
        "method": prepared.method,
        "path": parts.path,
        "query_string": parts.query,
        "headers": wire_headers,
        "body": body,
    }


def verify(request: dict[str, object], **kwargs: object) -> str:
    kwargs.setdefault("now", SIGNED_AT)
    return verify_request(
        request["method"],  # type: ignore[arg-type]
        request["path"],  # type: ignore[arg-type]
        request["query_string"],  # type: ignore[arg-type]
        request["headers"],  # type: ignore[arg-type]
        request["body"],  # type: ignore[arg-type]
        kwargs.pop("credentials", CREDENTIALS),  # type: ignore[arg-type]
        **kwargs,  # type: ignore[arg-type]
    )


def control_plane_request(**kwargs: object) -> dict[str, object]:
    body = json.dumps({"name": "movies", "domain": "VIDEO_ON_DEMAND"}).encode()
    headers = {
        "X-Amz-Target": "AmazonPersonalize.CreateDatasetGroup",
        "Content-Type": "application/x-amz-json-1.1",
    }
    return sign("POST", ENDPOINT + "/", body, headers, **kwargs)  # type: ignore[arg-type]


def runtime_request() -> dict[str, object]:
    body = json.dumps({"campaignArn": "arn:aws:personalize:us-east-1:0:campaign/c", "userId": "u1"})
    return sign(
        "POST",
        ENDPOINT + "/recommendations",
        body.encode(),
        {"Content-Type": "application/json"},
    )


# --- accepted requests ------------------------------------------------------------------------


def test_json_control_plane_request_verifies() -> None:
    assert verify(control_plane_request()) == ACCESS_KEY


def test_rest_json_request_verifies() -> None:
    assert verify(runtime_request()) == ACCESS_KEY


def test_query_string_in_url_verifies() -> None:
    # botocore clients put the percent-encoded query into the URL.
    request = sign("GET", ENDPOINT + "/items?maxResults=5&b=x%20y&a=%3A%2F")
    assert request["query_string"] == "maxResults=5&b=x%20y&a=%3A%2F"
    assert verify(request) == ACCESS_KEY


def test_query_string_from_params_verifies() -> None:
    # AWSRequest(params=...) sends "+" for a space but signs "%20".
    request = sign("GET", ENDPOINT + "/items", params={"filter": "a b", "nextToken": "t/1"})
    assert "+" in str(request["query_string"])
    assert verify(request) == ACCESS_KEY


def test_any_region_in_scope_is_accepted() -> None:
    assert verify(control_plane_request(region="eu-west-3")) == ACCESS_KEY


def test_header_names_any_case_and_list_values() -> None:
    request = control_plane_request()
    headers = {name.upper(): [value] for name, value in request["headers"].items()}  # type: ignore[union-attr]
    assert verify({**request, "headers": headers}) == ACCESS_KEY


def test_matching_content_sha256_is_accepted() -> None:
    body = b'{"a": 1}'
    request = sign(
        "POST", ENDPOINT + "/", body, {"X-Amz-Content-SHA256": hashlib.sha256(body).hexdigest()}
    )
    assert verify(request) == ACCESS_KEY


def test_date_header_instead_of_x_amz_date() -> None:
    # botocore signs with an RFC 2822 Date header (and no X-Amz-Date) when one is present.
    request = sign("POST", ENDPOINT + "/", b"{}", {"Date": "Wed, 01 May 2024 00:00:00 GMT"})
    assert "X-Amz-Date" not in request["headers"]  # type: ignore[operator]
    assert verify(request) == ACCESS_KEY


def test_within_skew_is_accepted() -> None:
    assert verify(control_plane_request(), now=SIGNED_AT + timedelta(minutes=14)) == ACCESS_KEY
    assert verify(control_plane_request(), now=SIGNED_AT - timedelta(minutes=14)) == ACCESS_KEY


def test_canonical_forms_match_botocore() -> None:
    assert canonical_uri("/") == "/"
    assert canonical_uri("") == "/"
    assert canonical_uri("/recommendations") == "/recommendations"
    # Non-S3 services encode the already-encoded path once more, and drop empty segments.
    assert canonical_uri("/a%3Ab//c/./d/../e/") == "/a%253Ab/c/e/"
    assert canonical_query_string("b=2&a=x%20y&a=1") == "a=1&a=x%20y&b=2"


# --- refused requests -------------------------------------------------------------------------


def test_missing_authorization() -> None:
    request = control_plane_request()
    headers = {k: v for k, v in request["headers"].items() if k.lower() != "authorization"}  # type: ignore[union-attr]
    with pytest.raises(MissingAuthenticationTokenException) as caught:
        verify({**request, "headers": headers})
    assert "not signed" in caught.value.message
    assert "Signature Version 4" in caught.value.message
    assert caught.value.http_status == 403


def test_unknown_access_key() -> None:
    with pytest.raises(UnrecognizedClientException) as caught:
        verify(control_plane_request(access_key="AKIDUNKNOWN"))
    assert caught.value.message == "The security token included in the request is invalid."


def test_wrong_secret() -> None:
    with pytest.raises(InvalidSignatureException) as caught:
        verify(control_plane_request(secret="not-the-secret"))
    assert "does not match the signature you provided" in caught.value.message


def test_tampered_body() -> None:
    request = control_plane_request()
    with pytest.raises(InvalidSignatureException, match="does not match the signature"):
        verify({**request, "body": b'{"name": "other", "domain": "ECOMMERCE"}'})


def test_tampered_signed_header() -> None:
    request = control_plane_request()
    headers = dict(request["headers"])  # type: ignore[call-overload]
    headers["X-Amz-Target"] = "AmazonPersonalize.DeleteDatasetGroup"
    with pytest.raises(InvalidSignatureException, match="does not match the signature"):
        verify({**request, "headers": headers})


def test_tampered_query_string() -> None:
    request = sign("GET", ENDPOINT + "/items?maxResults=5")
    with pytest.raises(InvalidSignatureException, match="does not match the signature"):
        verify({**request, "query_string": "maxResults=6"})


def test_wrong_service_in_scope() -> None:
    with pytest.raises(InvalidSignatureException) as caught:
        verify(control_plane_request(service="s3"))
    assert "scoped to correct service: 'personalize'" in caught.value.message


def test_runtime_service_name_is_configurable() -> None:
    assert verify(control_plane_request(service="personalize"), service="personalize") == ACCESS_KEY
    with pytest.raises(InvalidSignatureException, match="correct service"):
        verify(control_plane_request(), service="personalize-events")


def test_wrong_terminator() -> None:
    request = control_plane_request()
    headers = dict(request["headers"])  # type: ignore[call-overload]
    headers["Authorization"] = headers["Authorization"].replace("aws4_request", "aws5_request")
    with pytest.raises(InvalidSignatureException, match="valid terminator"):
        verify({**request, "headers": headers})


def test_expired_signature() -> None:
    with pytest.raises(InvalidSignatureException) as caught:
        verify(control_plane_request(), now=SIGNED_AT + timedelta(minutes=16))
    message = caught.value.message
    assert message.startswith("Signature expired: 20240501T123000Z is now earlier than")
    assert "20240501T123100Z" in message  # the request time minus 15 minutes


def test_signature_from_the_future() -> None:
    with pytest.raises(InvalidSignatureException, match="is now later than"):
        verify(control_plane_request(), now=SIGNED_AT - timedelta(minutes=16))


def test_missing_date() -> None:
    request = control_plane_request()
    headers = {k: v for k, v in request["headers"].items() if k.lower() != "x-amz-date"}  # type: ignore[union-attr]
    with pytest.raises(InvalidSignatureException, match="'X-Amz-Date' or a 'Date' header"):
        verify({**request, "headers": headers})


def test_scope_date_must_match_request_date() -> None:
    request = control_plane_request()
    headers = dict(request["headers"])  # type: ignore[call-overload]
    headers["Authorization"] = headers["Authorization"].replace("/20240501/", "/20240430/")
    with pytest.raises(InvalidSignatureException, match="Date in Credential scope"):
        verify({**request, "headers": headers})


@pytest.mark.parametrize(
    "authorization, fragment",
    [
        ("AWS4-HMAC-SHA256 garbage", "requires 'Credential' parameter"),
        (
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20240501/us-east-1/personalize/aws4_request",
            "requires 'SignedHeaders' parameter",
        ),
        (
            (
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/personalize, SignedHeaders=host, "
                "Signature=abc"
            ),
            "Credential should be of the form",
        ),
        ("AWS AKIDEXAMPLE:signature", "Unsupported AWS 'algorithm'"),
        ("Bearer token", "Unsupported AWS 'algorithm'"),
    ],
)
def test_malformed_authorization(authorization: str, fragment: str) -> None:
    request = control_plane_request()
    headers = dict(request["headers"])  # type: ignore[call-overload]
    headers["Authorization"] = authorization
    with pytest.raises(InvalidSignatureException) as caught:
        verify({**request, "headers": headers})
    assert fragment in caught.value.message


def test_host_must_be_signed() -> None:
    # Build a validly signed request whose SignedHeaders lack host: sign with botocore, then
    # drop host from the list; the check must fire before any signature comparison.
    request = control_plane_request()
    headers = dict(request["headers"])  # type: ignore[call-overload]
    headers["Authorization"] = headers["Authorization"].replace("host;", "")
    assert "host" not in headers["Authorization"].split("SignedHeaders=")[1].split(",")[0]
    with pytest.raises(InvalidSignatureException, match="'Host' or ':authority' must be"):
        verify({**request, "headers": headers})


def test_content_sha256_must_match_body() -> None:
    request = sign("POST", ENDPOINT + "/", b"{}", {"X-Amz-Content-SHA256": "0" * 64})
    with pytest.raises(InvalidSignatureException, match="x-amz-content-sha256"):
        verify(request)


def test_unsigned_payload_is_refused() -> None:
    request = sign("POST", ENDPOINT + "/", b"{}", {"X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD"})
    with pytest.raises(InvalidSignatureException, match="x-amz-content-sha256"):
        verify(request)


def test_signed_header_missing_from_request() -> None:
    request = control_plane_request()
    headers = {k: v for k, v in request["headers"].items() if k != "X-Amz-Target"}  # type: ignore[union-attr]
    with pytest.raises(InvalidSignatureException, match="missing signed header"):
        verify({**request, "headers": headers})


def test_asgi_headers_are_accepted() -> None:
    # The server hands over the raw ASGI byte pairs folded into a lower-cased dict.
    from openpersonalize.wire.app import _headers

    request = control_plane_request()
    raw = [
        (name.encode("latin-1"), str(value).encode("latin-1"))
        for name, value in request["headers"].items()  # type: ignore[union-attr]
    ]
    assert verify({**request, "headers": _headers({"headers": raw})}) == ACCESS_KEY
