"""The same server on PostgreSQL (`--database-url`): resources persist across a restart.

Starts a throw-away PostgreSQL cluster on a free loopback port when the machine has
PostgreSQL's server binaries (`make test` installs them where it can); skipped with a reason
otherwise, and failed instead under CI=true.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import active_dataset, active_group, require_service, run_import, schema

from openpersonalize.testing.server import ServerProcess, free_port


def _find_initdb() -> str | None:
    # OPENPERSONALIZE_TEST_INITDB names the initdb to use; a path that is not there simulates
    # a machine without PostgreSQL (to check that CI=true fails rather than skips).
    override = os.environ.get("OPENPERSONALIZE_TEST_INITDB")
    if override is not None:
        return override if Path(override).is_file() else None
    return shutil.which("initdb") or next(
        (str(path) for path in sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))), None
    )


INITDB = _find_initdb()


def _as_postgres(command: list[str]) -> list[str]:
    # PostgreSQL refuses to run as root; drop to the postgres user when we are root.
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *command]
    return command


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    require_service(INITDB is not None, "PostgreSQL server binaries (initdb) are not installed")
    require_service(importlib.util.find_spec("psycopg") is not None, "psycopg is not installed")
    require_service(
        os.geteuid() != 0 or shutil.which("runuser") is not None,
        "running as root without runuser to drop privileges for PostgreSQL",
    )
    bin_dir = Path(INITDB).resolve().parent
    # Not under pytest's tmp dir: that is private to root, and PostgreSQL runs as postgres.
    root = Path(tempfile.mkdtemp(prefix="openpersonalize-pg-"))
    data = root / "data"
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
    port = free_port()
    subprocess.run(
        _as_postgres([str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"]),
        check=True,
        capture_output=True,
    )
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1"
    subprocess.run(
        _as_postgres(
            [
                str(bin_dir / "pg_ctl"),
                "-D",
                str(data),
                "-o",
                options,
                "-l",
                str(root / "log"),
                "-w",
                "start",
            ]
        ),
        check=True,
        capture_output=True,
    )
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            _as_postgres([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]),
            capture_output=True,
        )
        shutil.rmtree(root, ignore_errors=True)


def test_resources_persist_on_postgres(postgres_url: str, tmp_path: Path) -> None:
    s3_root = tmp_path / "s3"
    (s3_root / "b").mkdir(parents=True)
    (s3_root / "b" / "x.csv").write_text(
        "USER_ID,ITEM_ID,TIMESTAMP,EVENT_TYPE,EVENT_VALUE\n"
        + "".join(f"u{i % 40},i{i % 30},{1_700_000_000 + i},click,1.0\n" for i in range(1200))
    )
    settings = {"database_url": postgres_url, "s3_local_root": str(s3_root), "workers": "1"}
    server = ServerProcess(tmp_path / "server", settings=settings).start()
    try:
        personalize = server.client()
        group = active_group(personalize)
        dataset = active_dataset(personalize, group, schema(personalize))
        job = run_import(personalize, dataset, "s3://b/x.csv")
        assert job["status"] == "ACTIVE", job
        server.kill()
        server.start()
        personalize = server.client()
        assert personalize.describe_dataset(datasetArn=dataset)["dataset"]["status"] == "ACTIVE"
        jobs = personalize.list_dataset_import_jobs(datasetArn=dataset)["datasetImportJobs"]
        assert [j["status"] for j in jobs] == ["ACTIVE"]
        assert (server.data_dir / "metadata.db").exists() is False
    finally:
        server.stop()
