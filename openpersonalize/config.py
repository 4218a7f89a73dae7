"""Settings: one dataclass, filled from `serve` flags or OPENPERSONALIZE_* environment variables."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, fields
from pathlib import Path

ENV_PREFIX = "OPENPERSONALIZE_"
EXECUTORS = ("local", "ray")


@dataclass
class Settings:
    host: str = "127.0.0.1"
    port: int = 8080
    data_dir: Path = Path("data")
    database_url: str | None = None  # default: SQLite (WAL) inside data_dir
    region: str = "us-east-1"
    account_id: str = "000000000000"
    access_key_id: str | None = None
    secret_access_key: str | None = None
    s3_endpoint_url: str | None = None
    s3_local_root: Path | None = None
    # Where datasets and models live: default the data directory; or s3://bucket/prefix (on
    # s3_endpoint_url), or any URL an installed fsspec implementation reads. See store/blobs.py.
    blob_store: str | None = None
    workers: int = 2  # job worker processes (imports, training, batch jobs)
    # HTTP server processes sharing the port (0: one per core); see wire/processes.py.
    http_processes: int = 0
    # Where training jobs and HPO trials run: "local" processes, or "ray" tasks on the Ray
    # cluster at ray_address (nodes on other machines need a shared blob_store and database).
    executor: str = "local"
    ray_address: str | None = None
    job_lease_seconds: float = 30.0  # a job whose worker stops renewing this long is retried
    # Shifts the service's clock (seconds); lets tests of schedules move time across a restart.
    clock_offset_seconds: float = 0.0
    # Starts the service's clock at this epoch second, from where it runs at wall-clock speed:
    # tests of time windows choose the time of day. Folded into clock_offset_seconds once, so
    # every process of the server (job workers get these settings) keeps the same time.
    clock_start: float | None = None
    log_level: str = "info"

    def __post_init__(self) -> None:
        if self.clock_start is not None:
            self.clock_offset_seconds += self.clock_start - time.time()
            self.clock_start = None
        if self.executor not in EXECUTORS:
            raise ValueError(
                f"executor must be one of {', '.join(EXECUTORS)}, not {self.executor!r}"
            )

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'metadata.db').resolve()}"

    @property
    def http_process_count(self) -> int:
        return self.http_processes if self.http_processes > 0 else (os.cpu_count() or 1)

    @property
    def credentials(self) -> dict[str, str]:
        if self.access_key_id and self.secret_access_key:
            return {self.access_key_id: self.secret_access_key}
        return {}

    @property
    def auth_required(self) -> bool:
        return bool(self.credentials)

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides: object) -> Settings:
        """Defaults, then OPENPERSONALIZE_* variables, then flags (overrides that are not None)."""
        environ = dict(os.environ if environ is None else environ)
        values: dict[str, object] = {}
        for setting in fields(cls):
            raw = environ.get(ENV_PREFIX + setting.name.upper())
            if raw not in (None, ""):
                values[setting.name] = _convert(setting.name, raw)
        for name, value in overrides.items():
            if value is not None:
                values[name] = _convert(name, value)
        return cls(**values)  # type: ignore[arg-type]


def _convert(name: str, value: object) -> object:
    if name in ("port", "workers", "http_processes"):
        return int(value)  # type: ignore[arg-type]
    if name in ("job_lease_seconds", "clock_offset_seconds", "clock_start"):
        return float(value)  # type: ignore[arg-type]
    if name in ("data_dir", "s3_local_root"):
        return Path(str(value))
    return value
