"""The blob store: datasets' Parquet files, trained models and HPO inputs, by key.

By default a local directory (the data directory). With ``--blob-store s3://bucket/prefix`` an
S3-compatible bucket (endpoint from ``--s3-endpoint-url``), or any other URL an installed
fsspec implementation understands (``gs://``, ``az://``, ...), so that training tasks on other
machines (the Ray executor) read their data and write their models where the server finds them.

Keys are relative POSIX paths: ``datasets/<group>/<TYPE>/<import>/part-00000-0000.parquet``,
``models/<solution>/<version>/...``. Parquet is read straight from the store; models, which
serving memory-maps, are copied into a local cache directory once (they never change). On the
local store nothing is ever copied: a key is a path under the root.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

# Written last into a cached copy of a directory: a copy without it is incomplete.
_COMPLETE = ".complete"


@dataclass
class BlobStore:
    """A root URL (or local directory) and where remote blobs are cached on this machine.

    Small and picklable: tasks on other machines receive it and open the store themselves.
    """

    url: str
    s3_endpoint_url: str | None = None
    cache_dir: Path | None = None  # default: a temporary directory of this process
    _filesystem: pafs.FileSystem | None = field(default=None, repr=False, compare=False)

    @classmethod
    def for_settings(cls, settings: Any, cache_dir: Path | None = None) -> BlobStore:
        """The configured store; the server caches under its data directory, tasks pass their
        own `cache_dir` (a worker on another machine has no data directory)."""
        if settings.blob_store:
            return cls(settings.blob_store, settings.s3_endpoint_url, cache_dir)
        return cls(str(Path(settings.data_dir).resolve()), None, cache_dir)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_filesystem": None}  # opened again where it is unpickled

    # -- where a key lives -------------------------------------------------------------------

    @property
    def is_local(self) -> bool:
        return "://" not in self.url or self.url.startswith("file://")

    @property
    def filesystem(self) -> pafs.FileSystem:
        if self._filesystem is None:
            self._filesystem = _open_filesystem(self.url, self.s3_endpoint_url)
        return self._filesystem

    @property
    def _root(self) -> str:
        if self.is_local:
            return str(Path(self.url.removeprefix("file://")).resolve())
        return self.url.split("://", 1)[1].rstrip("/")

    def path(self, key: str) -> str:
        """`key`'s path in the filesystem (a local path on the local store)."""
        return f"{self._root.rstrip('/')}/{key}"

    def local_path(self, key: str) -> Path:
        """`key` as a local path: itself on the local store, else a cached copy of the file or
        directory (copied once; keys of models and inputs are never rewritten)."""
        if self.is_local:
            return Path(self.path(key))
        cached = self._cache_root() / key
        if (cached / _COMPLETE).exists() or cached.is_file():
            return cached
        info = self.filesystem.get_file_info(self.path(key))
        if info.type == pafs.FileType.NotFound:
            raise FileNotFoundError(f"{self.url}/{key}")
        staging = cached.with_name(f".{cached.name}.{uuid.uuid4().hex[:8]}")
        staging.parent.mkdir(parents=True, exist_ok=True)
        if info.type == pafs.FileType.File:
            self._download(info.path, staging)
        else:
            base = info.path.strip("/")
            for entry in self.filesystem.get_file_info(
                pafs.FileSelector(info.path, recursive=True)
            ):
                if entry.type == pafs.FileType.File:
                    relative = entry.path.strip("/")[len(base) :].lstrip("/")
                    self._download(entry.path, staging / relative)
            (staging / _COMPLETE).touch()
        try:
            os.replace(staging, cached)
        except OSError:  # another process cached it first
            _remove_local(staging)
        return cached

    def _download(self, path: str, target: Path) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        with self.filesystem.open_input_stream(path) as source, open(target, "wb") as file:
            shutil.copyfileobj(source, file, 1 << 20)

    def _cache_root(self) -> Path:
        if self.cache_dir is None:
            self.cache_dir = Path(tempfile.mkdtemp(prefix="openpersonalize-cache-"))
        return self.cache_dir

    # -- reading -------------------------------------------------------------------------

    def exists(self, key: str) -> bool:
        return self.filesystem.get_file_info(self.path(key)).type != pafs.FileType.NotFound

    def read_bytes(self, key: str) -> bytes | None:
        """A small file's contents, or None if there is none."""
        try:
            with self.filesystem.open_input_stream(self.path(key)) as stream:
                return stream.read()
        except FileNotFoundError:
            return None

    def read_parquet(self, key: str, columns: list[str] | None = None) -> pa.Table:
        return pq.read_table(
            self.path(key), columns=columns, filesystem=self.filesystem, memory_map=self.is_local
        )

    def parquet_schema(self, key: str) -> pa.Schema:
        return pq.read_schema(self.path(key), filesystem=self.filesystem)

    # -- writing -------------------------------------------------------------------------

    def put_dir(self, source: Path, key: str) -> None:
        """Move the local directory `source` to `key` (replacing what was there)."""
        self.delete(key)
        if self.is_local:
            target = Path(self.path(key))
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(source), target)  # a rename where both lie on one filesystem
            return
        pafs.copy_files(str(source), self.path(key), pafs.LocalFileSystem(), self.filesystem)
        _remove_local(source)

    def put_file(self, source: Path, key: str) -> None:
        """Copy the local file `source` to `key` (on the local store, where it already is
        when `source` is `local_path(key)`)."""
        if self.is_local and Path(self.path(key)) == source.resolve():
            return
        if self.is_local:
            Path(self.path(key)).parent.mkdir(parents=True, exist_ok=True)
        pafs.copy_files(str(source), self.path(key), pafs.LocalFileSystem(), self.filesystem)

    @contextmanager
    def writing(self, key: str) -> Iterator[Path]:
        """A local directory to write `key`'s files into; they are at `key` once the block ends,
        even when it raises (a failure report is a file too). The local store writes in place."""
        if self.is_local:
            target = Path(self.path(key))
            _remove_local(target)
            target.mkdir(parents=True)
            yield target
            return
        workspace = Path(tempfile.mkdtemp(prefix="openpersonalize-output-"))
        try:
            yield workspace
        finally:
            self.put_dir(workspace, key)

    def delete(self, key: str) -> None:
        """Remove the file or directory at `key` (nothing if there is none), and its cached copy."""
        if self.is_local:
            _remove_local(Path(self.path(key)))
            return
        info = self.filesystem.get_file_info(self.path(key))
        if info.type == pafs.FileType.Directory:
            self.filesystem.delete_dir(self.path(key))
        elif info.type == pafs.FileType.File:
            self.filesystem.delete_file(self.path(key))
        if self.cache_dir is not None:
            _remove_local(self.cache_dir / key)


def _remove_local(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists():
        path.unlink()


def _open_filesystem(url: str, s3_endpoint_url: str | None) -> pafs.FileSystem:
    if "://" not in url or url.startswith("file://"):
        return pafs.LocalFileSystem()
    scheme = url.split("://", 1)[0]
    if scheme == "s3":
        bucket = url.split("://", 1)[1].split("/", 1)[0]
        options: dict[str, Any] = {}
        if s3_endpoint_url:
            options["endpoint_override"] = s3_endpoint_url
            options["region"] = os.environ.get("AWS_REGION") or os.environ.get(
                "AWS_DEFAULT_REGION", "us-east-1"
            )
        filesystem = pafs.S3FileSystem(**options)
        if filesystem.get_file_info(bucket).type == pafs.FileType.NotFound:
            raise ValueError(f"blob store {url}: there is no bucket {bucket!r}")
        return filesystem
    import fsspec  # any other scheme: an fsspec implementation, if one is installed

    return pafs.PyFileSystem(pafs.FSSpecHandler(fsspec.filesystem(scheme)))
