"""Metric attributions: the figures of up to ten metrics over a dataset group's interaction
events, per attribution source (the campaign or recommender an event came from).

One per dataset group. Metrics are `SAMPLECOUNT()`, `SUM(Interactions.COLUMN)` or
`SUM(Items.COLUMN)` over events of one event type, checked against the group's schemas when
they are created (the computation is metrics/attribution.py). The service only says to wait
for "active"; the statuses are the lifecycle's CREATE PENDING > CREATE IN_PROGRESS > ACTIVE
and DELETE PENDING > DELETE IN_PROGRESS, like a filter's.

CloudWatch cannot be reached from here, so the figures go where they can be read:
- an import job with `publishAttributionMetricsToS3` writes, once its data is in,
  ``AggregatedAttributionMetrics - BULK - <epoch seconds>.csv`` under
  `metricsOutputConfig.s3DataDestination.path`: the figures of that import's events;
- events from PutEvents are published to the same folder every few seconds as
  ``AggregatedAttributionMetrics - PUT - <epoch seconds>.csv``, each file the figures of the
  events received since the file before (a window's figure is the sum over the files, as
  CloudWatch sums the data points it receives);
- `openpersonalize metric-attribution-report ARN` prints the figures of all data that counts
  (`report`).
Only data that arrived after the attribution was created counts: events received since then,
and imports created since then.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from openpersonalize.context import Context
from openpersonalize.data import streamed
from openpersonalize.data.importer import ImportFailed
from openpersonalize.data.schema import Schema
from openpersonalize.data.sources import parse_s3_location
from openpersonalize.errors import (
    InvalidInputException,
    ResourceAlreadyExistsException,
)
from openpersonalize.jobs import runner
from openpersonalize.metrics import attribution
from openpersonalize.resources import (
    batch_inference_jobs,
    dataset_groups,
    dataset_import_jobs,
    datasets,
    filters,
    lifecycle,
    schemas,
    solutions,
)
from openpersonalize.store.database import EventRow, ResourceRow

KIND = lifecycle.Kind("metric-attribution", "metricAttributionArn", "metric attribution")
MAX_METRICS = 10
NUMERIC_TYPES = ("int", "long", "float", "double")
REPORT_PREFIX = "AggregatedAttributionMetrics"
BULK, PUT = "BULK", "PUT"  # the report's ImportMethod, named as export jobs name them
REPORT_JOB = "metric_attribution_report"
# Events received this recently wait for the next round: on PostgreSQL an event with a lower
# id can commit after one with a higher id, and the reports move on by id.
SETTLE_SECONDS = 2.0
REPORT_EVERY_SECONDS = 2.0
_REPORTED = "reportedEventsThrough"  # the id of the newest event published (not on the wire)
# The second a streamed report is named after: each report of an attribution gets its own, so
# two queued within one second (by two workers) never write the same file.
_REPORTED_AT = "streamedReportAt"
_DEPLOYMENT_TYPES = ("campaign", "recommender")
log = logging.getLogger("openpersonalize.metric_attributions")


def create(context: Context, request: dict[str, Any]) -> dict[str, Any]:
    name = request["name"]
    arn = context.arn(KIND.resource_type, name)
    output = _checked_output(request["metricsOutputConfig"])
    with context.database.transaction() as session:
        # Locked, so two creates in one group on PostgreSQL cannot both find it empty.
        group = lifecycle.get(session, dataset_groups.KIND, request["datasetGroupArn"], lock=True)
        lifecycle.require_usable(group, dataset_groups.KIND)
        existing = of_group(session, group.arn)
        if existing is not None:
            raise ResourceAlreadyExistsException(
                f"The dataset group {group.arn} already has a metric attribution: {existing.arn}"
            )
        metrics = _checked_metrics(
            request["metrics"], filters.group_schemas(session, group.arn), group.arn
        )
        _require_room(metrics, arn)
        lifecycle.create_pending(
            session,
            KIND,
            arn=arn,
            name=name,
            now=context.now(),
            parent_arn=group.arn,
            attributes={
                "datasetGroupArn": group.arn,
                "metricsOutputConfig": output,
                "metrics": metrics,
                # Every event so far came before it: the reports' scans start after them.
                _REPORTED: session.scalar(select(func.max(EventRow.id))) or 0,
            },
            job="activate",
        )
    return {"metricAttributionArn": arn}


describe = lifecycle.describe_handler(KIND, "metricAttribution")
list_ = lifecycle.list_handler(KIND, "metricAttributions", parent=dataset_groups.KIND)
delete = lifecycle.delete_handler(KIND)


def list_metrics(context: Context, request: dict[str, Any]) -> dict[str, Any]:
    """The metric definitions (not their values), a page at a time."""
    arn = _required_arn(request)
    with context.database.snapshot() as session:
        metrics = list(lifecycle.get(session, KIND, arn).attributes["metrics"])
    page, token = lifecycle.paginate(metrics, request, scope=f"{KIND.resource_type}|{arn}")
    return {"metrics": page, "nextToken": token}


def update(context: Context, request: dict[str, Any]) -> dict[str, Any]:
    """Remove metrics, then add metrics, and/or replace the output configuration."""
    arn = _required_arn(request)
    added, removed = request.get("addMetrics") or [], request.get("removeMetrics") or []
    output = request.get("metricsOutputConfig")
    if not (added or removed or output):
        raise InvalidInputException(
            f"Nothing to update for {arn}: give addMetrics, removeMetrics or metricsOutputConfig."
        )
    checked_output = _checked_output(output) if output else None
    with context.database.transaction() as session:
        row = lifecycle.get(session, KIND, arn, lock=True)
        lifecycle.require_status(row, KIND, lifecycle.ACTIVE)
        current = list(row.attributes["metrics"])
        names = {metric["metricName"] for metric in current}
        unknown = sorted(set(removed) - names)
        if unknown:
            raise InvalidInputException(
                f"The metric attribution {arn} has no metric named {', '.join(unknown)}."
            )
        kept = [metric for metric in current if metric["metricName"] not in set(removed)]
        clash = sorted({m["metricName"] for m in added} & {m["metricName"] for m in kept})
        if clash:
            raise ResourceAlreadyExistsException(
                f"The metric attribution {arn} already has a metric named {', '.join(clash)}."
            )
        group_arn = row.parent_arn or ""
        metrics = kept + _checked_metrics(
            added, filters.group_schemas(session, group_arn), group_arn
        )
        _require_room(metrics, arn)
        changes: dict[str, Any] = {"metrics": metrics}
        if checked_output is not None:
            changes["metricsOutputConfig"] = checked_output
            row.failure_reason = None  # a failed publish said what was wrong with the old one
        lifecycle.update_attributes(row, context.now(), **changes)
    return {"metricAttributionArn": arn}


def of_group(session: Session, group_arn: str) -> ResourceRow | None:
    """The group's metric attribution; one being deleted no longer counts (user code deletes
    it and creates the next without waiting)."""
    return session.scalars(
        select(ResourceRow).where(
            ResourceRow.resource_type == KIND.resource_type,
            ResourceRow.parent_arn == group_arn,
            ResourceRow.status.not_in(lifecycle.DELETING),
        )
    ).first()


def _required_arn(request: dict[str, Any]) -> str:
    # The model leaves it optional, but there is nothing to act on without it.
    arn = request.get("metricAttributionArn")
    if not arn:
        raise InvalidInputException("metricAttributionArn is required.")
    return str(arn)


def _require_room(metrics: list[dict[str, str]], arn: str) -> None:
    if len(metrics) > MAX_METRICS:
        raise InvalidInputException(
            f"The metric attribution {arn} would have {len(metrics)} metrics; the limit is "
            f"{MAX_METRICS}."
        )


def _checked_output(config: dict[str, Any]) -> dict[str, Any]:
    destination = config.get("s3DataDestination")
    if destination:
        try:
            parse_s3_location(destination["path"])
        except ImportFailed as error:
            raise InvalidInputException(
                f"metricsOutputConfig.s3DataDestination.path: {error}"
            ) from None
    return dict(config)


def _checked_metrics(
    metrics: list[dict[str, str]], group_schemas: dict[str, Schema], group_arn: str
) -> list[dict[str, str]]:
    """The metrics as given, once each expression parses and names a numeric column of a
    dataset the group has; metric names must be unique."""
    interactions = group_schemas.get("Interactions")
    if metrics and (interactions is None or interactions.field("EVENT_TYPE") is None):
        raise InvalidInputException(
            f"The dataset group {group_arn} needs an Interactions dataset with an EVENT_TYPE "
            "column before it can have metrics."
        )
    names = [metric["metricName"] for metric in metrics]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise InvalidInputException(f"Metric names must be unique: {', '.join(repeated)}.")
    checked = []
    for metric in metrics:
        expression = attribution.Metric.from_wire(metric).expression
        if expression.function == attribution.SUM:
            assert expression.dataset_type is not None and expression.column is not None
            schema = group_schemas.get(expression.dataset_type)
            where = f"metric {metric['metricName']} ({metric['expression']})"
            if schema is None:
                raise InvalidInputException(
                    f"The {where} sums an {expression.dataset_type} column, but the dataset "
                    f"group {group_arn} has no {expression.dataset_type} dataset."
                )
            field = schema.field(expression.column)
            if field is None or field.type not in NUMERIC_TYPES:
                numeric = [f.name for f in schema.fields if f.type in NUMERIC_TYPES]
                raise InvalidInputException(
                    f"The {where} must name a numeric column of the {expression.dataset_type} "
                    f"schema; {expression.column} is "
                    + ("not one of its columns" if field is None else f"a {field.type}")
                    + f" (numeric columns: {', '.join(numeric) or 'none'})."
                )
        checked.append({key: metric[key] for key in ("eventType", "metricName", "expression")})
    return checked


# ---------------------------------------------------------------------------------- figures


def report(context: Context, arn: str) -> list[attribution.Figure]:
    """The figures of all data that counts: events received since the attribution was
    created, and the data of imports created since then that the dataset still holds."""
    with context.database.snapshot() as session:
        row = lifecycle.get(session, KIND, arn)
        interactions = solutions.datasets_of(session, row.parent_arn or "").get("Interactions")
        if interactions is None:
            return []
        files = [
            key
            for key in interactions.attributes.get("files", [])
            if _imported_at(session, key) >= row.created_at
        ]
        rows = session.scalars(
            select(EventRow).where(
                EventRow.dataset_arn == interactions.arn, EventRow.received_at >= row.created_at
            )
        ).all()
        return _figures(context, session, row, files, rows)


def publish_import(context: Context, job_arn: str) -> None:
    """After an import's data is in: when it asked for publishAttributionMetricsToS3 and its
    group's attribution has an S3 path, the report of that import's events. A report that
    cannot be made leaves the import as it is and says why on the attribution."""
    try:
        _publish_import(context, job_arn)
    except Exception as error:
        log.exception("metric attribution report of %s failed", job_arn)
        with context.database.snapshot() as session:
            job = lifecycle.find(session, job_arn)
            dataset = lifecycle.find(session, job.attributes["datasetArn"]) if job else None
            row = of_group(session, dataset.parent_arn or "") if dataset else None
        if row is not None:
            _record_failure(context, row.arn, f"The report of {job_arn} failed: {error}")


def _publish_import(context: Context, job_arn: str) -> None:
    with context.database.snapshot() as session:
        job = lifecycle.get(session, dataset_import_jobs.KIND, job_arn)
        if not job.attributes.get("publishAttributionMetricsToS3"):
            return
        dataset = lifecycle.get(session, datasets.KIND, job.attributes["datasetArn"])
        if dataset.attributes["datasetType"] != "Interactions":
            return
        row = of_group(session, dataset.parent_arn or "")
        if row is None or row.status != lifecycle.ACTIVE or not _folder(row):
            return
        if job.created_at < row.created_at:  # imported before the attribution existed
            return
        prefix = f"{datasets.data_key(dataset.arn)}/{job.name}/"
        files = [key for key in dataset.attributes.get("files", []) if key.startswith(prefix)]
        figures = _figures(context, session, row, files, [])
    _publish(context, row, BULK, int(context.now()), figures)


def schedule_streamed_reports(context: Context) -> None:
    """Periodic, in every worker: queue a report job for each attribution with an S3 path
    whose group received events since its last report (the job writes it)."""
    settled = context.now() - SETTLE_SECONDS
    due: list[tuple[str, int, int]] = []
    with context.database.snapshot() as session:
        rows = session.scalars(
            select(ResourceRow).where(
                ResourceRow.resource_type == KIND.resource_type,
                ResourceRow.status == lifecycle.ACTIVE,
            )
        ).all()
        for row in rows:
            interactions = solutions.datasets_of(session, row.parent_arn or "").get("Interactions")
            if interactions is None or not _folder(row):
                continue
            reported = int(row.attributes.get(_REPORTED, 0))
            newest = session.scalar(
                select(func.max(EventRow.id)).where(
                    EventRow.dataset_arn == interactions.arn,
                    EventRow.id > reported,
                    EventRow.received_at >= row.created_at,
                    EventRow.received_at <= settled,
                )
            )
            if newest is not None:
                due.append((row.arn, reported, int(newest)))
    for arn, reported, newest in due:
        now = context.now()
        with context.database.transaction() as session:
            row = lifecycle.get(session, KIND, arn, lock=True)
            if row.status != lifecycle.ACTIVE or row.attributes.get(_REPORTED, 0) != reported:
                continue  # another worker queued it first
            at = max(int(now), int(row.attributes.get(_REPORTED_AT, 0)) + 1)
            # Bookkeeping, not a change the user made: lastUpdatedDateTime stays.
            row.attributes = {**row.attributes, _REPORTED: newest, _REPORTED_AT: at}
            runner.enqueue(
                session,
                REPORT_JOB,
                arn,
                now,
                payload={"after": reported, "through": newest, "at": at},
            )


def _report_streamed(job: runner.JobHandle) -> None:
    """The report of the events with ids in (after, through]: the same file on a retry."""
    context = job.context
    with context.database.snapshot() as session:
        row = lifecycle.find(session, job.resource_arn)
        if row is None or row.status != lifecycle.ACTIVE or not _folder(row):
            return  # deleted, or its S3 path removed, since the job was queued
        interactions = solutions.datasets_of(session, row.parent_arn or "").get("Interactions")
        if interactions is None:
            return
        events = session.scalars(
            select(EventRow).where(
                EventRow.dataset_arn == interactions.arn,
                EventRow.id > job.payload["after"],
                EventRow.id <= job.payload["through"],
                EventRow.received_at >= row.created_at,
            )
        ).all()
        figures = _figures(context, session, row, [], events)
    _publish(context, row, PUT, int(job.payload["at"]), figures)


def _report_failed(context: Context, arn: str, reason: str) -> None:
    _record_failure(context, arn, f"Publishing a PutEvents report failed: {reason}")


def _figures(
    context: Context,
    session: Session,
    row: ResourceRow,
    files: list[str],
    events: Sequence[EventRow],
) -> list[attribution.Figure]:
    """The attribution's figures over imported `files` and streamed `events` together."""
    metrics = [attribution.Metric.from_wire(metric) for metric in row.attributes["metrics"]]
    columns = sorted(
        {
            m.expression.column
            for m in metrics
            if m.expression.dataset_type == "Interactions" and m.expression.column
        }
    )
    parts = [_imported_events(context, key, columns) for key in files]
    if events:
        parts.append(_streamed_events(events, columns))
    if not parts:
        return []
    table = pa.concat_tables(parts)
    deployments = session.scalars(
        select(ResourceRow.arn).where(ResourceRow.resource_type.in_(_DEPLOYMENT_TYPES))
    ).all()
    sources = attribution.attribution_sources(
        table.column(attribution.SOURCE),
        table.column(attribution.RECOMMENDATION_ID),
        attribution.codes_of(deployments),
    )
    table = table.set_column(
        table.column_names.index(attribution.SOURCE), attribution.SOURCE, sources
    )
    return attribution.compute(table, metrics, _items(context, session, row, metrics))


def _event_columns(columns: list[str]) -> dict[str, pa.DataType]:
    """The columns the figures read, and their types: the fixed ones, then the Interactions
    columns the metrics sum."""
    fixed = {
        attribution.EVENT_TYPE: pa.string(),
        attribution.TIMESTAMP: pa.int64(),
        attribution.ITEM_ID: pa.string(),
        attribution.SOURCE: pa.string(),
        attribution.RECOMMENDATION_ID: pa.string(),
    }
    return fixed | {column: pa.float64() for column in columns if column.upper() not in fixed}


def _imported_events(context: Context, key: str, columns: list[str]) -> pa.Table:
    """The columns the figures need of one imported Parquet file; absent ones are empty."""
    wanted = _event_columns(columns)
    present = {name.casefold(): name for name in context.blobs.parquet_schema(key).names}
    chosen = [present[name.casefold()] for name in wanted if name.casefold() in present]
    table = context.blobs.read_parquet(key, columns=chosen)
    result = {}
    for name, kind in wanted.items():
        if name.casefold() in present:
            result[name] = table.column(present[name.casefold()]).cast(kind)
        else:
            result[name] = pa.nulls(table.num_rows, kind)
    return pa.table(result)


def _streamed_events(events: Sequence[EventRow], columns: list[str]) -> pa.Table:
    """The same columns for events from PutEvents (other fields live in `properties`)."""
    result: dict[str, Any] = {
        attribution.EVENT_TYPE: pa.array([e.event_type for e in events], pa.string()),
        attribution.TIMESTAMP: pa.array([int(e.timestamp) for e in events], pa.int64()),
        attribution.ITEM_ID: pa.array([e.item_id for e in events], pa.string()),
        attribution.SOURCE: pa.array([e.event_attribution_source for e in events], pa.string()),
        attribution.RECOMMENDATION_ID: pa.array([e.recommendation_id for e in events], pa.string()),
    }
    for column in list(_event_columns(columns))[len(result) :]:
        if column.upper() == "EVENT_VALUE":
            values = [e.event_value for e in events]
        else:
            values = [streamed.property_value(e.properties, column) for e in events]
        result[column] = pa.array(
            [
                float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None
                for v in values
            ],
            pa.float64(),
        )
    return pa.table(result)


def _items(
    context: Context, session: Session, row: ResourceRow, metrics: list[attribution.Metric]
) -> pa.Table | None:
    """The group's items (imported, then put: the newest record of an ID last), when a metric
    sums an Items column."""
    if not any(m.expression.dataset_type == "Items" for m in metrics):
        return None
    dataset = solutions.datasets_of(session, row.parent_arn or "").get("Items")
    if dataset is None:
        return None
    schema = schemas.load(lifecycle.get(session, schemas.KIND, dataset.attributes["schemaArn"]))
    return streamed.dataset_table(
        context.blobs,
        session,
        dataset.arn,
        "Items",
        list(dataset.attributes.get("files", [])),
        schema,
    )


def _imported_at(session: Session, key: str) -> float:
    """When the import that wrote a dataset file was created (files live under
    ``<dataset key>/<job name>/``); -inf when no import job names it."""
    job_name = key.rsplit("/", 2)[-2] if key.count("/") >= 2 else ""
    created = session.scalar(
        select(ResourceRow.created_at).where(
            ResourceRow.resource_type == dataset_import_jobs.KIND.resource_type,
            ResourceRow.name == job_name,
        )
    )
    return float(created) if created is not None else float("-inf")


def _folder(row: ResourceRow) -> str | None:
    """The attribution's S3 report folder (a path is read as a folder), if it has one."""
    destination = (row.attributes.get("metricsOutputConfig") or {}).get("s3DataDestination")
    if not destination or not destination.get("path"):
        return None
    path = str(destination["path"])
    return path if path.endswith("/") else path + "/"


def _publish(
    context: Context,
    row: ResourceRow,
    method: str,
    at: int,
    figures: list[attribution.Figure],
) -> None:
    folder = _folder(row)
    assert folder is not None
    location = f"{folder}{REPORT_PREFIX} - {method} - {at}.csv"
    scratch = context.data_dir / "scratch" / f"metric-attribution-{uuid.uuid4().hex}.csv"
    scratch.parent.mkdir(parents=True, exist_ok=True)
    settings = context.settings
    store = batch_inference_jobs.Store(
        settings.s3_endpoint_url,
        Path(settings.s3_local_root) if settings.s3_local_root else None,
    )
    try:
        scratch.write_text(attribution.report_csv(figures))
        store.store(scratch, location)
    finally:
        scratch.unlink(missing_ok=True)
    log.info("metric attribution %s: %d figures in %s", row.arn, len(figures), location)


def _record_failure(context: Context, arn: str, reason: str) -> None:
    """A report that could not be written is said on the attribution, which stays ACTIVE."""
    with context.database.transaction() as session:
        row = lifecycle.find(session, arn)
        if row is not None:
            row.failure_reason = reason


runner.register(REPORT_JOB, _report_streamed, _report_failed)
