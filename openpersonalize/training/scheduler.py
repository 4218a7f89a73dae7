"""Automatic training: a new version of each solution with performAutoTraining on its schedule.

The schedule lives in the solution's record (`nextAutoTrainingAt`), so it
survives restarts; workers call `run_due_auto_training` periodically, and the
compare-and-set on `nextAutoTrainingAt` makes two workers start one version,
not two. Time comes from the context's clock, which tests move by hand.
"""

from __future__ import annotations

import logging

from sqlalchemy import select
from sqlalchemy.orm import Session

from openpersonalize.context import Context
from openpersonalize.data.streamed import latest_event_time
from openpersonalize.errors import ServiceError
from openpersonalize.resources import lifecycle, solution_versions, solutions
from openpersonalize.store.database import ResourceRow

log = logging.getLogger("openpersonalize.scheduler")
RETRY_SECONDS = 600.0  # a round skipped because a version is still training is retried this soon


def run_due_auto_training(context: Context) -> list[str]:
    """Start every automatic version that is due; return their ARNs."""
    now = context.now()
    started: list[str] = []
    with context.database.transaction() as session:
        due = [
            row
            for row in session.scalars(
                select(ResourceRow)
                .where(
                    ResourceRow.resource_type == solutions.KIND.resource_type,
                    ResourceRow.status == lifecycle.ACTIVE,
                )
                .with_for_update()  # on PostgreSQL: one worker at a time decides
            )
            if row.attributes.get("performAutoTraining")
            and row.attributes.get("nextAutoTrainingAt") is not None
            and row.attributes["nextAutoTrainingAt"] <= now
        ]
        for solution in due:
            arn = _run_one(context, session, solution, now)
            if arn:
                started.append(arn)
    return started


def _run_one(context: Context, session: Session, solution: ResourceRow, now: float) -> str | None:
    attributes = solution.attributes
    due_at = attributes["nextAutoTrainingAt"]
    expression = (
        (attributes.get("solutionConfig") or {})
        .get("autoTrainingConfig", {})
        .get("schedulingExpression", solutions.DEFAULT_SCHEDULE)
    )
    interval = solutions.schedule_seconds(expression)
    last_auto = attributes.get("lastAutoTrainingAt")
    last_manual = attributes.get("lastManualVersionAt")
    if (
        last_auto is None
        and last_manual is not None
        and last_manual >= due_at - solutions.FIRST_AUTO_TRAINING_DELAY
    ):
        # A manual version in the first hour replaces the first automatic one.
        lifecycle.update_attributes(
            solution,
            solution.updated_at,
            nextAutoTrainingAt=due_at + interval,
            lastAutoTrainingAt=due_at,
        )
        log.info(
            "%s: first automatic training skipped (manual version at %s)", solution.arn, last_manual
        )
        return None
    if last_auto is not None and not new_data_since(session, solution.parent_arn or "", last_auto):
        lifecycle.update_attributes(
            solution, solution.updated_at, nextAutoTrainingAt=due_at + interval
        )
        log.info(
            "%s: no new interactions since the last training; automatic training skipped",
            solution.arn,
        )
        return None
    try:
        arn = solution_versions.start_version(
            context, session, solution, mode="AUTOTRAIN", training_type="AUTOMATIC"
        )
    except ServiceError as error:  # e.g. a version is still training: try again soon
        lifecycle.update_attributes(
            solution, solution.updated_at, nextAutoTrainingAt=now + RETRY_SECONDS
        )
        log.info("%s: automatic training postponed: %s", solution.arn, error.message)
        return None
    lifecycle.update_attributes(
        solution, solution.updated_at, nextAutoTrainingAt=due_at + interval, lastAutoTrainingAt=now
    )
    log.info("%s: automatic training started: %s", solution.arn, arn)
    return arn


def new_data_since(session: Session, dataset_group_arn: str, since: float) -> bool:
    """Bulk imports or streamed events since `since` (the service retrains only then)."""
    interactions = solutions.datasets_of(session, dataset_group_arn).get("Interactions")
    if interactions is None:
        return False
    streamed = latest_event_time(session, interactions.arn)
    return interactions.updated_at > since or (streamed is not None and streamed > since)
