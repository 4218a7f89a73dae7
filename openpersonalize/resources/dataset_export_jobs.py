"""Dataset export jobs: a dataset's data as CSV files in S3.

`ingestionMode` chooses what is exported (default PUT, as the service): BULK the imported
data, PUT what arrived through personalize-events (PutEvents, PutItems, PutUsers), ALL
both. Files go to ``<output path><jobName>/``, one ``part-NNNNN.csv`` per imported file
(BULK) plus one for the streamed data (PUT), each with a header row of the schema's field
names in schema order. Imported files are read a batch of rows at a time, so a large dataset
never sits in memory whole. Records identical in every field are written once per part; with
ALL, an Items or Users dataset keeps only the newest record of each ID (streamed records are
newer than imported ones). Actions and Action_Interactions datasets cannot be exported.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from openpersonalize.context import Context
from openpersonalize.data import streamed
from openpersonalize.data.importer import arrow_schema_of
from openpersonalize.data.schema import Schema
from openpersonalize.data.sources import parse_s3_location
from openpersonalize.errors import InvalidInputException
from openpersonalize.jobs import runner
from openpersonalize.resources import batch_inference_jobs as batch
from openpersonalize.resources import datasets, lifecycle, schemas

KIND = lifecycle.Kind(
    "dataset-export-job", "datasetExportJobArn", "dataset export job", name_key="jobName"
)
BULK, PUT, ALL = "BULK", "PUT", "ALL"
NOT_EXPORTABLE = ("Actions", "Action_Interactions")
BATCH_ROWS = 100_000


def create(context: Context, request: dict[str, Any]) -> dict[str, Any]:
    mode = request.get("ingestionMode") or PUT
    output_path = request["jobOutput"]["s3DataDestination"]["path"]
    batch.check_output_path(output_path)
    name = request["jobName"]
    arn = context.arn(KIND.resource_type, name)
    with context.database.transaction() as session:
        dataset = lifecycle.get(session, datasets.KIND, request["datasetArn"])
        lifecycle.require_usable(dataset, datasets.KIND)
        if dataset.attributes["datasetType"] in NOT_EXPORTABLE:
            raise InvalidInputException(
                f"The dataset {dataset.arn} is an {dataset.attributes['datasetType']} dataset; "
                "only Interactions, Items and Users datasets can be exported."
            )
        lifecycle.create_pending(
            session,
            KIND,
            arn=arn,
            name=name,
            now=context.now(),
            parent_arn=dataset.arn,
            attributes={
                "datasetArn": dataset.arn,
                "ingestionMode": mode,
                "roleArn": request["roleArn"],
                "jobOutput": request["jobOutput"],
            },
            job="dataset_export",
            tags=request.get("tags"),
        )
    return {"datasetExportJobArn": arn}


describe = lifecycle.describe_handler(KIND, "datasetExportJob")
list_ = lifecycle.list_handler(KIND, "datasetExportJobs", parent=datasets.KIND)


def _run(job: runner.JobHandle) -> None:
    context = job.context
    row = lifecycle.begin_job(context, KIND, job.resource_arn)
    attributes = dict(row.attributes)
    with context.database.transaction() as session:
        dataset = lifecycle.get(session, datasets.KIND, attributes["datasetArn"])
        dataset_type = dataset.attributes["datasetType"]
        schema = schemas.load(lifecycle.get(session, schemas.KIND, dataset.attributes["schemaArn"]))
        files = list(dataset.attributes.get("files", []))
        if dataset_type == "Interactions":
            put = streamed.events_table(session, dataset.arn, schema)
        else:
            id_field = "ITEM_ID" if dataset_type == "Items" else "USER_ID"
            put = streamed.records_table(session, dataset.arn, schema, id_field)
    mode = attributes["ingestionMode"]
    output_path = attributes["jobOutput"]["s3DataDestination"]["path"]
    out_bucket, out_prefix = parse_s3_location(output_path)
    settings = context.settings
    store = batch.Store(
        settings.s3_endpoint_url,
        Path(settings.s3_local_root) if settings.s3_local_root else None,
    )
    folder = f"s3://{out_bucket}/{out_prefix}{row.name}/"
    scratch = context.data_dir / "scratch" / f"dataset-export-{job.job_id}"
    scratch.mkdir(parents=True, exist_ok=True)
    written = rows = 0
    try:
        parts: list[Any] = []
        newest_only = mode == ALL and dataset_type != "Interactions"
        if newest_only:  # Items / Users: one record per ID, streamed ones newest
            parts.append(_newest_per_id(context, files, put, schema, dataset_type))
        else:
            if mode in (BULK, ALL):
                parts += [context.blobs.local_path(key) for key in files]
            if mode in (PUT, ALL):
                parts.append(put)
        for number, part in enumerate(parts):
            local = scratch / f"part-{number:05d}.csv"
            rows += _write_csv(part, schema, local)
            store.store(local, f"{folder}part-{number:05d}.csv")
            written += 1
            job.progress((number + 1) / len(parts), f"part {number}: {folder}")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    lifecycle.finish_job(context, KIND, job.resource_arn)
    job.progress(
        1.0, f"{rows} {mode} records of {attributes['datasetArn']} in {written} file(s) at {folder}"
    )


def _batches(part: Any, schema: Schema) -> Any:
    """Record batches of one part in schema order: a Parquet file read in slices, or a table."""
    names = schema.names
    if isinstance(part, pa.Table):
        yield from part.select(names).to_batches(BATCH_ROWS)
        return
    parquet = pq.ParquetFile(part)
    present = [n for n in names if n in parquet.schema_arrow.names]
    target = arrow_schema_of(schema)
    for piece in parquet.iter_batches(batch_size=BATCH_ROWS, columns=present):
        table = pa.Table.from_batches([piece])
        for name in names:  # a field added by UpdateDataset after this import: empty
            if name not in table.column_names:
                table = table.append_column(name, pa.nulls(len(table), target.field(name).type))
        yield from table.select(names).to_batches()


def _write_csv(part: Any, schema: Schema, target: Path) -> int:
    """The part as CSV (header: the schema's field names). Records identical in every field
    are written once within each batch of rows (duplicates sit side by side in imported
    files; a set of every row seen would not fit in memory for 20M rows)."""
    rows = 0
    arrow_schema = arrow_schema_of(schema)
    with pacsv.CSVWriter(target, arrow_schema) as writer:
        for piece in _batches(part, schema):
            table = pa.Table.from_batches([piece]).cast(arrow_schema)
            table = table.group_by(schema.names, use_threads=False).aggregate([])
            writer.write_table(table.select(schema.names).cast(arrow_schema))
            rows += table.num_rows
    return rows


def _newest_per_id(
    context: Context, files: list[str], put: pa.Table, schema: Schema, dataset_type: str
) -> pa.Table:
    id_field = "ITEM_ID" if dataset_type == "Items" else "USER_ID"
    parts = [context.blobs.read_parquet(key) for key in files] + [put]
    table = pa.concat_tables(
        [p.select([n for n in schema.names if n in p.column_names]) for p in parts],
        promote_options="default",
    )
    # The last row of each ID wins: reverse, keep each ID's first occurrence, restore order.
    reversed_rows = table.take(pa.array(range(table.num_rows - 1, -1, -1), type=pa.int64()))
    ids = reversed_rows.column(id_field)
    firsts = pc.index_in(pc.unique(ids), value_set=ids).to_numpy(zero_copy_only=False)
    chosen = np.sort(firsts)[::-1]  # back to the original order of the rows kept
    return reversed_rows.take(pa.array(chosen, type=pa.int64()))


runner.register("dataset_export", _run, batch.fail_job)
