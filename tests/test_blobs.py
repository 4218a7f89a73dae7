"""The blob store's contract on the local store and on an fsspec one (in-memory, one process);
tests/test_e2e_blob_store.py runs the server on a real S3-compatible endpoint."""

from __future__ import annotations

import pickle
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from openpersonalize.store.blobs import BlobStore


@pytest.fixture(params=["local", "fsspec"])
def blobs(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    if request.param == "local":
        return BlobStore(str(tmp_path / "root"))
    return BlobStore(f"memory://store-{tmp_path.name}", cache_dir=tmp_path / "cache")


def model_dir(tmp_path: Path) -> Path:
    source = tmp_path / "written"
    (source / "model").mkdir(parents=True)
    (source / "model" / "weights.bin").write_bytes(b"\x00\x01" * 100)
    (source / "result.json").write_text('{"ok": true}')
    pq.write_table(pa.table({"ITEM_ID": ["a", "b"]}), source / "items.parquet")
    return source


def test_put_read_cache_and_delete(blobs: BlobStore, tmp_path: Path) -> None:
    blobs.put_dir(model_dir(tmp_path), "models/s/v1")
    assert not (tmp_path / "written").exists()  # moved, not copied
    assert blobs.read_bytes("models/s/v1/result.json") == b'{"ok": true}'
    assert blobs.read_bytes("models/s/v1/missing.json") is None
    assert blobs.read_parquet("models/s/v1/items.parquet").column(0).to_pylist() == ["a", "b"]
    assert blobs.parquet_schema("models/s/v1/items.parquet").names == ["ITEM_ID"]
    local = blobs.local_path("models/s/v1")
    assert (local / "model" / "weights.bin").read_bytes() == b"\x00\x01" * 100
    assert blobs.local_path("models/s/v1") == local  # copied once
    assert blobs.local_path("models/s/v1/result.json").read_text() == '{"ok": true}'
    blobs.delete("models/s")
    assert not blobs.exists("models/s/v1/result.json")
    assert not local.exists()  # the cached copy goes with it
    blobs.delete("models/never-written")  # deleting nothing is fine
    if not blobs.is_local:  # (the local store hands out paths without looking)
        with pytest.raises(FileNotFoundError):
            blobs.local_path("models/s/v1")


def test_writing_lands_even_when_the_block_fails(blobs: BlobStore) -> None:
    with pytest.raises(RuntimeError), blobs.writing("models/s/v2") as output:
        (output / "failure.txt").write_text("why")
        raise RuntimeError("training failed")
    assert blobs.read_bytes("models/s/v2/failure.txt") == b"why"


def test_put_file_and_pickling(blobs: BlobStore, tmp_path: Path) -> None:
    source = tmp_path / "validation.pkl"
    source.write_bytes(b"split")
    blobs.put_file(source, "models/s/v3/hpo/validation.pkl")
    copy = pickle.loads(pickle.dumps(blobs))  # what a task on another machine receives
    assert copy.read_bytes("models/s/v3/hpo/validation.pkl") == b"split"


def test_the_default_store_is_the_data_directory(tmp_path: Path) -> None:
    from openpersonalize.config import Settings

    blobs = BlobStore.for_settings(Settings(data_dir=tmp_path))
    assert blobs.is_local
    assert blobs.local_path("datasets/g/INTERACTIONS") == tmp_path / "datasets/g/INTERACTIONS"
