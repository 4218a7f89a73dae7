"""Resolve a dataset import job's ``dataLocation`` to the CSV files it names.

``s3://bucket/key`` names one object; ``s3://bucket/prefix/`` (trailing slash)
names every ``.csv`` / ``.csv.gz`` object under the prefix, in key order, as the
service does. The objects come either from a local directory standing in for S3
(``s3_local_root``: ``{root}/{bucket}/{key}``) or from an S3-compatible endpoint
through boto3, downloaded to a scratch directory first so the importer reads a
local file. Gzip files are decompressed on the fly when opened.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, BinaryIO

import pyarrow as pa

from openpersonalize.data.importer import CsvSource, ImportFailed

__all__ = ["parse_s3_location", "resolve_data_location", "resolve_with_settings"]

_GZIP_MAGIC = b"\x1f\x8b"
_COPY_CHUNK = 8 << 20


def resolve_data_location(
    location: str,
    *,
    s3_endpoint_url: str | None,
    s3_local_root: str | None,
    scratch_dir: Path,
) -> list[CsvSource]:
    """The CSV sources of ``location``; raises ImportFailed with a reason naming it.

    With ``s3_local_root`` the files are read in place; otherwise objects are
    downloaded into ``scratch_dir`` (the caller deletes it after the import).
    """
    bucket, key = parse_s3_location(location)
    if s3_local_root is not None:
        return _resolve_local(location, bucket, key, Path(s3_local_root))
    return _resolve_s3(location, bucket, key, s3_endpoint_url, Path(scratch_dir))


def resolve_with_settings(location: str, settings: Any, scratch_dir: Path) -> list[CsvSource]:
    """`resolve_data_location` with the server's S3 settings (endpoint, local root)."""
    return resolve_data_location(
        location,
        s3_endpoint_url=settings.s3_endpoint_url,
        s3_local_root=str(settings.s3_local_root) if settings.s3_local_root else None,
        scratch_dir=scratch_dir,
    )


def parse_s3_location(location: str) -> tuple[str, str]:
    """(bucket, key) of an ``s3://`` location; key is "" or ends in "/" for a prefix."""
    if not isinstance(location, str) or not location.startswith("s3://"):
        raise ImportFailed(
            f"Data location {location!r} is not supported: only s3:// data locations are supported"
        )
    bucket, _, key = location[len("s3://") :].partition("/")
    if not bucket:
        raise ImportFailed(f"Data location {location!r} has no bucket name")
    return bucket, key


def _is_prefix(key: str) -> bool:
    return key == "" or key.endswith("/")


def _is_csv_key(key: str) -> bool:
    lower = key.lower()
    return lower.endswith(".csv") or lower.endswith(".csv.gz")


def _local_source(name: str, path: Path) -> CsvSource:
    """A source reading a local file, gunzipping it when it starts with gzip's magic."""
    with path.open("rb") as f:
        gzipped = f.read(2) == _GZIP_MAGIC

    def open_() -> BinaryIO:
        if gzipped:
            # Arrow's stream decompresses in C++ without holding the GIL.
            stream: Any = pa.input_stream(str(path), compression="gzip")
            return stream
        return path.open("rb")

    # A gzip file's own size says little about the CSV's, so progress goes by file.
    return CsvSource(name=name, open=open_, size=None if gzipped else path.stat().st_size)


# ------------------------------------------------------------------------ local root


def _resolve_local(location: str, bucket: str, key: str, root: Path) -> list[CsvSource]:
    """Read ``{root}/{bucket}/{key}`` in place, refusing anything outside the root."""
    segments = [bucket, *key.split("/")]
    if any(s in ("..", ".") for s in segments):
        raise ImportFailed(f"Data location {location} must not contain '.' or '..' segments")
    root_abs = os.path.normpath(os.path.abspath(root))
    target = os.path.normpath(os.path.join(root_abs, *[s for s in segments if s]))
    if os.path.commonpath([root_abs, target]) != root_abs:
        raise ImportFailed(f"Data location {location} is outside the S3 root")
    bucket_dir = Path(root_abs, bucket)
    if not bucket_dir.is_dir():
        raise ImportFailed(f"Bucket {bucket} does not exist (data location {location})")

    path = Path(target)
    if not _is_prefix(key):
        if not path.is_file():
            raise ImportFailed(_no_object(location, is_dir=path.is_dir()))
        return [_local_source(location, path)]

    found: list[tuple[str, Path]] = []
    if path.is_dir():
        for dirpath, _dirnames, filenames in os.walk(path):
            for filename in filenames:
                full = Path(dirpath, filename)
                rel = full.relative_to(bucket_dir).as_posix()
                if _is_csv_key(rel) and full.is_file():
                    found.append((rel, full))
    if not found:
        raise ImportFailed(f"No CSV files found at {location}")
    found.sort()  # S3 lists keys in byte order
    return [_local_source(f"s3://{bucket}/{rel}", full) for rel, full in found]


def _no_object(location: str, *, is_dir: bool = False) -> str:
    hint = " (to import every CSV file under a prefix, end the location with '/')" if is_dir else ""
    return f"No object found at {location}{hint}"


# ------------------------------------------------------------------------------ boto3


def _resolve_s3(
    location: str, bucket: str, key: str, endpoint_url: str | None, scratch_dir: Path
) -> list[CsvSource]:
    """List and download the objects through boto3; map its errors to ImportFailed."""
    import botocore.exceptions as bx  # deferred: boto3 import is slow and often unused

    downloaded: list[Path] = []
    try:
        client = s3_client(endpoint_url)
        if _is_prefix(key):
            keys = _list_csv_keys(client, bucket, key)
            if not keys:
                raise ImportFailed(f"No CSV files found at {location}")
        else:
            keys = [key]
        scratch_dir.mkdir(parents=True, exist_ok=True)
        sources = []
        for n, object_key in enumerate(keys):
            name = f"s3://{bucket}/{object_key}"
            dest = scratch_dir / f"{n:05d}-{_safe_basename(object_key)}"
            downloaded.append(dest)
            _download(client, bucket, object_key, dest, name)
            sources.append(_local_source(name, dest))
        return sources
    except ImportFailed:
        _remove(downloaded)
        raise
    except bx.ClientError as exc:
        _remove(downloaded)
        raise ImportFailed(_client_error_reason(exc, location, bucket)) from None
    except bx.NoCredentialsError:
        _remove(downloaded)
        raise ImportFailed(f"No S3 credentials are configured to read {location}") from None
    except bx.EndpointConnectionError as exc:
        _remove(downloaded)
        raise ImportFailed(
            f"Could not connect to the S3 endpoint to read {location}: {exc}"
        ) from None
    except bx.BotoCoreError as exc:
        _remove(downloaded)
        raise ImportFailed(f"Could not read {location}: {exc}") from None
    except BaseException:
        _remove(downloaded)
        raise


def s3_client(endpoint_url: str | None) -> Any:
    """An S3 client on the default credential chain; us-east-1 when no region is set."""
    import boto3
    from botocore.config import Config

    session = boto3.session.Session()
    # A self-hosted endpoint (MinIO, Ceph, moto) rarely resolves bucket subdomains.
    config = Config(s3={"addressing_style": "path"}) if endpoint_url else None
    return session.client(
        "s3",
        endpoint_url=endpoint_url,
        region_name=session.region_name or "us-east-1",
        config=config,
    )


def _list_csv_keys(client: Any, bucket: str, prefix: str) -> list[str]:
    keys: list[str] = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            k = obj["Key"]
            if not k.endswith("/") and _is_csv_key(k):
                keys.append(k)
    return sorted(keys)


def _download(client: Any, bucket: str, key: str, dest: Path, name: str) -> None:
    """Stream one object to ``dest`` in chunks (never whole in memory)."""
    response = client.get_object(Bucket=bucket, Key=key)
    body = response["Body"]
    try:
        with dest.open("wb") as out:
            for chunk in body.iter_chunks(_COPY_CHUNK):
                out.write(chunk)
    finally:
        body.close()


def _client_error_reason(exc: Any, location: str, bucket: str) -> str:
    error = exc.response.get("Error", {})
    code = str(error.get("Code", ""))
    if code == "NoSuchBucket":
        return f"Bucket {bucket} does not exist (data location {location})"
    if code in ("NoSuchKey", "404", "NotFound"):
        return _no_object(location)
    if code in ("AccessDenied", "403", "Forbidden", "AllAccessDisabled"):
        return f"Access denied to {location}"
    if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch"):
        return f"The S3 credentials were refused when reading {location} ({code})"
    message = error.get("Message") or str(exc)
    return f"Could not read {location}: {code} {message}".strip()


def _safe_basename(key: str) -> str:
    """The key's last segment, reduced to characters safe in a file name."""
    base = key.rstrip("/").rsplit("/", 1)[-1] or "object"
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in base)[:100]


def _remove(paths: list[Path]) -> None:
    for p in paths:
        p.unlink(missing_ok=True)
