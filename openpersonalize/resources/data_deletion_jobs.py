"""Data deletion jobs: remove users, and everything recorded about them, from a dataset group.

The input is CSV with a USER_ID column (one file, or every .csv file under a folder and its
sub-folders). The job rewrites each imported Parquet file that holds one of the users without
their rows (Interactions, Users, Action_Interactions), and in one transaction points the
datasets at the rewritten files, deletes the users' streamed events and PutUsers records,
records the users as deleted, and completes. A crash before that transaction changes nothing
(the retry starts over); after it the job is done. So training never sees the users again,
and models trained before the deletion stop answering for them: the hot path treats a deleted
user as one the model never met (`deleted_users`).

`numDeleted` counts the records removed: dataset rows, streamed events and PutUsers records.
Statuses are the service's own for this resource: PENDING > IN_PROGRESS > COMPLETED | FAILED.
"""

from __future__ import annotations

import csv
import io
import shutil
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from openpersonalize.context import Context
from openpersonalize.data.importer import CsvSource, ImportFailed
from openpersonalize.data.sources import resolve_with_settings
from openpersonalize.errors import InvalidInputException, LimitExceededException
from openpersonalize.jobs import runner
from openpersonalize.resources import dataset_groups, datasets, lifecycle, solutions
from openpersonalize.store.database import DeletedUserRow, EventRow, RecordRow, ResourceRow

KIND = lifecycle.Kind(
    "data-deletion-job", "dataDeletionJobArn", "data deletion job", name_key="jobName"
)
PENDING, IN_PROGRESS = lifecycle.PENDING, lifecycle.IN_PROGRESS
COMPLETED, FAILED = lifecycle.COMPLETED, lifecycle.FAILED
MAX_PENDING_PER_GROUP = 5  # the service's quota (adjustable there)
MAX_INPUT_BYTES = 100 * 1024 * 1024
# Dataset types whose rows belong to a user (Items and Actions do not).
USER_DATASETS = ("Interactions", "Users", "Action_Interactions")
_CHUNK = 500  # user IDs per SQL IN (...) list


def create(context: Context, request: dict[str, Any]) -> dict[str, Any]:
    location = (request.get("dataSource") or {}).get("dataLocation")
    if not location:
        raise InvalidInputException("dataSource.dataLocation (the CSV of user IDs) is required.")
    if not location.startswith("s3://"):
        raise InvalidInputException(f"dataLocation {location} must be an s3:// location.")
    name = request["jobName"]
    arn = context.arn(KIND.resource_type, name)
    with context.database.transaction() as session:
        group = lifecycle.get(session, dataset_groups.KIND, request["datasetGroupArn"])
        lifecycle.require_usable(group, dataset_groups.KIND)
        pending = session.scalars(
            select(ResourceRow.arn).where(
                ResourceRow.resource_type == KIND.resource_type,
                ResourceRow.parent_arn == group.arn,
                ResourceRow.status == PENDING,
            )
        ).all()
        if len(pending) >= MAX_PENDING_PER_GROUP:
            raise LimitExceededException(
                f"The dataset group {group.arn} already has {len(pending)} PENDING data "
                f"deletion jobs; the limit is {MAX_PENDING_PER_GROUP}."
            )
        lifecycle.create_pending(
            session,
            KIND,
            arn=arn,
            name=name,
            now=context.now(),
            parent_arn=group.arn,
            attributes={
                "datasetGroupArn": group.arn,
                "dataSource": {"dataLocation": location},
                "roleArn": request["roleArn"],
            },
            job="data_deletion",
            tags=request.get("tags"),
            status=PENDING,
        )
    return {"dataDeletionJobArn": arn}


describe = lifecycle.describe_handler(KIND, "dataDeletionJob")
list_ = lifecycle.list_handler(KIND, "dataDeletionJobs", parent=dataset_groups.KIND)


def deleted_users(session: Session, group_arn: str, since: float) -> list[str]:
    """The group's users whose data was deleted at or after `since`."""
    return list(
        session.scalars(
            select(DeletedUserRow.user_id).where(
                DeletedUserRow.dataset_group_arn == group_arn,
                DeletedUserRow.deleted_at >= since,
            )
        )
    )


def _run(job: runner.JobHandle) -> None:
    context = job.context
    with context.database.transaction() as session:
        row = lifecycle.get(session, KIND, job.resource_arn)
        lifecycle.set_status(row, IN_PROGRESS, context.now())
        group_arn, name = row.parent_arn or "", row.name
        location = row.attributes["dataSource"]["dataLocation"]
    scratch = context.data_dir / "scratch" / f"data-deletion-{job.job_id}"
    try:
        users = _read_user_ids(context, location, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    job.progress(0.1, f"{len(users)} users to delete from {group_arn}")
    with context.database.transaction() as session:
        targets = {
            dataset.arn: list(dataset.attributes.get("files", []))
            for dataset in solutions.datasets_of(session, group_arn).values()
            if dataset.attributes["datasetType"] in USER_DATASETS
        }
    # Rewritten files first, outside any transaction: old key -> new key (None: no rows left).
    replacements: dict[str, dict[str, str | None]] = {}
    removed_rows: dict[str, dict[str, int]] = {}
    for number, (dataset_arn, files) in enumerate(targets.items()):
        replacements[dataset_arn], removed_rows[dataset_arn] = _rewrite(
            context, files, users, f"{datasets.data_key(dataset_arn)}/deletion-{name}"
        )
        job.progress(0.1 + 0.8 * (number + 1) / max(len(targets), 1), dataset_arn)
    deleted, unused = _commit(
        context, job.resource_arn, group_arn, users, replacements, removed_rows
    )
    for key in unused:
        context.blobs.delete(key)
    job.progress(1.0, f"deleted {deleted} records of {len(users)} users from {group_arn}")


def _read_user_ids(context: Context, location: str, scratch: Path) -> set[str]:
    """The user IDs of every CSV file at `location`; a bad file fails the job, naming it."""
    sources = resolve_with_settings(location, context.settings, scratch)
    users: set[str] = set()
    total = 0
    for source in sources:
        total += _user_ids_of(source, users)
        if total > MAX_INPUT_BYTES:
            raise ImportFailed(
                f"The input at {location} is larger than {MAX_INPUT_BYTES // (1024 * 1024)} MB."
            )
    if not users:
        raise ImportFailed(f"No user IDs in {location}: give a CSV with a USER_ID column.")
    return users


def _user_ids_of(source: CsvSource, users: set[str]) -> int:
    """Add the USER_ID column of one CSV file to `users`; returns the file's size in bytes."""
    with source.open() as stream:
        data = stream.read(MAX_INPUT_BYTES + 1)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ImportFailed(f"{source.name} is not UTF-8 text: {error}") from None
    reader = csv.reader(io.StringIO(text))
    header = [name.strip().upper() for name in next(reader, [])]
    if "USER_ID" not in header:
        raise ImportFailed(f"{source.name} has no USER_ID column (its header is {header}).")
    column = header.index("USER_ID")
    for line, record in enumerate(reader, start=2):
        if not record:
            continue
        user_id = record[column].strip() if column < len(record) else ""
        if not user_id:
            raise ImportFailed(f"{source.name} row {line}: field USER_ID is empty.")
        if len(user_id) > 256:
            raise ImportFailed(f"{source.name} row {line}: USER_ID is longer than 256 characters.")
        users.add(user_id)
    return len(data)


def _rewrite(
    context: Context, files: list[str], users: set[str], key: str
) -> tuple[dict[str, str | None], dict[str, int]]:
    """Each file holding any of the users, rewritten without them under `key`."""
    blobs = context.blobs
    wanted = pa.array(sorted(users), type=pa.string())
    replacements: dict[str, str | None] = {}
    removed: dict[str, int] = {}
    with blobs.writing(key) as folder:
        for number, file_key in enumerate(files):
            if "USER_ID" not in blobs.parquet_schema(file_key).names:
                continue
            ids = blobs.read_parquet(file_key, columns=["USER_ID"]).column("USER_ID")
            matches = pc.is_in(ids, value_set=wanted).fill_null(False)
            count = pc.sum(matches).as_py() or 0
            if not count:
                continue
            table = blobs.read_parquet(file_key)
            kept = table.filter(pc.invert(matches))
            removed[file_key] = count
            if kept.num_rows == 0:
                replacements[file_key] = None
                continue
            name = f"part-{number:05d}.parquet"
            pq.write_table(kept, folder / name)
            replacements[file_key] = f"{key}/{name}"
    if not any(replacements.values()):
        blobs.delete(key)  # nothing written: leave no empty folder behind
    return replacements, removed


def _commit(
    context: Context,
    job_arn: str,
    group_arn: str,
    users: set[str],
    replacements: dict[str, dict[str, str | None]],
    removed_rows: dict[str, dict[str, int]],
) -> tuple[int, list[str]]:
    """Swap in the rewritten files, delete streamed data, record the users, complete the job:
    one transaction. Returns the records deleted and the blob folders no longer used."""
    now = context.now()
    deleted = 0
    unused: list[str] = []
    with context.database.transaction() as session:
        job_row = lifecycle.get(session, KIND, job_arn)
        group_datasets = list(solutions.datasets_of(session, group_arn).values())
        for dataset in group_datasets:
            mapping = replacements.get(dataset.arn) or {}
            if not mapping:
                continue
            old_files = list(dataset.attributes.get("files", []))
            # An import that swapped files in meanwhile keeps its files: only those we read
            # are replaced.
            new_files = [
                replaced for old in old_files if (replaced := mapping.get(old, old)) is not None
            ]
            gone = sum(
                count for old, count in removed_rows[dataset.arn].items() if old in old_files
            )
            deleted += gone
            lifecycle.update_attributes(
                dataset,
                now,
                files=new_files,
                rowCount=max(int(dataset.attributes.get("rowCount", 0)) - gone, 0),
            )
            still_used = {_folder(f) for f in new_files}
            unused += sorted({_folder(old) for old in mapping} - still_used)
        dataset_arns = [dataset.arn for dataset in group_datasets]
        users_arns = [d.arn for d in group_datasets if d.attributes["datasetType"] == "Users"]
        chunks = sorted(users)
        for start in range(0, len(chunks), _CHUNK):
            chunk = chunks[start : start + _CHUNK]
            deleted += session.execute(
                delete(EventRow).where(
                    EventRow.dataset_arn.in_(dataset_arns), EventRow.user_id.in_(chunk)
                )
            ).rowcount
            deleted += session.execute(
                delete(RecordRow).where(
                    RecordRow.dataset_arn.in_(users_arns), RecordRow.record_id.in_(chunk)
                )
            ).rowcount
            session.execute(
                delete(DeletedUserRow).where(
                    DeletedUserRow.dataset_group_arn == group_arn,
                    DeletedUserRow.user_id.in_(chunk),
                )
            )
            session.add_all(
                DeletedUserRow(dataset_group_arn=group_arn, user_id=user, deleted_at=now)
                for user in chunk
            )
        lifecycle.update_attributes(job_row, now, numDeleted=deleted)
        lifecycle.set_status(job_row, COMPLETED, now)
    return deleted, unused


def _folder(key: str) -> str:
    return key.rsplit("/", 1)[0]


def _fail(context: Context, arn: str, reason: str) -> None:
    with context.database.transaction() as session:
        row = lifecycle.find(session, arn)
        if row is not None and row.status in (PENDING, IN_PROGRESS):
            lifecycle.set_status(row, FAILED, context.now(), reason)


def forget_group(context: Context, group: ResourceRow) -> None:
    """A deleted dataset group takes its deletion jobs and deleted-user records with it."""
    with context.database.transaction() as session:
        session.execute(delete(DeletedUserRow).where(DeletedUserRow.dataset_group_arn == group.arn))
        session.execute(
            delete(ResourceRow).where(
                ResourceRow.resource_type == KIND.resource_type,
                ResourceRow.parent_arn == group.arn,
            )
        )


runner.register("data_deletion", _run, _fail)
