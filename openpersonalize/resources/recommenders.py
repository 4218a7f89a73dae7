"""Recommenders: a domain use case trained and deployed in one resource.

A recommender has no solution version for the user to manage. Each training (at creation,
after an UpdateRecommender that changes the training columns, and on the retraining
schedule) is a hidden *recommender model*: a version-like record under the recommender
(`<recommenderArn>/<id>`) that the same training job and code as solution versions train.
The recommender serves its `servingModelArn` and switches to a new model only once that
model is ACTIVE, so the old one answers every request meanwhile.

States (spec §2.5): CREATE PENDING > CREATE IN_PROGRESS > ACTIVE | CREATE FAILED;
ACTIVE > STOP PENDING > STOP IN_PROGRESS > INACTIVE > START PENDING > START IN_PROGRESS >
ACTIVE; DELETE PENDING > DELETE IN_PROGRESS > gone. Updates show in latestRecommenderUpdate.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from openpersonalize.context import Context
from openpersonalize.errors import (
    InvalidInputException,
    LimitExceededException,
    ResourceInUseException,
)
from openpersonalize.jobs import runner
from openpersonalize.recipes import catalog
from openpersonalize.resources import campaigns, dataset_groups, lifecycle, solution_versions
from openpersonalize.resources.solutions import datasets_of
from openpersonalize.resources.tags import put_tags
from openpersonalize.store.database import ResourceRow

log = logging.getLogger("openpersonalize.recommenders")

KIND = lifecycle.Kind("recommender", "recommenderArn", "recommender")
MODEL_KIND = lifecycle.Kind(
    "recommender-model",
    "recommenderModelArn",
    "recommender model",
    name_scoped_to_parent=True,
    arn_type="recommender",
)
MAX_PER_DATASET_GROUP, MAX_PER_ACCOUNT = 5, 15  # the service's quotas
FULL_RETRAIN_SECONDS = 7 * 86400.0  # every recommender is retrained weekly
NEW_ITEMS_UPDATE_SECONDS = 2 * 3600.0  # personalized ones every 2 hours, to take in new items
CREATE, UPDATE, RETRAIN = "create", "update", "retrain"  # why a model is trained
# States in which a recommender is between two steady states and refuses other changes.
TRANSITIONAL = (
    *lifecycle.IN_FLIGHT,
    lifecycle.STOP_PENDING,
    lifecycle.STOP_IN_PROGRESS,
    lifecycle.START_PENDING,
    lifecycle.START_IN_PROGRESS,
    *lifecycle.DELETING,
)


def models_key(recommender_name: str) -> str:
    """Where a recommender's models live in the blob store."""
    return f"recommender-models/{recommender_name}"


def model_key(model_arn: str) -> str:
    """Where one of its models lives: recommender-models/<recommender>/<model id>."""
    recommender_name, model_id = model_arn.rsplit("/", 2)[-2:]
    return f"{models_key(recommender_name)}/{model_id}"


def create(context: Context, request: dict[str, Any]) -> dict[str, Any]:
    name = request["name"]
    arn = context.arn(KIND.resource_type, name)
    config = request.get("recommenderConfig") or {}
    now = context.now()
    with context.database.transaction() as session:
        group = lifecycle.get(session, dataset_groups.KIND, request["datasetGroupArn"])
        lifecycle.require_usable(group, dataset_groups.KIND)
        recipe = use_case_recipe(request["recipeArn"], group)
        check_config(session, recipe, group, config)
        _check_quotas(session, group.arn)
        lifecycle.insert(
            session,
            KIND,
            arn=arn,
            name=name,
            now=now,
            status=lifecycle.CREATE_PENDING,
            parent_arn=group.arn,
            attributes={
                "datasetGroupArn": group.arn,
                "recipeArn": recipe.arn,
                "recommenderConfig": config,
            },
        )
        put_tags(session, arn, request.get("tags"))
        _start_model(session, arn, recipe, group.arn, config, CREATE, now)
    return {"recommenderArn": arn}


def use_case_recipe(recipe_arn: str, group: ResourceRow) -> catalog.Recipe:
    """The use case a recommender of `group` may use: one of the group's own domain."""
    recipe = catalog.get_recipe(recipe_arn)
    group_domain = group.attributes.get("domain")
    if recipe.use_case is None:
        raise InvalidInputException(
            f"Only Domain dataset group use cases can be used to create a recommender; "
            f"{recipe_arn} is a custom recipe: use it with CreateSolution."
        )
    if group_domain is None:
        raise InvalidInputException(
            f"The dataset group {group.arn} is a Custom dataset group; recommenders need a "
            f"Domain dataset group (CreateDatasetGroup with domain {recipe.use_case.domain})."
        )
    if recipe.use_case.domain != group_domain:
        raise InvalidInputException(
            f"The use case {recipe_arn} belongs to the {recipe.use_case.domain} domain, but "
            f"the dataset group {group.arn} is {group_domain}."
        )
    return recipe


def check_config(
    session: Session, recipe: catalog.Recipe, group: ResourceRow, config: dict[str, Any]
) -> None:
    campaigns.check_exploration(recipe, config.get("itemExplorationConfig") or {})
    training = config.get("trainingDataConfig") or {}
    for excluded in (training.get("excludedDatasetColumns") or {}).get("INTERACTIONS") or []:
        if excluded.upper() == "EVENT_TYPE":
            raise InvalidInputException(
                "trainingDataConfig.excludedDatasetColumns cannot exclude EVENT_TYPE: every use "
                "case learns from event types."
            )
    if config.get("enableMetadataWithRecommendations"):
        if "Items" not in datasets_of(session, group.arn):
            raise InvalidInputException(
                "enableMetadataWithRecommendations needs an Items dataset with metadata "
                f"columns in the dataset group {group.arn}."
            )


def _check_quotas(session: Session, group_arn: str) -> None:
    def count(*conditions: Any) -> int:
        return int(
            session.scalar(
                select(func.count())
                .select_from(ResourceRow)
                .where(
                    ResourceRow.resource_type == KIND.resource_type,
                    ResourceRow.status.not_in(lifecycle.DELETING),
                    *conditions,
                )
            )
            or 0
        )

    if count(ResourceRow.parent_arn == group_arn) >= MAX_PER_DATASET_GROUP:
        raise LimitExceededException(
            f"The dataset group {group_arn} already has {MAX_PER_DATASET_GROUP} recommenders, "
            "the most it may have."
        )
    if count() >= MAX_PER_ACCOUNT:
        raise LimitExceededException(
            f"There are already {MAX_PER_ACCOUNT} recommenders, the most an account may have."
        )


def _start_model(
    session: Session,
    recommender_arn: str,
    recipe: catalog.Recipe,
    group_arn: str,
    config: dict[str, Any],
    purpose: str,
    now: float,
) -> str:
    """Record a model to train for the recommender, and its training job."""
    assert recipe.use_case is not None
    model_arn = f"{recommender_arn}/{uuid.uuid4().hex[:8]}"
    solution_config: dict[str, Any] = {}
    if config.get("trainingDataConfig"):
        solution_config["trainingDataConfig"] = config["trainingDataConfig"]
    attributes: dict[str, Any] = {
        "recommenderArn": recommender_arn,
        "recipeArn": recipe.arn,
        "datasetGroupArn": group_arn,
        "solutionConfig": solution_config,
        "trainingMode": "FULL",
        "purpose": purpose,
    }
    if recipe.use_case.event_type:
        attributes["eventType"] = recipe.use_case.event_type
    lifecycle.insert(
        session,
        MODEL_KIND,
        arn=model_arn,
        name=model_arn.rsplit("/", 1)[1],
        now=now,
        status=lifecycle.CREATE_PENDING,
        parent_arn=recommender_arn,
        attributes=attributes,
    )
    runner.enqueue(session, "train-recommender", model_arn, now, max_attempts=2)
    return model_arn


def describe(context: Context, request: dict[str, Any]) -> dict[str, Any]:
    with context.database.transaction() as session:
        row = lifecycle.get(session, KIND, request["recommenderArn"])
        return {"recommender": _description(row)}


def _description(row: ResourceRow) -> dict[str, Any]:
    description = lifecycle.describe(row, KIND)
    if row.status in (*lifecycle.IN_FLIGHT, *lifecycle.DELETING):
        description["modelMetrics"] = None  # the service shows none while creating or deleting
    return description


list_ = lifecycle.list_handler(KIND, "recommenders", parent=dataset_groups.KIND)


def update(context: Context, request: dict[str, Any]) -> dict[str, Any]:
    """New settings apply at once; new training columns retrain first (the old model serves)."""
    arn = request["recommenderArn"]
    now = context.now()
    with context.database.transaction() as session:
        row = lifecycle.get(session, KIND, arn)
        lifecycle.require_status(row, KIND, lifecycle.ACTIVE)
        pending = (row.attributes.get("latestRecommenderUpdate") or {}).get("status")
        if pending in (lifecycle.CREATE_PENDING, lifecycle.CREATE_IN_PROGRESS):
            raise ResourceInUseException(f"The recommender {arn} is already being updated.")
        group = lifecycle.get(session, dataset_groups.KIND, row.attributes["datasetGroupArn"])
        recipe = catalog.get_recipe(row.attributes["recipeArn"])
        old = row.attributes.get("recommenderConfig") or {}
        # Members not given keep their values: an update of the RPS floor keeps the columns.
        config = {**old, **request["recommenderConfig"]}
        check_config(session, recipe, group, config)
        record = {
            "recommenderConfig": config,
            "creationDateTime": now,
            "lastUpdatedDateTime": now,
            "status": lifecycle.ACTIVE,
        }
        if config.get("trainingDataConfig") != old.get("trainingDataConfig"):
            record["status"] = lifecycle.CREATE_PENDING
            _start_model(session, arn, recipe, group.arn, config, UPDATE, now)
            lifecycle.update_attributes(row, now, latestRecommenderUpdate=record)
        else:  # nothing to train: the same columns as before need no new model
            lifecycle.update_attributes(
                row, now, latestRecommenderUpdate=record, recommenderConfig=config
            )
    return {"recommenderArn": arn}


def _refuse_delete(session: Session, row: ResourceRow) -> None:
    if row.status in TRANSITIONAL:
        raise ResourceInUseException(
            f"The recommender {row.arn} is {row.status}; delete it once that has finished."
        )


delete = lifecycle.delete_handler(KIND, check=_refuse_delete)


def stop(context: Context, request: dict[str, Any]) -> dict[str, Any]:
    return _change_state(context, request["recommenderArn"], lifecycle.ACTIVE, "stop-recommender")


def start(context: Context, request: dict[str, Any]) -> dict[str, Any]:
    return _change_state(
        context, request["recommenderArn"], lifecycle.INACTIVE, "start-recommender"
    )


def _change_state(context: Context, arn: str, required: str, job: str) -> dict[str, Any]:
    now = context.now()
    pending = lifecycle.STOP_PENDING if job == "stop-recommender" else lifecycle.START_PENDING
    with context.database.transaction() as session:
        row = lifecycle.get(session, KIND, arn)
        lifecycle.require_status(row, KIND, required)
        lifecycle.set_status(row, pending, now)
        runner.enqueue(session, job, arn, now)
    return {"recommenderArn": arn}


def _stop(job: runner.JobHandle) -> None:
    _set_status(job, lifecycle.STOP_IN_PROGRESS)
    _set_status(job, lifecycle.INACTIVE)


def _start(job: runner.JobHandle) -> None:
    """Starting again creates no new model: the one it served loads and serves again."""
    from openpersonalize.serving.engine import MODELS

    serving = _set_status(job, lifecycle.START_IN_PROGRESS).attributes["servingModelArn"]
    MODELS.get(job.context, serving)
    _set_status(job, lifecycle.ACTIVE)


def _set_status(job: runner.JobHandle, status: str) -> ResourceRow:
    context = job.context
    with context.database.transaction() as session:
        row = lifecycle.get(session, KIND, job.resource_arn)
        if row.status != status:  # a retried job finds some steps done
            lifecycle.set_status(row, status, context.now())
        return row


def _fail_state_change(context: Context, arn: str, reason: str) -> None:
    """A stop or start that cannot finish leaves the recommender where it was, saying why."""
    with context.database.transaction() as session:
        row = lifecycle.find(session, arn)
        if row is None:
            return
        back = (
            lifecycle.ACTIVE
            if row.status in (lifecycle.STOP_PENDING, lifecycle.STOP_IN_PROGRESS)
            else lifecycle.INACTIVE
        )
        # Back to where it was, which no forward transition allows: set directly.
        row.status, row.failure_reason, row.updated_at = back, reason, context.now()


def _train(job: runner.JobHandle) -> None:
    """Train one recommender model with the solution versions' training, then serve it."""
    context = job.context
    model_arn = job.resource_arn
    with context.database.transaction() as session:
        model = lifecycle.get(session, MODEL_KIND, model_arn)
        recommender_arn = model.attributes["recommenderArn"]
        group_arn = model.attributes["datasetGroupArn"]
        purpose = model.attributes["purpose"]
    # User code creates the recommender right after the datasets and imports it started.
    lifecycle.await_active(context, dataset_groups.KIND, group_arn)
    with context.database.transaction() as session:
        model = lifecycle.get(session, MODEL_KIND, model_arn)
        lifecycle.set_status(model, lifecycle.CREATE_IN_PROGRESS, context.now())
        recommender = lifecycle.get(session, KIND, recommender_arn)
        if purpose == CREATE and recommender.status == lifecycle.CREATE_PENDING:
            lifecycle.set_status(recommender, lifecycle.CREATE_IN_PROGRESS, context.now())
        elif purpose == UPDATE:
            _set_update_status(recommender, lifecycle.CREATE_IN_PROGRESS, context.now())
    key = model_key(model_arn)
    result = solution_versions.run_training(job, model_arn, key)
    if result is None:  # cancelled: the recommender went away meanwhile
        return
    from openpersonalize.serving.engine import MODELS

    now = context.now()
    with context.database.transaction() as session:
        model = lifecycle.get(session, MODEL_KIND, model_arn)
        lifecycle.update_attributes(
            model,
            now,
            metrics=result["metrics"],
            trainingHours=result["trainingHours"],
            modelKey=key,
        )
        lifecycle.set_status(model, lifecycle.ACTIVE, now)
    MODELS.get(context, model_arn)  # loads before it serves: a switch never waits on a load
    with context.database.transaction() as session:
        recommender = lifecycle.get(session, KIND, recommender_arn)
        # The model served until now stays one more round: a request that read the old
        # record a moment ago can still load it.
        retired = recommender.attributes.get("previousModelArn")
        changes: dict[str, Any] = {
            "servingModelArn": model_arn,
            "previousModelArn": recommender.attributes.get("servingModelArn"),
            "modelMetrics": result["metrics"],
            "lastTrainedAt": now,
        }
        if purpose == UPDATE:
            record = dict(recommender.attributes.get("latestRecommenderUpdate") or {})
            record.update(status=lifecycle.ACTIVE, lastUpdatedDateTime=now)
            changes.update(
                latestRecommenderUpdate=record, recommenderConfig=record["recommenderConfig"]
            )
        lifecycle.update_attributes(recommender, now, **changes)
        if purpose == CREATE and recommender.status == lifecycle.CREATE_IN_PROGRESS:
            lifecycle.set_status(recommender, lifecycle.ACTIVE, now)
        if retired:
            _remove_model(context, session, retired)
    job.progress(1.0, f"{recommender_arn} serves {model_arn}")


def _set_update_status(row: ResourceRow, status: str, now: float, reason: str = "") -> None:
    record = dict(row.attributes.get("latestRecommenderUpdate") or {})
    record.update(status=status, lastUpdatedDateTime=now)
    if reason:
        record["failureReason"] = reason
    lifecycle.update_attributes(row, row.updated_at, latestRecommenderUpdate=record)


def _fail_training(context: Context, model_arn: str, reason: str) -> None:
    """A failed training fails the recommender's creation or update; a failed scheduled
    retraining leaves the recommender serving its current model."""
    now = context.now()
    with context.database.transaction() as session:
        model = lifecycle.find(session, model_arn)
        if model is None:
            return
        recommender = lifecycle.find(session, model.attributes["recommenderArn"])
        purpose = model.attributes["purpose"]
        recipe = model.attributes["recipeArn"]
        lifecycle.remove(session, model)
        if recommender is None:
            return
        message = f"Training the use case {recipe} failed: {reason}"
        if purpose == CREATE and recommender.status in lifecycle.IN_FLIGHT:
            lifecycle.set_status(recommender, lifecycle.CREATE_FAILED, now, message)
        elif purpose == UPDATE:
            _set_update_status(recommender, lifecycle.CREATE_FAILED, now, message)
        else:
            log.warning("%s: scheduled retraining failed: %s", recommender.arn, message)
    context.blobs.delete(model_key(model_arn))


def _remove_model(context: Context, session: Session, model_arn: str) -> None:
    model = lifecycle.find(session, model_arn)
    if model is not None:
        key = model.attributes.get("modelKey")
        lifecycle.remove(session, model)
        if key:
            context.blobs.delete(key)


def remove_recommender_data(context: Context, recommender: ResourceRow) -> None:
    """DeleteRecommender's cleanup: its models and their files (the row goes after)."""
    with context.database.transaction() as session:
        for model in session.scalars(
            select(ResourceRow).where(
                ResourceRow.resource_type == MODEL_KIND.resource_type,
                ResourceRow.parent_arn == recommender.arn,
            )
        ):
            runner.request_cancel(session, model.arn)
            lifecycle.remove(session, model)
    context.blobs.delete(models_key(recommender.name))


def serving_record(session: Session, arn: str) -> dict[str, Any]:
    """What GetRecommendations needs of the recommender it names: 404 for an unknown one, and
    InvalidInputException unless it is ACTIVE (an INACTIVE recommender serves nothing)."""
    row = lifecycle.get(session, KIND, arn)
    if row.status != lifecycle.ACTIVE or not row.attributes.get("servingModelArn"):
        raise InvalidInputException(
            f"The recommender {arn} is {row.status}; only an ACTIVE recommender gives "
            "recommendations"
            + (" (start it with StartRecommender)." if row.status == lifecycle.INACTIVE else ".")
        )
    config = row.attributes.get("recommenderConfig") or {}
    return {
        "servingVersionArn": row.attributes["servingModelArn"],
        "campaignConfig": {
            key: config[key]
            for key in ("itemExplorationConfig", "enableMetadataWithRecommendations")
            if key in config
        },
        "recommenderArn": arn,
    }


def run_due_retraining(context: Context) -> list[str]:
    """Retrain ACTIVE recommenders on the service's schedule: every one weekly, the
    personalized ones every 2 hours when new data arrived (to take in new items)."""
    from openpersonalize.training.scheduler import new_data_since

    now = context.now()
    started: list[str] = []
    with context.database.transaction() as session:
        for row in session.scalars(
            select(ResourceRow)
            .where(
                ResourceRow.resource_type == KIND.resource_type,
                ResourceRow.status == lifecycle.ACTIVE,
            )
            .with_for_update()
        ):
            last = row.attributes.get("lastTrainedAt")
            if last is None or lifecycle.child_in_flight(session, row.arn):
                continue
            recipe = catalog.get_recipe(row.attributes["recipeArn"])
            assert recipe.use_case is not None
            weekly = now - last >= FULL_RETRAIN_SECONDS
            refresh = (
                recipe.use_case.style == catalog.PERSONALIZED
                and now - last >= NEW_ITEMS_UPDATE_SECONDS
                and new_data_since(session, row.parent_arn or "", last)
            )
            if not (weekly or refresh):
                continue
            config = row.attributes.get("recommenderConfig") or {}
            started.append(
                _start_model(session, row.arn, recipe, row.parent_arn or "", config, RETRAIN, now)
            )
            # Not again before this model is trained, even if training takes a while.
            lifecycle.update_attributes(row, row.updated_at, lastTrainedAt=now)
            log.info("%s: scheduled retraining started: %s", row.arn, started[-1])
    return started


runner.register("train-recommender", _train, _fail_training)
runner.register("stop-recommender", _stop, _fail_state_change)
runner.register("start-recommender", _start, _fail_state_change)
