"""Resources on one lifecycle. Importing this package registers every job kind."""

from __future__ import annotations

from openpersonalize.context import Context
from openpersonalize.jobs import runner
from openpersonalize.resources import (
    batch_inference_jobs,
    batch_segment_jobs,
    campaigns,
    data_deletion_jobs,
    dataset_export_jobs,
    dataset_groups,
    dataset_import_jobs,
    datasets,
    event_trackers,
    filters,
    lifecycle,
    metric_attributions,
    recipes,
    recommenders,
    schemas,
    solution_versions,
    solutions,
    tags,
)
from openpersonalize.store.database import ResourceRow

# Cleanup a resource type needs before its row goes (by ARN resource type).
_CLEANUP = {
    datasets.KIND.resource_type: datasets.remove_data,
    solutions.KIND.resource_type: solution_versions.remove_solution_data,
    recommenders.KIND.resource_type: recommenders.remove_recommender_data,
    dataset_groups.KIND.resource_type: data_deletion_jobs.forget_group,
}


def _activate(job: runner.JobHandle) -> None:
    """CREATE PENDING -> CREATE IN_PROGRESS -> ACTIVE for resources with no real work to do."""
    context = job.context
    with context.database.transaction() as session:
        row = lifecycle.find(session, job.resource_arn)
        if row is not None and row.status == lifecycle.CREATE_PENDING:
            lifecycle.set_status(row, lifecycle.CREATE_IN_PROGRESS, context.now())
    with context.database.transaction() as session:
        row = lifecycle.find(session, job.resource_arn)
        if row is not None and row.status == lifecycle.CREATE_IN_PROGRESS:
            lifecycle.set_status(row, lifecycle.ACTIVE, context.now())


def _delete(job: runner.JobHandle) -> None:
    context = job.context
    with context.database.transaction() as session:
        row = lifecycle.find(session, job.resource_arn)
        if row is None:
            return
        lifecycle.set_status(row, lifecycle.DELETE_IN_PROGRESS, context.now())
    cleanup = _CLEANUP.get(row.resource_type)
    if cleanup is not None:
        cleanup(context, row)
    with context.database.transaction() as session:
        row = lifecycle.find(session, job.resource_arn)
        if row is not None:
            lifecycle.remove(session, row)


def fail_creation(context: Context, arn: str, reason: str) -> None:
    """Record why a create or delete could not finish, on the resource itself."""
    with context.database.transaction() as session:
        row: ResourceRow | None = lifecycle.find(session, arn)
        if row is None:
            return
        if row.status in lifecycle.DELETING:
            # A failed delete leaves the resource usable, with the reason.
            row.status, row.failure_reason = lifecycle.ACTIVE, f"Delete failed: {reason}"
        elif row.status in lifecycle.IN_FLIGHT:
            lifecycle.set_status(row, lifecycle.CREATE_FAILED, context.now(), reason)


runner.register("activate", _activate, fail_creation)
runner.register("delete", _delete, fail_creation)


def _auto_training(context: Context) -> None:
    from openpersonalize.training.scheduler import run_due_auto_training

    run_due_auto_training(context)
    recommenders.run_due_retraining(context)


runner.register_periodic(_auto_training, every_seconds=5.0)
runner.register_periodic(
    metric_attributions.schedule_streamed_reports,
    every_seconds=metric_attributions.REPORT_EVERY_SECONDS,
)

__all__ = [
    "batch_inference_jobs",
    "batch_segment_jobs",
    "campaigns",
    "filters",
    "data_deletion_jobs",
    "dataset_export_jobs",
    "dataset_groups",
    "dataset_import_jobs",
    "datasets",
    "event_trackers",
    "lifecycle",
    "metric_attributions",
    "recipes",
    "recommenders",
    "schemas",
    "solution_versions",
    "solutions",
    "tags",
]
