"""Seeded synthetic Interactions data with a long tail, for tests and benchmarks.

Item popularity and user activity follow power laws: a row's user (item) rank is
``floor(n * u**k)`` for a uniform ``u``, whose density falls off as
``rank**(1/k - 1)`` — a few heavy users and hit items, a long tail of the rest.
Ranks are mapped to IDs through a seeded permutation, so an ID's number says
nothing about its popularity. Everything is numpy-vectorized and written in
chunks with ``pyarrow.csv``, so 20M rows take seconds, not minutes.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

__all__ = ["INTERACTIONS_SCHEMA_JSON", "write_interactions_csv"]

#: Avro schema text matching the columns write_interactions_csv writes.
INTERACTIONS_SCHEMA_JSON: str = json.dumps(
    {
        "type": "record",
        "name": "Interactions",
        "namespace": "com.amazonaws.personalize.schema",
        "fields": [
            {"name": "USER_ID", "type": "string"},
            {"name": "ITEM_ID", "type": "string"},
            {"name": "TIMESTAMP", "type": "long"},
            {"name": "EVENT_TYPE", "type": "string"},
            {"name": "EVENT_VALUE", "type": ["null", "float"]},
        ],
        "version": "1.0",
    }
)

_CHUNK_ROWS = 1 << 20  # fixed, so the output depends only on the arguments
_USER_POWER = 2.0  # user activity density ~ rank**-0.5
_ITEM_POWER = 3.0  # item popularity density ~ rank**-0.67
_SECONDS_PER_ROW = 2.5  # mean spacing of timestamps
_JITTER_SECONDS = 60  # timestamps increase only roughly, like real logs

_CSV_SCHEMA = pa.schema(
    [
        ("USER_ID", pa.string()),
        ("ITEM_ID", pa.string()),
        ("TIMESTAMP", pa.int64()),
        ("EVENT_TYPE", pa.string()),
        ("EVENT_VALUE", pa.float64()),
    ]
)


def write_interactions_csv(
    path: Path,
    n_rows: int,
    *,
    n_users: int | None = None,
    n_items: int | None = None,
    event_types: tuple[str, ...] = ("click", "purchase"),
    seed: int = 0,
    start_timestamp: int = 1_600_000_000,
) -> Path:
    """Write ``n_rows`` interactions (plus a header) to ``path``; same seed, same bytes.

    Defaults: one user per 20 rows and one item per 50 rows (at least 10 each).
    Event types are drawn with weights 1, 1/4, 1/16, ... so the first is the most common.
    EVENT_VALUE is a float in [0, 5] with one decimal.
    """
    if n_rows < 0:
        raise ValueError("n_rows must be >= 0")
    if not event_types:
        raise ValueError("event_types must not be empty")
    if any(set(t) & set(',"\r\n') for t in event_types):
        raise ValueError("event types must not contain commas, quotes or line breaks")
    n_users = n_users if n_users is not None else max(10, n_rows // 20)
    n_items = n_items if n_items is not None else max(10, n_rows // 50)
    if n_users < 1 or n_items < 1:
        raise ValueError("n_users and n_items must be >= 1")

    rng = np.random.default_rng(seed)
    user_ids = _id_vocabulary("u", rng.permutation(n_users))
    item_ids = _id_vocabulary("i", rng.permutation(n_items))
    type_names = pa.array(list(event_types), pa.string())
    weights = 0.25 ** np.arange(len(event_types))
    weights /= weights.sum()

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # No quoting: the IDs and event types hold no delimiters, and unquoted files are
    # what most exports look like.
    options = pacsv.WriteOptions(include_header=False, quoting_style="none")
    with path.open("wb") as out, pacsv.CSVWriter(out, _CSV_SCHEMA, write_options=options) as writer:
        out.write((",".join(_CSV_SCHEMA.names) + "\n").encode())  # Arrow would quote it
        for start in range(0, n_rows, _CHUNK_ROWS):
            m = min(_CHUNK_ROWS, n_rows - start)
            users = _power_law_ranks(rng, n_users, m, _USER_POWER)
            items = _power_law_ranks(rng, n_items, m, _ITEM_POWER)
            row = np.arange(start, start + m, dtype=np.int64)
            timestamps = (
                start_timestamp
                + (row * _SECONDS_PER_ROW).astype(np.int64)
                + rng.integers(0, _JITTER_SECONDS, m)
            )
            types = rng.choice(len(event_types), size=m, p=weights)
            values = np.round(rng.random(m) * 5.0, 1)
            batch = pa.record_batch(
                [
                    user_ids.take(pa.array(users)),
                    item_ids.take(pa.array(items)),
                    pa.array(timestamps),
                    type_names.take(pa.array(types)),
                    pa.array(values),
                ],
                schema=_CSV_SCHEMA,
            )
            writer.write_batch(batch)
    return path


def _power_law_ranks(rng: np.random.Generator, n: int, size: int, power: float) -> np.ndarray:
    """``size`` ranks in [0, n), rank 0 the most frequent."""
    ranks = (rng.random(size) ** power * n).astype(np.int64)
    return np.minimum(ranks, n - 1)  # guards the float edge u**k * n == n


def _id_vocabulary(prefix: str, numbers: np.ndarray) -> pa.Array:
    """String IDs like "u123" for each number, built in Arrow rather than Python."""
    as_text = pc.cast(pa.array(numbers, pa.int64()), pa.string())
    return pc.binary_join_element_wise(prefix, as_text, "")
