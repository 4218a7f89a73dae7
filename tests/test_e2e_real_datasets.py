"""The real public data sets import through the API (skipped where ../shared/datasets is absent)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from conftest import SHARED_DATASETS
from helpers import active_dataset, active_group, run_import, schema, unique

pytestmark = pytest.mark.skipif(
    not SHARED_DATASETS.is_dir(), reason=f"real data sets not present at {SHARED_DATASETS}"
)


def _record(name: str, fields: list[dict]) -> str:
    return json.dumps(
        {
            "type": "record",
            "name": name,
            "version": "1.0",
            "namespace": "com.amazonaws.personalize.schema",
            "fields": fields,
        }
    )


def _rows_in(server, dataset_arn: str) -> int:  # type: ignore[no-untyped-def]
    group, kind = dataset_arn.split(":dataset/")[1].split("/")
    directory = server.data_dir / "datasets" / group / kind
    return sum(pq.ParquetFile(path).metadata.num_rows for path in directory.rglob("*.parquet"))


def _with_header(source: Path, target: Path, header: str) -> None:
    """Copy a CSV with its header renamed to the schema's field names (outside the project)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with source.open() as reader, target.open("w") as writer:
        reader.readline()
        writer.write(header + "\n")
        shutil.copyfileobj(reader, writer)


def test_movielens_latest_small(server, personalize, s3_root: Path) -> None:  # type: ignore[no-untyped-def]
    folder = SHARED_DATASETS / "ml-latest-small"
    _with_header(
        folder / "ratings.csv",
        s3_root / "movielens" / "ratings.csv",
        "USER_ID,ITEM_ID,EVENT_VALUE,TIMESTAMP",
    )
    _with_header(
        folder / "movies.csv", s3_root / "movielens" / "movies.csv", "ITEM_ID,TITLE,GENRES"
    )
    group = active_group(personalize, unique("movielens"))
    interactions = active_dataset(
        personalize,
        group,
        schema(
            personalize,
            _record(
                "Interactions",
                [
                    {"name": "USER_ID", "type": "string"},
                    {"name": "ITEM_ID", "type": "string"},
                    {"name": "EVENT_VALUE", "type": "float"},
                    {"name": "TIMESTAMP", "type": "long"},
                ],
            ),
        ),
    )
    items = active_dataset(
        personalize,
        group,
        schema(
            personalize,
            _record(
                "Items",
                [
                    {"name": "ITEM_ID", "type": "string"},
                    {"name": "TITLE", "type": "string", "textual": True},
                    {"name": "GENRES", "type": "string", "categorical": True},
                ],
            ),
        ),
        "Items",
    )
    job = run_import(personalize, interactions, "s3://movielens/ratings.csv")
    assert job["status"] == "ACTIVE", job
    assert _rows_in(server, interactions) == 100_836
    job = run_import(personalize, items, "s3://movielens/movies.csv")
    assert job["status"] == "ACTIVE", job
    assert _rows_in(server, items) == 9_742


def test_retail_demo_store(server, personalize, s3_root: Path) -> None:  # type: ignore[no-untyped-def]
    folder = SHARED_DATASETS / "retail-demo-store"
    target = s3_root / "retail"
    target.mkdir(parents=True, exist_ok=True)
    for name in ("interactions.csv.gz", "items.csv", "users.csv"):
        shutil.copy(folder / name, target / name)
    group = active_group(personalize, unique("retail"))
    interactions = active_dataset(
        personalize,
        group,
        schema(
            personalize,
            _record(
                "Interactions",
                [
                    {"name": "ITEM_ID", "type": "string"},
                    {"name": "USER_ID", "type": "string"},
                    {"name": "EVENT_TYPE", "type": "string"},
                    {"name": "TIMESTAMP", "type": "long"},
                    {"name": "DISCOUNT", "type": "string", "categorical": True},
                ],
            ),
        ),
    )
    items = active_dataset(
        personalize,
        group,
        schema(
            personalize,
            _record(
                "Items",
                [
                    {"name": "ITEM_ID", "type": "string"},
                    {"name": "PRICE", "type": "float"},
                    {"name": "CATEGORY_L1", "type": "string", "categorical": True},
                    {"name": "CATEGORY_L2", "type": "string", "categorical": True},
                    {"name": "PRODUCT_NAME", "type": "string"},
                    {"name": "PRODUCT_DESCRIPTION", "type": "string", "textual": True},
                    {"name": "GENDER", "type": "string", "categorical": True},
                    {"name": "PROMOTED", "type": "string", "categorical": True},
                ],
            ),
        ),
        "Items",
    )
    users = active_dataset(
        personalize,
        group,
        schema(
            personalize,
            _record(
                "Users",
                [
                    {"name": "USER_ID", "type": "string"},
                    {"name": "AGE", "type": "int"},
                    {"name": "GENDER", "type": "string", "categorical": True},
                ],
            ),
        ),
        "Users",
    )
    job = run_import(personalize, interactions, "s3://retail/interactions.csv.gz")
    assert job["status"] == "ACTIVE", job
    assert _rows_in(server, interactions) == 675_004
    assert run_import(personalize, items, "s3://retail/items.csv")["status"] == "ACTIVE"
    assert _rows_in(server, items) == 2_465
    assert run_import(personalize, users, "s3://retail/users.csv")["status"] == "ACTIVE"
    assert _rows_in(server, users) == 6_000
