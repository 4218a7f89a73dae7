"""Shared fixtures: a real server subprocess and boto3 clients for it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from openpersonalize.testing.server import ServerProcess

SHARED_DATASETS = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"


@pytest.fixture(scope="session")
def s3_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The directory `--s3-local-root` serves: s3://bucket/key is s3_root/bucket/key."""
    return tmp_path_factory.mktemp("s3")


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory, s3_root: Path) -> Iterator[ServerProcess]:
    with ServerProcess(
        tmp_path_factory.mktemp("server"), settings={"s3_local_root": str(s3_root)}
    ) as running:
        yield running


@pytest.fixture(scope="session")
def personalize(server: ServerProcess):  # type: ignore[no-untyped-def]
    return server.client("personalize")
