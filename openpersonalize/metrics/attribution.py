"""Metric attribution: the figures of a metric attribution's metrics, from interaction events.

For each metric, each event of the metric's event type counts towards its attribution source
and its 15-minute window (the event's TIMESTAMP floored to 900 s): `SAMPLECOUNT()` counts the
events, `SUM(Interactions.X)` adds the event's column X, `SUM(Items.X)` the column X of the
event's item (joined on ITEM_ID). An event's source is its EVENT_ATTRIBUTION_SOURCE when it
has one, else the campaign or recommender whose answer its RECOMMENDATION_ID is, else
SOURCE_NAME_UNDEFINED. Event types match ignoring case, as everywhere in the service.

A recommendation ID names the deployment that produced it in 12 hex characters, so an event
that quotes it can be attributed without a lookup table written on the hot path; the rest
is random. Pure computation over Arrow tables: reading the data and writing reports is the
resource module's (resources/metric_attributions.py).
"""

from __future__ import annotations

import csv
import functools
import hashlib
import io
import re
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from openpersonalize.errors import InvalidInputException

WINDOW_SECONDS = 900
SOURCE_UNDEFINED = "SOURCE_NAME_UNDEFINED"
SAMPLECOUNT, SUM = "samplecount", "sum"
REPORT_HEADER = (
    "METRIC_NAME",
    "EVENT_TYPE",
    "VALUE",
    "MATH_FUNCTION",
    "EVENT_ATTRIBUTION_SOURCE",
    "TIMESTAMP",
)
# The columns `compute` reads besides those the metrics name.
EVENT_TYPE, TIMESTAMP, ITEM_ID = "EVENT_TYPE", "TIMESTAMP", "ITEM_ID"
SOURCE, RECOMMENDATION_ID = "EVENT_ATTRIBUTION_SOURCE", "RECOMMENDATION_ID"

_SAMPLECOUNT = re.compile(r"\s*SAMPLECOUNT\s*\(\s*\)\s*", re.IGNORECASE)
_SUM = re.compile(
    r"\s*SUM\s*\(\s*(Items|Interactions)\s*\.\s*([A-Za-z_][A-Za-z0-9_]*)\s*\)\s*", re.IGNORECASE
)
# "RID-" + deployment code + "-" + random: 40 characters, PutEvents' limit for recommendationId.
_CODE_CHARS, _RANDOM_CHARS = 12, 23
_RECOMMENDATION_ID = re.compile(rf"^RID-([0-9a-f]{{{_CODE_CHARS}}})-")


@dataclass(frozen=True)
class Expression:
    """A parsed metric expression: the math function and, for a sum, the column it adds."""

    function: str  # SAMPLECOUNT or SUM
    dataset_type: str | None = None  # "Interactions" or "Items" for a sum
    column: str | None = None


def parse_expression(text: str) -> Expression:
    """`SAMPLECOUNT()`, `SUM(Interactions.COLUMN)` or `SUM(Items.COLUMN)`."""
    if _SAMPLECOUNT.fullmatch(text):
        return Expression(SAMPLECOUNT)
    match = _SUM.fullmatch(text)
    if match is None:
        raise InvalidInputException(
            f"The metric expression {text!r} is not valid: use SAMPLECOUNT(), "
            "SUM(Interactions.COLUMN) or SUM(Items.COLUMN)."
        )
    dataset_type = "Items" if match.group(1).lower() == "items" else "Interactions"
    return Expression(SUM, dataset_type, match.group(2))


@dataclass(frozen=True)
class Metric:
    """One metric of an attribution, as MetricAttribute members name it."""

    metric_name: str
    event_type: str
    expression: Expression

    @classmethod
    def from_wire(cls, attribute: Mapping[str, str]) -> Metric:
        return cls(
            attribute["metricName"],
            attribute["eventType"],
            parse_expression(attribute["expression"]),
        )


@dataclass(frozen=True)
class Figure:
    """A metric's value for one attribution source in one 15-minute window."""

    metric_name: str
    event_type: str
    value: float
    math_function: str
    source: str
    window: int  # epoch seconds where the window starts


@functools.lru_cache(maxsize=4096)  # the hot path asks for the same few on every answer
def deployment_code(arn: str) -> str:
    """The 12 hex characters that name a campaign or recommender in its recommendation IDs."""
    return hashlib.blake2b(arn.encode(), digest_size=_CODE_CHARS // 2).hexdigest()


def recommendation_id(deployment_arn: str) -> str:
    """A new recommendation ID for an answer of this campaign or recommender."""
    return f"RID-{deployment_code(deployment_arn)}-{secrets.token_hex(12)[:_RANDOM_CHARS]}"


def deployment_of(recommendation: str | None, arn_by_code: Mapping[str, str]) -> str | None:
    """The campaign or recommender ARN a recommendation ID came from, if it is one we know."""
    match = _RECOMMENDATION_ID.match(recommendation or "")
    return arn_by_code.get(match.group(1)) if match else None


def codes_of(arns: Iterable[str]) -> dict[str, str]:
    """Deployment code -> ARN, for resolving recommendation IDs."""
    return {deployment_code(arn): arn for arn in arns}


def attribution_sources(
    explicit: pa.Array | pa.ChunkedArray,
    recommendations: pa.Array | pa.ChunkedArray,
    arn_by_code: Mapping[str, str],
) -> pa.Array:
    """Each event's source: its own attribution source (when not empty), else the deployment
    its recommendation ID names, else SOURCE_NAME_UNDEFINED."""
    explicit = explicit.cast(pa.string())
    explicit = pc.if_else(pc.equal(explicit, ""), None, explicit)
    recommendations = recommendations.cast(pa.string())
    codes = pc.if_else(
        pc.match_substring_regex(recommendations, _RECOMMENDATION_ID.pattern),
        pc.utf8_slice_codeunits(recommendations, 4, 4 + _CODE_CHARS),
        None,
    )
    known = pa.array(list(arn_by_code), type=pa.string())
    deployments = pa.array(list(arn_by_code.values()), type=pa.string())
    from_recommendation = pc.take(deployments, pc.index_in(codes, value_set=known))
    resolved = pc.coalesce(explicit, from_recommendation, pa.scalar(SOURCE_UNDEFINED))
    return resolved.combine_chunks() if isinstance(resolved, pa.ChunkedArray) else resolved


def compute(
    events: pa.Table, metrics: Sequence[Metric], items: pa.Table | None = None
) -> list[Figure]:
    """Every metric's figures over `events` (columns EVENT_TYPE, TIMESTAMP, ITEM_ID, the resolved
    EVENT_ATTRIBUTION_SOURCE and each Interactions column a sum names). `items` holds ITEM_ID
    and the Items columns sums name; where an ID appears twice the later row wins. Events whose
    value is missing (no such item, an empty cell) add nothing; a window with no value at all
    has no figure, as a metric with no data point has none."""
    figures: list[Figure] = []
    if events.num_rows == 0:
        return figures
    event_types = pc.utf8_lower(events.column(EVENT_TYPE).cast(pa.string()))
    seconds = events.column(TIMESTAMP).cast(pa.int64()).to_numpy()
    windows = pa.array(seconds // WINDOW_SECONDS * WINDOW_SECONDS)
    for metric in metrics:
        chosen = pc.equal(event_types, metric.event_type.lower())
        values = _values(events, metric.expression, items)
        table = pa.table(
            {"source": events.column(SOURCE), "window": windows, "value": values}
        ).filter(pc.and_kleene(chosen, pc.is_valid(values)))
        if table.num_rows == 0:
            continue
        grouped = table.group_by(["source", "window"], use_threads=False).aggregate(
            [("value", "sum")]
        )
        order = pc.sort_indices(
            grouped, sort_keys=[("source", "ascending"), ("window", "ascending")]
        )
        grouped = grouped.take(order)
        for source, window, value in zip(
            grouped.column("source").to_pylist(),
            grouped.column("window").to_pylist(),
            grouped.column("value_sum").to_pylist(),
            strict=True,
        ):
            figures.append(
                Figure(
                    metric.metric_name,
                    metric.event_type,
                    float(value),
                    metric.expression.function,
                    source,
                    int(window),
                )
            )
    return figures


def _values(events: pa.Table, expression: Expression, items: pa.Table | None) -> pa.Array:
    """Per event, what the expression adds (null where there is nothing to add)."""
    if expression.function == SAMPLECOUNT:
        return pa.array(np.ones(events.num_rows))
    assert expression.column is not None
    if expression.dataset_type == "Interactions":
        column = _column(events, expression.column)
        if column is None:
            return pa.nulls(events.num_rows, pa.float64())
        return column.cast(pa.float64()).combine_chunks()
    column = _column(items, expression.column) if items is not None else None
    if items is None or column is None or items.num_rows == 0:
        return pa.nulls(events.num_rows, pa.float64())
    # Reversed, so index_in (which finds an ID's first row) finds its last one.
    reverse = pa.array(range(items.num_rows - 1, -1, -1), type=pa.int64())
    ids = items.column(ITEM_ID).cast(pa.string()).take(reverse)
    item_values = column.cast(pa.float64()).take(reverse)
    positions = pc.index_in(events.column(ITEM_ID).cast(pa.string()), value_set=ids)
    taken = pc.take(item_values, positions)
    return taken.combine_chunks() if isinstance(taken, pa.ChunkedArray) else taken


def _column(table: pa.Table, name: str) -> pa.ChunkedArray | None:
    """A column by name ignoring case (schema field names are matched that way)."""
    for present in table.column_names:
        if present.casefold() == name.casefold():
            return table.column(present)
    return None


def report_csv(figures: Iterable[Figure]) -> str:
    """The S3 report: one row per figure, VALUE a float, MATH_FUNCTION lower case."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(REPORT_HEADER)
    for figure in figures:
        writer.writerow(
            (
                figure.metric_name,
                figure.event_type,
                repr(figure.value),
                figure.math_function,
                figure.source,
                figure.window,
            )
        )
    return out.getvalue()
