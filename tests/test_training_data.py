"""Training data: filters from the solution's config, vocabularies, metadata, minimums."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import read_files

from openpersonalize.data.importer import CsvSource, import_csv
from openpersonalize.data.schema import parse_schema
from openpersonalize.data.training_data import TrainingDataError, load_training_data
from openpersonalize.testing.synthetic import INTERACTIONS_SCHEMA_JSON, write_interactions_csv

# No minimums, for hand-made tables of a few rows.
TINY = {"min_interactions": 0, "min_users_with_two": 0}

ITEMS_SCHEMA = parse_schema(
    """{"type": "record", "name": "Items", "fields": [
        {"name": "ITEM_ID", "type": "string"},
        {"name": "GENRES", "type": ["null", "string"], "categorical": true},
        {"name": "DESCRIPTION", "type": ["null", "string"], "textual": true},
        {"name": "PRICE", "type": ["null", "double"]},
        {"name": "CREATION_TIMESTAMP", "type": "long"},
        {"name": "NOTE", "type": ["null", "string"]}
    ]}"""
)
USERS_SCHEMA = parse_schema(
    """{"type": "record", "name": "Users", "fields": [
        {"name": "USER_ID", "type": "string"},
        {"name": "AGE", "type": ["null", "int"]},
        {"name": "MEMBER", "type": "boolean"},
        {"name": "TIER", "type": ["null", "string"], "categorical": true}
    ]}"""
)


def events(rows: list[tuple[str, str, int, str, float | None]], *, chunks: int = 1) -> pa.Table:
    """An Interactions table as read_dataset returns it, optionally in several chunks."""
    table = pa.table(
        {
            "USER_ID": pa.array([r[0] for r in rows], pa.string()),
            "ITEM_ID": pa.array([r[1] for r in rows], pa.string()),
            "TIMESTAMP": pa.array([r[2] for r in rows], pa.int64()),
            "EVENT_TYPE": pa.array([r[3] for r in rows], pa.string()),
            "EVENT_VALUE": pa.array([r[4] for r in rows], pa.float32()),
        }
    )
    if chunks > 1:
        size = math.ceil(len(rows) / chunks)
        table = pa.concat_tables([table.slice(i, size) for i in range(0, len(rows), size)])
    return table


SAMPLE = [
    ("u2", "b", 100, "click", 1.0),
    ("u1", "a", 101, "purchase", 5.0),
    ("u1", "c", 102, "click", None),
    ("u3", "a", 103, "Click", 2.5),
    ("u2", "a", 104, "purchase", 3.0),
    ("u1", "b", 105, "click", 4.0),
]


def decoded(data) -> list[tuple[str, str, int]]:  # type: ignore[no-untyped-def]
    """(user id, item id, timestamp) per event, for comparing with the input rows."""
    return [
        (data.user_ids[u], data.item_ids[i], int(t))
        for u, i, t in zip(data.users, data.items, data.timestamps, strict=True)
    ]


def rows_of(rows: list[tuple[str, str, int, str, float | None]]) -> list[tuple[str, str, int]]:
    return [(r[0], r[1], r[2]) for r in rows]


# ---------------------------------------------------------------------- encoding


def test_encodes_events_with_sorted_vocabularies() -> None:
    data = load_training_data(events(SAMPLE), **TINY)
    assert data.user_ids.tolist() == ["u1", "u2", "u3"]
    assert data.item_ids.tolist() == ["a", "b", "c"]
    assert data.user_ids.dtype == object and data.item_ids.dtype == object
    assert data.users.dtype == np.int32 and data.items.dtype == np.int32
    assert data.timestamps.dtype == np.int64 and data.weights.dtype == np.float32
    assert decoded(data) == rows_of(SAMPLE)  # event order is kept
    assert data.weights.tolist() == [1.0] * 6
    assert data.event_types is not None
    assert data.event_types.tolist() == [r[3] for r in SAMPLE]
    assert data.event_values is not None and data.event_values.dtype == np.float32
    assert np.isnan(data.event_values[2])
    assert data.event_values[[0, 1, 3]].tolist() == [1.0, 5.0, 2.5]
    assert data.item_metadata is None and data.user_metadata is None
    assert data.matrix().shape == (3, 3)


def test_chunked_and_dictionary_input_give_the_same_data(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    rows = [
        (f"u{rng.integers(40)}", f"i{rng.integers(90)}", int(t), "click", float(t % 7))
        for t in range(3000)
    ]
    plain = load_training_data(events(rows), event_value_threshold=2, **TINY)
    chunked = load_training_data(events(rows, chunks=7), event_value_threshold=2, **TINY)
    path = tmp_path / "events.parquet"
    pq.write_table(events(rows), path, row_group_size=500)
    as_dictionary = pq.read_table(path, read_dictionary=["USER_ID", "ITEM_ID"])
    from_dictionary = load_training_data(as_dictionary, event_value_threshold=2, **TINY)
    for other in (chunked, from_dictionary):
        assert other.user_ids.tolist() == plain.user_ids.tolist()
        assert other.item_ids.tolist() == plain.item_ids.tolist()
        np.testing.assert_array_equal(other.users, plain.users)
        np.testing.assert_array_equal(other.items, plain.items)
        np.testing.assert_array_equal(other.timestamps, plain.timestamps)


def test_without_optional_columns() -> None:
    table = events(SAMPLE).select(["USER_ID", "ITEM_ID", "TIMESTAMP"])
    data = load_training_data(table, **TINY)
    assert data.event_types is None and data.event_values is None
    assert data.n_events == 6


# ------------------------------------------------------------------------ filters


def test_event_type_keeps_only_that_type_ignoring_case() -> None:
    data = load_training_data(events(SAMPLE), event_type="click", **TINY)
    clicks = [r for r in SAMPLE if r[3].lower() == "click"]
    assert decoded(data) == rows_of(clicks)
    assert set(data.event_types.tolist()) == {"click", "Click"}  # type: ignore[union-attr]
    # u3's only event is "Click": the same type as "click", as the service matches them.
    assert sorted(data.user_ids.tolist()) == ["u1", "u2", "u3"]
    assert sorted(data.item_ids.tolist()) == ["a", "b", "c"]
    capital = load_training_data(events(SAMPLE), event_type="CLICK", **TINY)
    assert decoded(capital) == decoded(data)


def test_missing_event_type_is_refused() -> None:
    with pytest.raises(TrainingDataError, match='event type "view".*"Click", "click"'):
        load_training_data(events(SAMPLE), event_type="view", **TINY)
    with pytest.raises(TrainingDataError, match='eventsConfig names event type "view"'):
        load_training_data(
            events(SAMPLE), events_config=[{"eventType": "click"}, {"eventType": "view"}], **TINY
        )
    no_types = events(SAMPLE).drop_columns(["EVENT_TYPE"])
    with pytest.raises(TrainingDataError, match="no EVENT_TYPE column"):
        load_training_data(no_types, event_type="click", **TINY)


def test_event_value_threshold() -> None:
    data = load_training_data(events(SAMPLE), event_value_threshold=3.0, **TINY)
    # >= keeps 3.0; the event without a value is dropped once a threshold applies.
    assert decoded(data) == rows_of([r for r in SAMPLE if r[4] is not None and r[4] >= 3.0])
    # solutionConfig carries the threshold as a string.
    as_text = load_training_data(events(SAMPLE), event_value_threshold="3", **TINY)
    assert decoded(as_text) == decoded(data)
    with pytest.raises(TrainingDataError, match="not a number"):
        load_training_data(events(SAMPLE), event_value_threshold="high", **TINY)


def test_threshold_needs_event_values() -> None:
    no_values = events(SAMPLE).drop_columns(["EVENT_VALUE"])
    with pytest.raises(TrainingDataError, match="no EVENT_VALUE column"):
        load_training_data(no_values, event_value_threshold=1, **TINY)
    with pytest.raises(TrainingDataError, match="no EVENT_VALUE column"):
        load_training_data(
            no_values, events_config=[{"eventType": "click", "eventValueThreshold": 1}], **TINY
        )
    all_null = [(u, i, t, e, None) for u, i, t, e, _ in SAMPLE]
    with pytest.raises(TrainingDataError, match="no interaction has an EVENT_VALUE"):
        load_training_data(events(all_null), event_value_threshold=1, **TINY)


def test_events_config_types_thresholds_and_weights() -> None:
    config = [
        {"eventType": "click", "weight": 0.25},
        {"eventType": "purchase", "eventValueThreshold": 4.0, "weight": 1.0},
    ]
    data = load_training_data(events(SAMPLE), events_config=config, **TINY)
    # All clicks (a threshold for purchases says nothing about clicks, even valueless ones),
    # purchases only from 4.0 up; "Click" is "click" in another case.
    expected = [
        r for r in SAMPLE if r[3].lower() == "click" or (r[3] == "purchase" and r[4] >= 4.0)
    ]
    assert decoded(data) == rows_of(expected)
    assert data.weights.tolist() == [0.25 if r[3].lower() == "click" else 1.0 for r in expected]
    # The matrix sums weights: u1 clicked b (0.25) and bought a (1.0).
    matrix = data.matrix().toarray()
    u1, a, b = 0, 0, 1
    assert matrix[u1, a] == pytest.approx(1.0) and matrix[u1, b] == pytest.approx(0.25)


def test_events_config_default_weight_and_zero_weight() -> None:
    data = load_training_data(
        events(SAMPLE),
        events_config=[{"eventType": "click"}, {"eventType": "purchase", "weight": 0}],
        **TINY,
    )
    # Weight defaults to 1; weight-0 events are dropped (they would carry nothing).
    assert decoded(data) == rows_of([r for r in SAMPLE if r[3].lower() == "click"])
    assert data.weights.tolist() == [1.0, 1.0, 1.0, 1.0]


def test_events_config_is_checked() -> None:
    with pytest.raises(TrainingDataError, match="between 0 and 1"):
        load_training_data(
            events(SAMPLE), events_config=[{"eventType": "click", "weight": 2}], **TINY
        )
    with pytest.raises(TrainingDataError, match="more than once"):
        load_training_data(
            events(SAMPLE), events_config=[{"eventType": "click"}, {"eventType": "click"}], **TINY
        )


def test_event_type_and_global_threshold_combine() -> None:
    data = load_training_data(
        events(SAMPLE), event_type="purchase", event_value_threshold=4, **TINY
    )
    assert decoded(data) == [("u1", "a", 101)]


# ----------------------------------------------------------------------- minimums


def test_too_little_data_names_counts_found_and_required() -> None:
    with pytest.raises(TrainingDataError) as info:
        load_training_data(events(SAMPLE), event_type="click")
    message = str(info.value)
    assert 'eventType "click"' in message
    assert "found 4 interactions and 1 users with at least 2 interactions" in message
    assert "at least 1000 interactions and 25 users" in message


def test_minimum_users_with_two_events() -> None:
    # 1000 events but only 24 users with two or more: one short of the service's minimum.
    rows = [(f"heavy{i % 24}", "a", i, "click", 1.0) for i in range(48)]
    rows += [(f"once{i}", "b", 1000 + i, "click", 1.0) for i in range(952)]
    with pytest.raises(TrainingDataError, match="found 1000 interactions and 24 users"):
        load_training_data(events(rows))
    rows.append(("once0", "c", 5000, "click", 1.0))
    data = load_training_data(events(rows))
    assert data.n_events == 1001


def test_no_imported_data() -> None:
    with pytest.raises(TrainingDataError, match="found 0 interactions"):
        load_training_data(read_files([]))


# ----------------------------------------------------------------------- metadata


def items_table() -> pa.Table:
    return pa.table(
        {
            "ITEM_ID": ["c", "z", "a", "cold"],
            "GENRES": ["drama|comedy", None, "action", "horror"],
            "DESCRIPTION": ["about c", "about z", "about a", None],
            "PRICE": [3.0, 26.0, 1.0, 9.5],
            "CREATION_TIMESTAMP": pa.array([30, 260, 10, 95], pa.int64()),
            "NOTE": ["n-c", "n-z", "n-a", "n-cold"],
        }
    )


def test_items_metadata_adds_cold_items_aligned_to_codes() -> None:
    data = load_training_data(
        events(SAMPLE), items=items_table(), items_schema=ITEMS_SCHEMA, **TINY
    )
    # Cold items (metadata, no events) get codes; the vocabulary stays sorted.
    assert data.item_ids.tolist() == ["a", "b", "c", "cold", "z"]
    meta = data.item_metadata
    assert meta is not None and meta.num_rows == data.n_items
    assert meta.column_names == ["GENRES", "DESCRIPTION", "PRICE", "CREATION_TIMESTAMP", "NOTE"]
    # Row i describes item_ids[i]; "b" has no metadata row, so its row is all nulls.
    assert meta.column("PRICE").to_pylist() == [1.0, None, 3.0, 9.5, 26.0]
    assert meta.column("GENRES").to_pylist() == ["action", None, "drama|comedy", "horror", None]
    assert data.item_column_kinds == {
        "GENRES": "categorical",
        "DESCRIPTION": "textual",
        "PRICE": "numeric",
        "CREATION_TIMESTAMP": "numeric",
        "NOTE": "other",
    }
    # Events are still coded against the extended vocabulary.
    assert decoded(data) == rows_of(SAMPLE)


def test_users_metadata_and_cold_users() -> None:
    users = pa.table(
        {
            "USER_ID": ["u3", "new", "u1"],
            "AGE": pa.array([30, 40, None], pa.int32()),
            "MEMBER": [True, False, True],
            "TIER": ["gold", "silver", None],
        }
    )
    data = load_training_data(events(SAMPLE), users=users, users_schema=USERS_SCHEMA, **TINY)
    assert data.user_ids.tolist() == ["new", "u1", "u2", "u3"]
    meta = data.user_metadata
    assert meta is not None
    assert meta.column("AGE").to_pylist() == [40, None, None, 30]
    assert meta.column("TIER").to_pylist() == ["silver", None, None, "gold"]
    assert data.user_column_kinds == {"AGE": "numeric", "MEMBER": "numeric", "TIER": "categorical"}
    assert decoded(data) == rows_of(SAMPLE)


def test_included_and_excluded_columns() -> None:
    included = load_training_data(
        events(SAMPLE),
        items=items_table(),
        items_schema=ITEMS_SCHEMA,
        included_columns={"ITEMS": ["ITEM_ID", "PRICE", "GENRES"], "INTERACTIONS": ["X"]},
        **TINY,
    )
    assert included.item_metadata is not None
    assert included.item_metadata.column_names == ["GENRES", "PRICE"]  # schema order
    assert included.item_column_kinds == {"GENRES": "categorical", "PRICE": "numeric"}

    excluded = load_training_data(
        events(SAMPLE),
        items=items_table(),
        items_schema=ITEMS_SCHEMA,
        excluded_columns={"items": ["NOTE", "DESCRIPTION"]},  # key case does not matter
        **TINY,
    )
    assert excluded.item_metadata is not None
    assert excluded.item_metadata.column_names == ["GENRES", "PRICE", "CREATION_TIMESTAMP"]
    assert set(excluded.item_column_kinds) == {"GENRES", "PRICE", "CREATION_TIMESTAMP"}

    nothing = load_training_data(
        events(SAMPLE),
        items=items_table(),
        included_columns={"ITEMS": ["ITEM_ID"]},
        **TINY,
    )
    assert nothing.item_metadata is not None
    assert nothing.item_metadata.num_columns == 0
    assert nothing.item_metadata.num_rows == nothing.n_items
    assert nothing.n_items == 5  # cold items stay even without metadata columns


def test_unknown_training_config_columns_are_refused() -> None:
    with pytest.raises(TrainingDataError, match="includes column COLOR of the Items dataset"):
        load_training_data(
            events(SAMPLE), items=items_table(), included_columns={"ITEMS": ["COLOR"]}, **TINY
        )
    with pytest.raises(TrainingDataError, match='dataset type "ACTIONS"'):
        load_training_data(events(SAMPLE), excluded_columns={"ACTIONS": ["X"]}, **TINY)


def test_kinds_without_a_schema_follow_arrow_types() -> None:
    data = load_training_data(events(SAMPLE), items=items_table(), **TINY)
    assert data.item_column_kinds["PRICE"] == "numeric"
    assert data.item_column_kinds["GENRES"] == "other"  # no schema: flags unknown


def test_later_metadata_row_wins() -> None:
    items = pa.table({"ITEM_ID": ["a", "b", "a"], "PRICE": [1.0, 2.0, 3.0]})
    data = load_training_data(events(SAMPLE), items=items, **TINY)
    assert data.item_metadata is not None
    assert data.item_metadata.column("PRICE").to_pylist() == [3.0, 2.0, None]


# -------------------------------------------------------------------- end to end


def test_imported_synthetic_data_with_default_minimums(tmp_path: Path) -> None:
    csv_path = write_interactions_csv(tmp_path / "events.csv", 20_000, seed=5)
    source = CsvSource(name="events.csv", open=lambda: csv_path.open("rb"))
    result = import_csv([source], parse_schema(INTERACTIONS_SCHEMA_JSON), tmp_path / "parquet")
    table = read_files(result.files)

    data = load_training_data(table)
    assert data.n_events == 20_000
    assert data.n_users == len(set(table.column("USER_ID").to_pylist()))
    assert list(data.user_ids) == sorted(data.user_ids)
    sample = np.random.default_rng(0).choice(20_000, 50, replace=False)
    assert [data.user_ids[data.users[k]] for k in sample] == [
        table.column("USER_ID")[int(k)].as_py() for k in sample
    ]
    assert [data.item_ids[data.items[k]] for k in sample] == [
        table.column("ITEM_ID")[int(k)].as_py() for k in sample
    ]

    purchases = load_training_data(table, event_type="purchase", min_interactions=100)
    types = table.column("EVENT_TYPE").to_numpy(zero_copy_only=False)
    assert purchases.n_events == int(np.count_nonzero(types == "purchase"))
    assert purchases.n_users < data.n_users
