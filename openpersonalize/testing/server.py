"""A real server in a subprocess on a free loopback port, with boto3 clients pointed at it.

Shipped so that users' own tests (and ours) exercise the service exactly as
deployed: no in-process shortcuts.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class ServerProcess:
    """`openpersonalize serve` as a child process; stopped (by its pid) with `stop()`."""

    def __init__(
        self,
        data_dir: Path,
        *,
        settings: dict[str, str] | None = None,
        access_key_id: str = "testing",
        secret_access_key: str = "testing",
        environment: dict[str, str] | None = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        # One HTTP process unless asked for more: a test server's requests come one at a
        # time, and tests that look for the job workers among its children find only them.
        self.settings = {"http_processes": "1", **(settings or {})}
        self.environment = dict(environment or {})  # extra variables, e.g. AWS credentials for S3
        self.access_key_id = access_key_id
        self.secret_access_key = secret_access_key
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = self.data_dir / "server.log"

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> ServerProcess:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        environment = {k: v for k, v in os.environ.items() if not k.startswith("OPENPERSONALIZE_")}
        environment.update(self.environment)
        environment.update(
            {f"OPENPERSONALIZE_{k.upper()}": str(v) for k, v in self.settings.items()}
        )
        command = [
            sys.executable,
            "-m",
            "openpersonalize.cli",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--data-dir",
            str(self.data_dir),
        ]
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child owns it for its lifetime
        self.process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env=environment
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}:\n{self.log()}")
            try:
                with urllib.request.urlopen(self.endpoint_url + "/health", timeout=1) as reply:
                    if reply.status == 200:
                        return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server did not become healthy in {timeout}s:\n{self.log()}")

    def stop(self, timeout: float = 20.0) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def kill(self, timeout: float = 10.0) -> None:
        """Stop abruptly (SIGKILL), as a crash would; returns once the HTTP processes that
        shared its port noticed and let the port go (so a restart can take it)."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", self.port)) != 0:
                    return
            time.sleep(0.05)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def client(self, service: str = "personalize", **overrides: Any) -> Any:
        options: dict[str, Any] = {
            "endpoint_url": self.endpoint_url,
            "region_name": "us-east-1",
            "aws_access_key_id": self.access_key_id,
            "aws_secret_access_key": self.secret_access_key,
            "config": Config(retries={"max_attempts": 0}, connect_timeout=5, read_timeout=120),
        }
        options.update(overrides)
        return boto3.client(service, **options)

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def wait_for_status(
    describe: Any,
    envelope: str,
    arn_key: str,
    arn: str,
    statuses: tuple[str, ...] = ("ACTIVE", "CREATE FAILED"),
    timeout: float = 120.0,
) -> dict[str, Any]:
    """Poll a Describe call until the resource reaches one of `statuses`; return its description."""
    deadline = time.monotonic() + timeout
    while True:
        description = describe(**{arn_key: arn})[envelope]
        if description.get("status") in statuses or time.monotonic() > deadline:
            return description
        time.sleep(0.05)
