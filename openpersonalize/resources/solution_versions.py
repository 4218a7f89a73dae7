"""Solution versions: one training run of a solution, in its own process so a stop really stops it.

A worker claims the "train" job and starts the training process (or Ray task, see
training/executors.py); while it runs, the worker watches for StopSolutionVersionCreation
and kills it, with its HPO trials, if asked. The training process writes the model and a
result file; the worker records the outcome. A worker (or server) killed mid-training leaves
a job whose lease expires, and the job is run again or failed with a reason.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from sqlalchemy import select

from openpersonalize import arns
from openpersonalize.context import Context
from openpersonalize.errors import (
    InvalidInputException,
    ResourceInUseException,
)
from openpersonalize.jobs import runner
from openpersonalize.recipes import catalog
from openpersonalize.resources import lifecycle, solutions, tags
from openpersonalize.store.database import ResourceRow
from openpersonalize.training import executors

KIND = lifecycle.Kind(
    solutions.VERSION_KIND_NAME,
    "solutionVersionArn",
    "solution version",
    name_scoped_to_parent=True,
    arn_type="solution",
)
# Recipes whose models can be refreshed with new users and items without a full retrain.
UPDATE_RECIPES = ("aws-user-personalization", "aws-hrnn-coldstart")
MAX_VERSIONS_IN_FLIGHT = 20  # per account, as the service's quota
# Solution fields a version copies: it describes the configuration it was trained with.
COPIED_FIELDS = (
    "performHPO",
    "performAutoML",
    "performIncrementalUpdate",
    "recipeArn",
    "eventType",
    "datasetGroupArn",
    "solutionConfig",
)


def solution_models_key(solution_name: str) -> str:
    """Where a solution's models live in the blob store: models/<solution>/."""
    return f"models/{solution_name}"


def model_key(version_arn: str) -> str:
    """Where a version's model lives in the blob store: models/<solution>/<version>/."""
    solution_name, version_id = arns.parse(version_arn, "solution").resource.split("/", 1)
    return f"{solution_models_key(solution_name)}/{version_id}"


def create(context: Context, request: dict[str, Any]) -> dict[str, Any]:
    mode = request.get("trainingMode", "FULL")
    if mode == "AUTOTRAIN":
        raise InvalidInputException(
            "trainingMode AUTOTRAIN is reserved for versions that automatic training creates; "
            "use FULL or UPDATE."
        )
    with context.database.transaction() as session:
        solution = lifecycle.get(session, solutions.KIND, request["solutionArn"])
        arn = start_version(
            context,
            session,
            solution,
            mode=mode,
            training_type="MANUAL",
            name=request.get("name"),
        )
        tags.put_tags(session, arn, request.get("tags"))
    return {"solutionVersionArn": arn}


def start_version(
    context: Context,
    session: Any,
    solution: ResourceRow,
    *,
    mode: str,
    training_type: str,
    name: str | None = None,
) -> str:
    """Record a new version and its training job (inside the caller's transaction)."""
    lifecycle.require_usable(solution, solutions.KIND)
    in_flight = lifecycle.child_in_flight(session, solution.arn)
    if in_flight:
        raise ResourceInUseException(
            f"The solution {solution.arn} already has a version in training: {in_flight}"
        )
    lifecycle.require_room_in_flight(session, KIND, MAX_VERSIONS_IN_FLIGHT)
    if mode == "UPDATE":
        _check_update_allowed(session, solution)
    version_id = uuid.uuid4().hex[:8]
    arn = f"{solution.arn}/{version_id}"
    now = context.now()
    attributes = {
        key: solution.attributes[key] for key in COPIED_FIELDS if key in solution.attributes
    }
    attributes.update(solutionArn=solution.arn, trainingMode=mode, trainingType=training_type)
    lifecycle.insert(
        session,
        KIND,
        arn=arn,
        name=name or version_id,
        now=now,
        status=lifecycle.CREATE_PENDING,
        parent_arn=solution.arn,
        attributes=attributes,
    )
    runner.enqueue(session, "train", arn, now, max_attempts=2)
    if training_type == "MANUAL":
        solutions_attributes = {"lastManualVersionAt": now}
        lifecycle.update_attributes(solution, solution.updated_at, **solutions_attributes)
    return arn


def _check_update_allowed(session: Any, solution: ResourceRow) -> None:
    recipe_arn = solution.attributes.get("recipeArn")
    recipe_name = catalog.get_recipe(recipe_arn).name if recipe_arn else "AutoML"
    if recipe_name not in UPDATE_RECIPES:
        raise InvalidInputException(
            f"trainingMode UPDATE is only for the {' and '.join(UPDATE_RECIPES)} recipes; "
            f"the solution uses {recipe_name}."
        )
    active = session.scalars(
        select(ResourceRow).where(
            ResourceRow.resource_type == KIND.resource_type,
            ResourceRow.parent_arn == solution.arn,
            ResourceRow.status == lifecycle.ACTIVE,
        )
    )
    # AUTOTRAIN versions are full retrains too.
    if not any(row.attributes.get("trainingMode") in ("FULL", "AUTOTRAIN") for row in active):
        raise InvalidInputException(
            f"trainingMode UPDATE needs an ACTIVE FULL solution version of {solution.arn}; "
            "train one with trainingMode FULL first."
        )


def describe(context: Context, request: dict[str, Any]) -> dict[str, Any]:
    with context.database.transaction() as session:
        row = lifecycle.get(session, KIND, request["solutionVersionArn"])
        return {"solutionVersion": lifecycle.describe(row, KIND)}


list_ = lifecycle.list_handler(KIND, "solutionVersions", parent=solutions.KIND)


def stop(context: Context, request: dict[str, Any]) -> dict[str, Any]:
    """StopSolutionVersionCreation: pending stops at once; in progress goes through STOPPING."""
    arn = request["solutionVersionArn"]
    now = context.now()
    with context.database.transaction() as session:
        row = lifecycle.get(session, KIND, arn)
        if row.status == lifecycle.CREATE_PENDING:
            lifecycle.set_status(row, lifecycle.CREATE_STOPPED, now)
        elif row.status == lifecycle.CREATE_IN_PROGRESS:
            lifecycle.set_status(row, lifecycle.CREATE_STOPPING, now)
        else:
            raise ResourceInUseException(
                f"The solution version {arn} is {row.status}; only a version that is "
                "CREATE PENDING or CREATE IN_PROGRESS can be stopped."
            )
        runner.request_cancel(session, arn)
    return {}


def get_metrics(context: Context, request: dict[str, Any]) -> dict[str, Any]:
    arn = request["solutionVersionArn"]
    with context.database.transaction() as session:
        row = lifecycle.get(session, KIND, arn)
        if row.status != lifecycle.ACTIVE:
            raise ResourceInUseException(
                f"The solution version {arn} is {row.status}; metrics exist once it is ACTIVE."
            )
        return {"solutionVersionArn": arn, "metrics": row.attributes.get("metrics", {})}


def _run(job: runner.JobHandle) -> None:
    """Train in a child process; kill it if a stop is requested; record the outcome."""
    context = job.context
    with context.database.transaction() as session:
        solution_arn = lifecycle.get(session, KIND, job.resource_arn).attributes["solutionArn"]
    # A version may be asked for while its solution is still CREATE PENDING.
    lifecycle.await_active(context, solutions.KIND, solution_arn)
    with context.database.transaction() as session:
        row = lifecycle.get(session, KIND, job.resource_arn)
        if row.status in (lifecycle.CREATE_STOPPED, lifecycle.CREATE_STOPPING):
            lifecycle.set_status(row, lifecycle.CREATE_STOPPED, context.now())
            return
        if row.status == lifecycle.CREATE_IN_PROGRESS:  # a retry after a lost worker
            job.progress(0.0, "training again after the previous attempt was interrupted")
        lifecycle.set_status(row, lifecycle.CREATE_IN_PROGRESS, context.now())
    key = model_key(job.resource_arn)
    result = run_training(job, job.resource_arn, key)
    if result is None:
        _finish_stopped(context, job.resource_arn)
        job.progress(1.0, "stopped")
        return
    hours = result["trainingHours"]
    with context.database.transaction() as session:
        row = lifecycle.get(session, KIND, job.resource_arn)
        if row.status == lifecycle.CREATE_STOPPING:  # stop arrived as training finished
            lifecycle.set_status(row, lifecycle.CREATE_STOPPED, context.now())
            return
        lifecycle.update_attributes(
            row,
            context.now(),
            metrics=result["metrics"],
            trainingHours=hours,
            tunedHPOParams=result.get("tunedHPOParams"),
            extendedMetrics=result.get("extendedMetrics"),
            trials=result.get("trials"),
            modelKey=key,
        )
        lifecycle.set_status(row, lifecycle.ACTIVE, context.now())
        from openpersonalize.resources.campaigns import follow_latest

        follow_latest(session, row.attributes["solutionArn"], row.arn, context.now())
        if result.get("autoMLResult"):
            solution = lifecycle.get(session, solutions.KIND, row.attributes["solutionArn"])
            lifecycle.update_attributes(
                solution, solution.updated_at, autoMLResult=result["autoMLResult"]
            )


def run_training(job: runner.JobHandle, arn: str, key: str) -> dict[str, Any] | None:
    """Train the version-like record `arn` in a training task (a process or a Ray task) that
    writes the model at `key`; return its result.json with `trainingHours` added, or None when
    the job was asked to stop (the task is killed: its HPO trials really stop too)."""
    from openpersonalize.training.train import train_process_main

    context = job.context
    blobs = context.blobs
    blobs.delete(key)  # what an interrupted attempt left
    started = time.monotonic()
    executor = executors.for_settings(context.settings)
    task = executor.submit(
        train_process_main, context.settings, arn, key, name=f"train-{arn.rsplit('/', 1)[1]}"
    )
    while not executors.wait_any([task], timeout=0.25):
        if job.cancel_requested():
            task.kill()
            blobs.delete(key)
            return None
    try:
        task.result()
    except executors.TaskFailed as error:
        blobs.delete(key)
        raise TrainingFailed(f"The training process {error}.") from error
    written = blobs.read_bytes(f"{key}/result.json")
    if written is None:
        failure = blobs.read_bytes(f"{key}/failure.txt")
        blobs.delete(key)
        raise TrainingFailed(failure.decode() if failure else "Training wrote no result.")
    result: dict[str, Any] = json.loads(written)
    # Compute time, not wall time: the training process's own plus every HPO trial's, however
    # many ran at once.
    seconds = time.monotonic() - started
    seconds += result.get("trialSeconds", 0.0) - result.get("searchSeconds", 0.0)
    result["trainingHours"] = seconds / 3600.0
    return result


class TrainingFailed(Exception):
    """The training process failed; the message is the version's failureReason."""


def _finish_stopped(context: Context, arn: str) -> None:
    with context.database.transaction() as session:
        row = lifecycle.find(session, arn)
        if row is not None and row.status in (
            lifecycle.CREATE_STOPPING,
            lifecycle.CREATE_IN_PROGRESS,
        ):
            if row.status == lifecycle.CREATE_IN_PROGRESS:
                lifecycle.set_status(row, lifecycle.CREATE_STOPPING, context.now())
            lifecycle.set_status(row, lifecycle.CREATE_STOPPED, context.now())


def _fail(context: Context, arn: str, reason: str) -> None:
    with context.database.transaction() as session:
        row = lifecycle.find(session, arn)
        if row is None:
            return
        if row.status == lifecycle.CREATE_STOPPING:
            lifecycle.set_status(row, lifecycle.CREATE_STOPPED, context.now())
        elif row.status in lifecycle.IN_FLIGHT:
            lifecycle.set_status(row, lifecycle.CREATE_FAILED, context.now(), reason)


def remove_solution_data(context: Context, solution: ResourceRow) -> None:
    """Delete a solution's versions and model files (the solution row goes after)."""
    with context.database.transaction() as session:
        for row in session.scalars(
            select(ResourceRow).where(
                ResourceRow.resource_type == KIND.resource_type,
                ResourceRow.parent_arn == solution.arn,
            )
        ):
            lifecycle.remove(session, row)
    context.blobs.delete(solution_models_key(solution.name))


runner.register("train", _run, _fail)
