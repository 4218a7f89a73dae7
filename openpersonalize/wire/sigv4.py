"""Server-side verification of AWS Signature Version 4 (header form, AWS4-HMAC-SHA256).

The canonical request is rebuilt the way botocore's ``SigV4Auth`` builds it for
non-S3 services, so any AWS SDK or CLI pointed at this server with the configured
key pair is accepted and anything else is refused with AWS's error codes.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from urllib.parse import quote, unquote, unquote_plus

from openpersonalize.errors import (
    InvalidSignatureException,
    MissingAuthenticationTokenException,
    UnrecognizedClientException,
)

ALGORITHM = "AWS4-HMAC-SHA256"
TERMINATOR = "aws4_request"
AMZ_DATE_FORMAT = "%Y%m%dT%H%M%SZ"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"

_SIGNATURE_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your AWS Secret Access Key and signing method. "
    "Consult the service documentation for details."
)


def verify_request(
    method: str,
    path: str,
    query_string: str,
    headers: Mapping[str, object],
    body: bytes,
    credentials: Mapping[str, str],
    *,
    service: str = "personalize",
    now: datetime | None = None,
    max_skew: timedelta = timedelta(minutes=15),
) -> str:
    """Check a request's SigV4 Authorization header; return the access key id that signed it.

    ``path`` and ``query_string`` must be the raw, still percent-encoded forms as sent on
    the wire (ASGI ``raw_path`` and ``query_string``), because clients sign the encoded
    path. ``headers`` may be any mapping (names in any case, values a string or a list of
    strings; repeated headers from ``items()`` are joined with ","). ``credentials`` maps
    access key id to secret key.
    """
    lowered = _lower_headers(headers)
    authorization = lowered.get("authorization")
    if not authorization:
        raise MissingAuthenticationTokenException(
            "Request is missing Authentication Token: the request is not signed. "
            "Sign it with AWS Signature Version 4 (AWS4-HMAC-SHA256) using the "
            "configured access key id and secret access key."
        )

    access_key, scope, signed_headers, signature = _parse_authorization(authorization)
    scope_date, region, scope_service = scope

    timestamp, amz_date = _request_time(lowered)
    _check_skew(timestamp, amz_date, now, max_skew)
    if scope_date != amz_date[:8]:
        raise InvalidSignatureException(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date "
            f"from HTTP: '{scope_date}' != '{amz_date[:8]}', from '{amz_date}'."
        )
    if scope_service != service:
        raise InvalidSignatureException(
            f"Credential should be scoped to correct service: '{service}'."
        )

    if "host" not in signed_headers:
        raise InvalidSignatureException(
            "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization."
        )
    missing = [name for name in signed_headers if name not in lowered]
    if missing:
        raise InvalidSignatureException(
            f"The request is missing signed header(s): {', '.join(missing)}."
        )

    payload_hash = hashlib.sha256(body or b"").hexdigest()
    declared_hash = lowered.get("x-amz-content-sha256")
    # A declared hash is only honoured when it is the body's real hash: accepting
    # UNSIGNED-PAYLOAD would let a captured signature carry any body.
    if declared_hash is not None and declared_hash.strip().lower() != payload_hash:
        raise InvalidSignatureException(
            "The provided 'x-amz-content-sha256' header does not match what was computed."
        )

    secret = credentials.get(access_key)
    if secret is None:
        raise UnrecognizedClientException("The security token included in the request is invalid.")

    canonical_headers = "".join(f"{name}:{_trim(lowered[name])}\n" for name in signed_headers)
    credential_scope = f"{scope_date}/{region}/{scope_service}/{TERMINATOR}"
    signing_key = _signing_key(secret, scope_date, region, scope_service)

    canonical_request = string_to_sign = ""
    for canonical_query in _canonical_query_candidates(query_string):
        canonical_request = "\n".join(
            [
                method.upper(),
                canonical_uri(path),
                canonical_query,
                canonical_headers,
                ";".join(signed_headers),
                payload_hash,
            ]
        )
        string_to_sign = "\n".join(
            [
                ALGORITHM,
                amz_date,
                credential_scope,
                hashlib.sha256(canonical_request.encode("utf-8")).hexdigest(),
            ]
        )
        expected = hmac.new(signing_key, string_to_sign.encode("utf-8"), hashlib.sha256)
        if hmac.compare_digest(expected.hexdigest(), signature.lower()):
            return access_key

    # Like AWS, show the canonical forms (they hold no secret) so a client author can
    # see where their signer differs.
    raise InvalidSignatureException(
        f"{_SIGNATURE_MISMATCH}\n\nThe Canonical String for this request should have been\n"
        f"'{canonical_request}'\n\nThe String-to-Sign should have been\n'{string_to_sign}'\n"
    )


def canonical_uri(path: str) -> str:
    """The path as botocore's SigV4Auth canonicalises it (non-S3).

    Dot segments and empty segments are removed, then the already percent-encoded
    path is encoded again with only "/" and "~" left alone, so "%3A" becomes "%253A".
    """
    if not path:
        return "/"
    segments: list[str] = []
    for segment in path.split("/"):
        if not segment or segment == ".":
            continue
        if segment == "..":
            if segments:
                segments.pop()
        else:
            segments.append(segment)
    normalised = "/" + "/".join(segments)
    if path.endswith("/") and segments:
        normalised += "/"
    return quote(normalised, safe="/~")


def canonical_query_string(query_string: str, *, plus_is_space: bool = False) -> str:
    """Each name and value decoded, re-encoded per SigV4 (RFC 3986 unreserved kept), sorted."""
    decode = unquote_plus if plus_is_space else unquote
    pairs = []
    for pair in query_string.split("&"):
        if not pair:
            continue
        name, _, value = pair.partition("=")
        pairs.append((_encode(decode(name)), _encode(decode(value))))
    return "&".join(f"{name}={value}" for name, value in sorted(pairs))


def _canonical_query_candidates(query_string: str) -> Iterable[str]:
    """The spec's canonical query string, then, when the query holds "+", the form-encoding one.

    botocore's clients percent-encode spaces, but form-style encoders (and botocore's own
    ``AWSRequest(params=...)``) send "+" for a space while signing "%20". Trying both costs
    nothing in safety: each still needs a valid HMAC over what the signer meant.
    """
    yield canonical_query_string(query_string)
    if "+" in query_string:
        yield canonical_query_string(query_string, plus_is_space=True)


def _encode(value: str) -> str:
    return quote(value, safe="-_.~")


def _lower_headers(headers: Mapping[str, object]) -> dict[str, str]:
    """Header names lower-cased; repeated or list values joined with ","."""
    collected: dict[str, list[str]] = {}
    for name, value in headers.items():
        key = _text(name).lower()
        values = value if isinstance(value, list | tuple) else [value]
        collected.setdefault(key, []).extend(_text(v) for v in values)
    # Each value trimmed before joining, as botocore trims each occurrence.
    return {key: ",".join(_trim(v) for v in values) for key, values in collected.items()}


def _text(value: object) -> str:
    # ASGI hands out raw bytes; HTTP header bytes are latin-1 by definition.
    return value.decode("latin-1") if isinstance(value, bytes) else str(value)


def _trim(value: str) -> str:
    """SigV4's Trimall: strip the ends and collapse runs of whitespace to one space."""
    return " ".join(value.split())


def _parse_authorization(
    authorization: str,
) -> tuple[str, tuple[str, str, str], list[str], str]:
    """Split the header into access key, (date, region, service), signed headers, signature."""
    algorithm, _, rest = authorization.strip().partition(" ")
    if algorithm != ALGORITHM:
        raise InvalidSignatureException(
            f"Unsupported AWS 'algorithm': '{algorithm}'; only '{ALGORITHM}' is accepted."
        )
    params: dict[str, str] = {}
    for part in rest.split(","):
        key, sep, value = part.strip().partition("=")
        if sep:
            params[key.strip()] = value.strip()
    missing = [key for key in ("Credential", "SignedHeaders", "Signature") if not params.get(key)]
    if missing:
        raise InvalidSignatureException(
            " ".join(f"Authorization header requires '{key}' parameter." for key in missing)
            + f" Authorization={authorization}"
        )

    scope = params["Credential"].split("/")
    if len(scope) != 5 or not all(scope):
        raise InvalidSignatureException(
            "Credential should be of the form "
            f"'<access key>/<YYYYMMDD>/<region>/<service>/{TERMINATOR}', "
            f"not '{params['Credential']}'."
        )
    access_key, scope_date, region, scope_service, terminator = scope
    if terminator != TERMINATOR:
        raise InvalidSignatureException(
            f"Credential should be scoped with a valid terminator: '{TERMINATOR}', "
            f"not '{terminator}'."
        )
    signed_headers = sorted({name.strip().lower() for name in params["SignedHeaders"].split(";")})
    if "" in signed_headers:
        raise InvalidSignatureException(
            f"Malformed SignedHeaders in the Authorization header: '{params['SignedHeaders']}'."
        )
    return access_key, (scope_date, region, scope_service), signed_headers, params["Signature"]


def _request_time(headers: Mapping[str, str]) -> tuple[datetime, str]:
    """The signing time from X-Amz-Date (preferred, as in the spec) or Date, and its ISO form."""
    amz_date = headers.get("x-amz-date")
    if amz_date:
        try:
            parsed = datetime.strptime(amz_date, AMZ_DATE_FORMAT).replace(tzinfo=UTC)
        except ValueError:
            raise InvalidSignatureException(
                f"Invalid X-Amz-Date '{amz_date}': expected the form YYYYMMDD'T'HHMMSS'Z'."
            ) from None
        return parsed, amz_date
    date = headers.get("date")
    if date:
        try:
            parsed = parsedate_to_datetime(date)
        except (TypeError, ValueError):
            raise InvalidSignatureException(f"Invalid Date header '{date}'.") from None
        parsed = parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
        return parsed, parsed.strftime(AMZ_DATE_FORMAT)
    raise InvalidSignatureException(
        "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header."
    )


def _check_skew(
    timestamp: datetime, amz_date: str, now: datetime | None, max_skew: timedelta
) -> None:
    """Refuse signatures older or newer than ``max_skew`` from now, so captures go stale."""
    current = datetime.now(UTC) if now is None else now
    if current.tzinfo is None:
        current = current.replace(tzinfo=UTC)
    minutes = f"{max_skew.total_seconds() / 60:g} min."
    stamp = current.strftime(AMZ_DATE_FORMAT)
    if timestamp < current - max_skew:
        earliest = (current - max_skew).strftime(AMZ_DATE_FORMAT)
        raise InvalidSignatureException(
            f"Signature expired: {amz_date} is now earlier than {earliest} ({stamp} - {minutes})"
        )
    if timestamp > current + max_skew:
        latest = (current + max_skew).strftime(AMZ_DATE_FORMAT)
        raise InvalidSignatureException(
            f"Signature expired: {amz_date} is now later than {latest} ({stamp} + {minutes})"
        )


def _signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    """SigV4's derived key: HMAC chain over date, region, service and the terminator."""
    key = f"AWS4{secret}".encode()
    for part in (date, region, service, TERMINATOR):
        key = hmac.new(key, part.encode("utf-8"), hashlib.sha256).digest()
    return key
