"""Build a recipe's `InteractionData` from a dataset group's tables and a solution's config.

Applies what CreateSolution decides about the training data, the way the service does:

* ``eventType`` keeps only the events of that type (ignoring case, as the service matches
  event types);
* ``solutionConfig.eventValueThreshold`` keeps events whose EVENT_VALUE is >= the threshold
  (events without a value are dropped once a threshold applies);
* ``solutionConfig.eventsConfig.eventParametersList`` keeps only the listed event types, each
  with its own optional threshold, and gives their events the type's weight (default 1.0);
* ``solutionConfig.trainingDataConfig`` restricts the Items / Users metadata columns;
* training needs at least 1000 interactions and 25 users with two or more interactions.

Everything is vectorized: IDs are hashed once with ``pyarrow.compute.dictionary_encode`` (the
user and item columns in two threads, since Arrow releases the GIL), filters are numpy masks
over per-type lookup tables, and no Python code runs per event.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from openpersonalize.data.interactions import InteractionData
from openpersonalize.data.schema import Schema, event_type_key

__all__ = [
    "MIN_INTERACTIONS",
    "MIN_USERS_WITH_TWO",
    "TrainingDataError",
    "column_kind",
    "load_training_data",
]

#: The service's minimums for training (after the solution's filters).
MIN_INTERACTIONS = 1000
MIN_USERS_WITH_TWO = 25

_DATASET_KEYS = ("INTERACTIONS", "ITEMS", "USERS")
_NUMERIC_TYPES = ("int", "long", "float", "double", "boolean")


class TrainingDataError(ValueError):
    """The data cannot be trained on; the message becomes the version's failureReason."""


def load_training_data(
    interactions: pa.Table,
    *,
    items: pa.Table | None = None,
    items_schema: Schema | None = None,
    users: pa.Table | None = None,
    users_schema: Schema | None = None,
    interactions_schema: Schema | None = None,
    event_type: str | None = None,
    event_value_threshold: float | str | None = None,
    events_config: Sequence[Mapping[str, Any]] | None = None,
    included_columns: Mapping[str, Sequence[str]] | None = None,
    excluded_columns: Mapping[str, Sequence[str]] | None = None,
    min_interactions: int = MIN_INTERACTIONS,
    min_users_with_two: int = MIN_USERS_WITH_TWO,
) -> InteractionData:
    """Filter, encode and check the Interactions table; attach Items / Users metadata.

    ``event_type``, ``event_value_threshold`` and ``events_config`` all apply when given
    together (an event must pass each). Events whose eventsConfig weight is 0 are dropped:
    they would add nothing to any weighted objective, and explicit zeros in the user x item
    matrix would make "stored entry" mean two things. ``interactions_schema`` is accepted for
    symmetry (contextual columns are not used yet). Raises TrainingDataError.
    """
    included = _config_lists(included_columns, "includedDatasetColumns")
    excluded = _config_lists(excluded_columns, "excludedDatasetColumns")
    del interactions_schema  # contextual interaction columns are not used by any recipe yet

    names = set(interactions.column_names)
    filters = _describe_filters(event_type, event_value_threshold, events_config)
    missing = [c for c in ("USER_ID", "ITEM_ID", "TIMESTAMP") if c not in names]
    if missing and interactions.num_rows == 0:
        # read_dataset of no files: an Interactions dataset without imported data.
        _raise_too_few(0, 0, min_interactions, min_users_with_two, filters)
    if missing:
        raise TrainingDataError(f"The Interactions data has no column {', '.join(missing)}")

    n_rows = interactions.num_rows
    type_dictionary, type_codes = _event_type_codes(interactions)
    values = _event_values(interactions)
    keep, weights = _filter_events(
        n_rows,
        type_dictionary,
        type_codes,
        values,
        event_type=event_type,
        event_value_threshold=_as_threshold(event_value_threshold, "eventValueThreshold"),
        events_config=events_config,
    )
    for column in ("USER_ID", "ITEM_ID"):
        if interactions.column(column).null_count:
            # The importer refuses empty IDs; be safe with tables from elsewhere.
            keep &= _to_numpy(pc.is_valid(interactions.column(column))).astype(bool)

    all_kept = bool(keep.all())
    user_col = interactions.column("USER_ID")
    item_col = interactions.column("ITEM_ID")
    if not all_kept:
        # Hashing strings costs far more than copying them: encode only the kept events.
        mask = pa.array(keep)
        user_col = user_col.filter(mask)
        item_col = item_col.filter(mask)

    extra_users = _id_column(users, "USER_ID", "Users")
    extra_items = _id_column(items, "ITEM_ID", "Items")
    with ThreadPoolExecutor(max_workers=2) as pool:
        user_job = pool.submit(_encode_ids, user_col, extra_users)
        item_job = pool.submit(_encode_ids, item_col, extra_items)
        user_vocabulary, user_codes = user_job.result()
        item_vocabulary, item_codes = item_job.result()
    user_ids = user_vocabulary.to_numpy(zero_copy_only=False).astype(object)
    item_ids = item_vocabulary.to_numpy(zero_copy_only=False).astype(object)

    n_events = len(user_codes)
    counts = np.bincount(user_codes, minlength=len(user_ids))
    n_with_two = int(np.count_nonzero(counts >= 2))
    if n_events < min_interactions or n_with_two < min_users_with_two:
        _raise_too_few(n_events, n_with_two, min_interactions, min_users_with_two, filters)

    timestamps = interactions.column("TIMESTAMP")
    ts = _to_numpy(timestamps).astype(np.int64, copy=False)
    event_types = None
    if type_dictionary is not None and type_codes is not None:
        # One shared str object per type: the object array holds references, not copies.
        type_values = np.empty(len(type_dictionary) + 1, dtype=object)
        type_values[:-1] = type_dictionary
        type_values[-1] = None  # code -1: a null EVENT_TYPE
        event_types = type_values[type_codes if all_kept else type_codes[keep]]
    item_metadata, item_kinds = _metadata(
        items, items_schema, "ITEM_ID", "ITEMS", item_vocabulary, included, excluded
    )
    user_metadata, user_kinds = _metadata(
        users, users_schema, "USER_ID", "USERS", user_vocabulary, included, excluded
    )
    return InteractionData(
        user_ids=user_ids,
        item_ids=item_ids,
        users=user_codes,
        items=item_codes,
        timestamps=ts if all_kept else ts[keep],
        weights=weights if all_kept else weights[keep],
        event_types=event_types,
        event_values=None if values is None else (values if all_kept else values[keep]),
        item_metadata=item_metadata,
        user_metadata=user_metadata,
        item_column_kinds=item_kinds,
        user_column_kinds=user_kinds,
        item_name_column=_item_name_column(items_schema, item_kinds),
    )


def column_kind(field_type: str, categorical: bool = False, textual: bool = False) -> str:
    """'categorical' | 'textual' | 'numeric' | 'other' for a metadata field.

    Strings need a flag to be used in training (the service ignores plain string metadata);
    booleans count as numeric (0/1).
    """
    if categorical:
        return "categorical"
    if textual:
        return "textual"
    if field_type in _NUMERIC_TYPES:
        return "numeric"
    return "other"


# ----------------------------------------------------------------------------- filters


def _event_type_codes(table: pa.Table) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(distinct EVENT_TYPE values as an object array, int32 code per event; -1 = null)."""
    if "EVENT_TYPE" not in table.column_names:
        return None, None
    encoded = _one_dictionary(pc.dictionary_encode(table.column("EVENT_TYPE")))
    if encoded.num_chunks == 0:
        return np.empty(0, dtype=object), np.empty(0, dtype=np.int32)
    dictionary = encoded.chunk(0).dictionary.to_numpy(zero_copy_only=False)
    codes = np.concatenate(
        [_to_numpy(pc.fill_null(chunk.indices, -1)) for chunk in encoded.chunks]
    ).astype(np.int32, copy=False)
    return dictionary, codes


def _event_values(table: pa.Table) -> np.ndarray | None:
    """EVENT_VALUE as float32 with nan for nulls, or None without the column."""
    if "EVENT_VALUE" not in table.column_names:
        return None
    column = pc.cast(table.column("EVENT_VALUE"), pa.float32())
    return _to_numpy(pc.fill_null(column, math.nan)).astype(np.float32, copy=False)


def _filter_events(
    n_rows: int,
    type_dictionary: np.ndarray | None,
    type_codes: np.ndarray | None,
    values: np.ndarray | None,
    *,
    event_type: str | None,
    event_value_threshold: float | None,
    events_config: Sequence[Mapping[str, Any]] | None,
) -> tuple[np.ndarray, np.ndarray]:
    """(keep mask, float32 weight) per event."""
    keep = np.ones(n_rows, dtype=bool)
    weights = np.ones(n_rows, dtype=np.float32)

    if event_value_threshold is not None:
        _need_values(values, "eventValueThreshold")
        assert values is not None
        keep &= values >= event_value_threshold  # nan (no value) compares False: dropped

    if event_type is None and not events_config:
        return keep, weights
    if type_dictionary is None or type_codes is None:
        named = f'eventType "{event_type}"' if event_type is not None else "eventsConfig"
        raise TrainingDataError(
            f"{named} selects events by type, but the Interactions data has no EVENT_TYPE column"
        )
    # Spellings of one event type ("click", "Click") are one type: codes per compared form.
    codes_of: dict[str, list[int]] = {}
    for i, t in enumerate(type_dictionary):
        codes_of.setdefault(event_type_key(str(t)), []).append(i)
    present = [str(t) for t in type_dictionary]
    # Per-type lookup tables (last slot: a null EVENT_TYPE, code -1) instead of per-event logic.
    n_types = len(type_dictionary) + 1
    type_kept = np.ones(n_types, dtype=bool)

    if event_type is not None:
        if event_type_key(event_type) not in codes_of:
            raise TrainingDataError(_missing_type_message("eventType", event_type, present))
        type_kept[:] = False
        type_kept[codes_of[event_type_key(event_type)]] = True

    if events_config:
        listed = np.zeros(n_types, dtype=bool)
        type_weight = np.ones(n_types, dtype=np.float32)
        type_threshold = np.full(n_types, -np.inf, dtype=np.float32)
        has_threshold = np.zeros(n_types, dtype=bool)
        seen: set[str] = set()
        for entry in events_config:
            name, threshold, weight = _event_parameters(entry)
            if event_type_key(name) in seen:
                raise TrainingDataError(f'eventsConfig lists event type "{name}" more than once')
            seen.add(event_type_key(name))
            if event_type_key(name) not in codes_of:
                raise TrainingDataError(_missing_type_message("eventsConfig", name, present))
            code = codes_of[event_type_key(name)]
            listed[code] = True
            type_weight[code] = weight
            if threshold is not None:
                _need_values(values, f'the eventValueThreshold of event type "{name}"')
                type_threshold[code] = threshold
                has_threshold[code] = True
        type_kept &= listed & (type_weight > 0)
        weights = type_weight[type_codes]
        if has_threshold.any():
            assert values is not None
            passes = values >= type_threshold[type_codes]
            keep &= ~has_threshold[type_codes] | passes

    return keep & type_kept[type_codes], weights


def _event_parameters(entry: Mapping[str, Any]) -> tuple[str, float | None, float]:
    """(eventType, eventValueThreshold or None, weight) of one eventParametersList entry."""
    if not isinstance(entry, Mapping):
        raise TrainingDataError("eventsConfig.eventParametersList entries must be objects")
    name = entry.get("eventType")
    if not isinstance(name, str):
        raise TrainingDataError("Every eventsConfig.eventParametersList entry needs an eventType")
    threshold = _as_threshold(entry.get("eventValueThreshold"), f'eventValueThreshold of "{name}"')
    raw_weight = entry.get("weight")
    try:
        weight = 1.0 if raw_weight is None else float(raw_weight)
    except (TypeError, ValueError):
        raise TrainingDataError(f'The weight of event type "{name}" is not a number') from None
    if not 0.0 <= weight <= 1.0:
        raise TrainingDataError(
            f'The weight of event type "{name}" is {weight:g}; it must be between 0 and 1'
        )
    return name, threshold, weight


def _as_threshold(value: float | str | None, what: str) -> float | None:
    """solutionConfig.eventValueThreshold arrives as a string; eventsConfig's as a double."""
    if value is None:
        return None
    try:
        threshold = float(value)
    except (TypeError, ValueError):
        raise TrainingDataError(f'{what} "{value}" is not a number') from None
    if math.isnan(threshold):
        raise TrainingDataError(f"{what} must be a number, not NaN")
    return threshold


def _need_values(values: np.ndarray | None, what: str) -> None:
    if values is None:
        raise TrainingDataError(
            f"{what} needs event values, but the Interactions data has no EVENT_VALUE column"
        )
    if len(values) and bool(np.isnan(values).all()):
        raise TrainingDataError(f"{what} needs event values, but no interaction has an EVENT_VALUE")


def _missing_type_message(where: str, name: str, types: Sequence[str]) -> str:
    present = sorted(types)
    shown = ", ".join(f'"{t}"' for t in present[:10]) + (", ..." if len(present) > 10 else "")
    return (
        f'{where} names event type "{name}", which does not occur in the Interactions data '
        f"(event types present: {shown or 'none'})"
    )


def _describe_filters(
    event_type: str | None,
    threshold: float | str | None,
    events_config: Sequence[Mapping[str, Any]] | None,
) -> str:
    parts = []
    if event_type is not None:
        parts.append(f'eventType "{event_type}"')
    if threshold is not None:
        parts.append(f"eventValueThreshold {threshold}")
    if events_config:
        parts.append("eventsConfig")
    return " and ".join(parts)


def _raise_too_few(
    n_events: int, n_with_two: int, min_events: int, min_with_two: int, filters: str
) -> None:
    after = f" after applying {filters}" if filters else ""
    raise TrainingDataError(
        f"Not enough interaction data to train{after}: found {n_events} interactions and "
        f"{n_with_two} users with at least 2 interactions; at least {min_events} interactions "
        f"and {min_with_two} users with at least 2 interactions are required"
    )


# ----------------------------------------------------------------------- vocabularies


def _id_column(table: pa.Table | None, name: str, dataset: str) -> pa.ChunkedArray | None:
    if table is None:
        return None
    if name not in table.column_names:
        raise TrainingDataError(f"The {dataset} data has no {name} column")
    return table.column(name)


def _encode_ids(
    events: pa.ChunkedArray, extra: pa.ChunkedArray | None
) -> tuple[pa.Array, np.ndarray]:
    """(sorted vocabulary, int32 code per event).

    The vocabulary is the events' IDs plus ``extra`` (IDs of a metadata table, so that cold
    items and users get codes). One hash pass over the events; sorting and the union run on
    distinct values only.
    """
    encoded_here = not pa.types.is_dictionary(events.type)
    if encoded_here:
        events = pc.dictionary_encode(events)
    events = _one_dictionary(events)
    value_type = events.type.value_type
    dictionary = events.chunk(0).dictionary if events.num_chunks else pa.array([], value_type)
    indices = np.concatenate(
        [np.empty(0, dtype=np.int32)] + [_to_numpy(chunk.indices) for chunk in events.chunks]
    ).astype(np.int32, copy=False)
    if not encoded_here:
        # A dictionary read from Parquet may hold values that no (kept) event uses.
        used = np.bincount(indices, minlength=len(dictionary)) > 0
        if not used.all():
            dictionary = dictionary.filter(pa.array(used))
            indices = (np.cumsum(used, dtype=np.int64) - 1)[indices].astype(np.int32)

    ids = dictionary
    if extra is not None and len(extra):
        extra_ids = extra.combine_chunks().cast(value_type).drop_null()
        ids = pc.unique(pa.concat_arrays([dictionary, extra_ids]))

    vocabulary = ids.take(pc.sort_indices(ids))  # byte order: deterministic
    # Code of each dictionary entry in the sorted vocabulary (every entry is present).
    position = _to_numpy(pc.index_in(dictionary, value_set=vocabulary)).astype(np.int32)
    return vocabulary, position[indices]


def _one_dictionary(encoded: pa.ChunkedArray) -> pa.ChunkedArray:
    """The chunks with one shared dictionary (indices valid across chunks).

    ``dictionary_encode`` of a chunked array already gives every chunk the same dictionary
    object; unifying 1M values would cost a second, so only do it when they differ.
    """
    chunks = encoded.chunks
    if len(chunks) <= 1:
        return encoded
    first = chunks[0].dictionary
    shared = all(
        len(c.dictionary) == len(first)
        and c.dictionary.buffers()[-1].address == first.buffers()[-1].address
        and c.dictionary.offset == first.offset
        for c in chunks[1:]
    )
    return encoded if shared else encoded.unify_dictionaries()


# ------------------------------------------------------------------------- metadata


def _config_lists(config: Mapping[str, Sequence[str]] | None, what: str) -> dict[str, list[str]]:
    """trainingDataConfig column lists keyed by upper-case dataset type."""
    if not config:
        return {}
    out: dict[str, list[str]] = {}
    for key, columns in config.items():
        upper = str(key).upper()
        if upper not in _DATASET_KEYS:
            raise TrainingDataError(
                f'trainingDataConfig.{what} names dataset type "{key}"; it must be one of '
                + ", ".join(_DATASET_KEYS)
            )
        out[upper] = [str(c) for c in columns]
    return out


def _metadata(
    table: pa.Table | None,
    schema: Schema | None,
    id_column: str,
    dataset: str,
    vocabulary: pa.Array,
    included: Mapping[str, list[str]],
    excluded: Mapping[str, list[str]],
) -> tuple[pa.Table | None, dict[str, str]]:
    """One metadata row per vocabulary code (nulls where the table lacks the ID) and kinds."""
    if table is None:
        return None, {}
    available = [c for c in table.column_names if c != id_column]
    columns = list(available)
    for config, verb in ((included, "includes"), (excluded, "excludes")):
        listed = config.get(dataset)
        if listed is None:
            continue
        unknown = [c for c in listed if c not in available and c != id_column]
        if unknown:
            raise TrainingDataError(
                f"trainingDataConfig {verb} column {', '.join(unknown)} of the "
                f"{dataset.title()} dataset, which has no such column"
            )
        wanted = set(listed)
        columns = [c for c in columns if (c in wanted) == (verb == "includes")]

    ids = table.column(id_column).cast(vocabulary.type)
    row_codes = _to_numpy(pc.fill_null(pc.index_in(ids, value_set=vocabulary), -1))
    rows = np.flatnonzero(row_codes >= 0)  # a null ID (never from the importer) matches nothing
    # A later row wins over an earlier one with the same ID, as a later import replaces a
    # record: take each code's first occurrence in reversed row order.
    reversed_codes = row_codes[rows[::-1]]
    unique_codes, first_in_reversed = np.unique(reversed_codes, return_index=True)
    row_of_code = np.full(len(vocabulary), -1, dtype=np.int64)
    row_of_code[unique_codes] = rows[::-1][first_in_reversed]
    take = pa.array(row_of_code, mask=row_of_code < 0)  # null index: a row of nulls
    if columns:
        metadata = table.select(columns).take(take)
    else:
        # Every column excluded: keep a zero-column table that still has one row per code.
        metadata = pa.table({"_": pa.nulls(len(vocabulary))}).select([])

    kinds: dict[str, str] = {}
    for name in columns:
        field = schema.field(name) if schema is not None else None
        if field is not None:
            kinds[name] = column_kind(field.type, field.categorical, field.textual)
        else:
            kinds[name] = _kind_of_arrow(table.schema.field(name).type)
    return metadata, kinds


def _item_name_column(schema: Schema | None, kinds: Mapping[str, str]) -> str | None:
    """The field flagged "itemName": true, when it is among the Items columns training uses."""
    if schema is None:
        return None
    return next((f.name for f in schema.fields if f.item_name and f.name in kinds), None)


def _kind_of_arrow(arrow_type: pa.DataType) -> str:
    """Kind of a column without a schema field: numbers are numeric, the rest unknown."""
    if (
        pa.types.is_integer(arrow_type)
        or pa.types.is_floating(arrow_type)
        or pa.types.is_boolean(arrow_type)
    ):
        return "numeric"
    return "other"


def _to_numpy(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    return values.to_numpy(zero_copy_only=False)
