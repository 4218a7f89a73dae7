"""Solutions: a model's configuration (recipe, data selection, HPO/AutoML, automatic training).

CreateSolution validates everything the service validates before anything is
recorded; training itself happens in solution versions.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from openpersonalize.context import Context
from openpersonalize.data.schema import Schema, event_type_key
from openpersonalize.errors import InvalidInputException, ResourceInUseException
from openpersonalize.jobs import runner
from openpersonalize.recipes import catalog
from openpersonalize.resources import dataset_groups, lifecycle, schemas
from openpersonalize.store.database import ResourceRow

KIND = lifecycle.Kind("solution", "solutionArn", "solution")
VERSION_KIND_NAME = "solution-version"
UPDATE_PENDING, UPDATE_IN_PROGRESS = "UPDATE PENDING", "UPDATE IN_PROGRESS"

DEFAULT_SCHEDULE = "rate(7 days)"
FIRST_AUTO_TRAINING_DELAY = 3600.0  # the service starts the first automatic version within 1 hour
MAX_TRAINING_JOBS, MAX_PARALLEL_TRAINING_JOBS = 40, 10
_SCHEDULE = re.compile(r"rate\((\d+) (day|days)\)")
INCREMENTAL_UPDATE_RECIPES = ("aws-semantic-similarity",)
# Recipes that train on the Items dataset alone: Interactions data is optional for them.
ITEMS_ONLY_RECIPES = ("aws-semantic-similarity",)
OBJECTIVE_RECIPE_TYPES = ("USER_PERSONALIZATION", "PERSONALIZED_RANKING")
SOLUTION_FIELDS = (
    "performHPO",
    "performAutoML",
    "performAutoTraining",
    "performIncrementalUpdate",
    "recipeArn",
    "datasetGroupArn",
    "eventType",
    "solutionConfig",
)


def schedule_seconds(expression: str) -> float:
    """Seconds between automatic versions for `rate(N day|days)`, N in 1..30."""
    match = _SCHEDULE.fullmatch(expression)
    days = int(match.group(1)) if match else 0
    if not match or not 1 <= days <= 30:
        raise InvalidInputException(
            f"schedulingExpression {expression!r} must be rate(N day) or rate(N days) "
            "with N from 1 to 30."
        )
    return days * 86400.0


def create(context: Context, request: dict[str, Any]) -> dict[str, Any]:
    name = request["name"]
    arn = context.arn(KIND.resource_type, name)
    now = context.now()
    config = request.get("solutionConfig") or {}
    with context.database.transaction() as session:
        group = lifecycle.get(session, dataset_groups.KIND, request["datasetGroupArn"])
        lifecycle.require_usable(group, dataset_groups.KIND)
        recipe = _check_recipe_choice(request, config)
        group_datasets = datasets_of(session, group.arn)
        _check_training_data(context, request, config, group_datasets, recipe)
        if recipe is not None:
            _check_recipe_config(request, config, recipe, group_datasets)
        _check_hpo_resources(config)
        perform_auto_training = request.get("performAutoTraining", True)
        schedule = (config.get("autoTrainingConfig") or {}).get("schedulingExpression")
        schedule_seconds(schedule or DEFAULT_SCHEDULE)
        attributes = {key: request[key] for key in SOLUTION_FIELDS if key in request}
        attributes.update(
            performHPO=bool(request.get("performHPO", False)) or bool(request.get("performAutoML")),
            performAutoML=bool(request.get("performAutoML", False)),
            performAutoTraining=perform_auto_training,
            performIncrementalUpdate=bool(request.get("performIncrementalUpdate", False)),
        )
        if perform_auto_training:
            attributes["solutionConfig"] = {
                **config,
                "autoTrainingConfig": {"schedulingExpression": schedule or DEFAULT_SCHEDULE},
            }
            attributes["nextAutoTrainingAt"] = now + FIRST_AUTO_TRAINING_DELAY
        lifecycle.create_pending(
            session,
            KIND,
            arn=arn,
            name=name,
            now=now,
            parent_arn=group.arn,
            attributes=attributes,
            job="activate",
            tags=request.get("tags"),
        )
    return {"solutionArn": arn}


def _check_recipe_choice(request: dict[str, Any], config: dict[str, Any]) -> catalog.Recipe | None:
    recipe_arn = request.get("recipeArn")
    if request.get("performAutoML"):
        if recipe_arn:
            raise InvalidInputException(
                "recipeArn must be omitted when performAutoML is true: AutoML chooses the recipe "
                "from solutionConfig.autoMLConfig.recipeList."
            )
        for candidate in (config.get("autoMLConfig") or {}).get("recipeList") or []:
            recipe = catalog.solution_recipe(candidate)
            if recipe.recipe_type != "USER_PERSONALIZATION":
                raise InvalidInputException(
                    f"AutoML recipeList may only hold USER_PERSONALIZATION recipes; {candidate} "
                    f"is {recipe.recipe_type}."
                )
            catalog.model_class(recipe)
        return None
    if not recipe_arn:
        raise InvalidInputException("recipeArn is required unless performAutoML is true.")
    recipe = catalog.solution_recipe(recipe_arn)
    catalog.model_class(recipe)  # a recipe we cannot train yet is refused now, not at training
    return recipe


def _check_recipe_config(
    request: dict[str, Any],
    config: dict[str, Any],
    recipe: catalog.Recipe,
    group_datasets: dict[str, ResourceRow],
) -> None:
    hpo = config.get("hpoConfig") or {}
    catalog.check_hyperparameters(
        recipe,
        config.get("algorithmHyperParameters"),
        config.get("featureTransformationParameters"),
        hpo.get("algorithmHyperParameterRanges"),
        perform_hpo=bool(request.get("performHPO")),
    )
    if recipe.recipe_type == "PERSONALIZED_ACTIONS" and "Actions" not in group_datasets:
        raise InvalidInputException(
            f"The recipe {recipe.name} recommends actions: the dataset group "
            f"{request['datasetGroupArn']} needs an Actions dataset first."
        )
    if request.get("performIncrementalUpdate") and recipe.name not in INCREMENTAL_UPDATE_RECIPES:
        raise InvalidInputException(
            "performIncrementalUpdate is only supported with the aws-semantic-similarity recipe, "
            f"not {recipe.name}."
        )
    objective = config.get("optimizationObjective")
    if objective and objective.get("itemAttribute"):
        if recipe.recipe_type not in OBJECTIVE_RECIPE_TYPES:
            raise InvalidInputException(
                f"optimizationObjective needs a User-Personalization or Personalized-Ranking "
                f"recipe, not {recipe.name}."
            )
        _check_objective_column(objective["itemAttribute"], group_datasets)


def _check_objective_column(column: str, group_datasets: dict[str, ResourceRow]) -> None:
    items = group_datasets.get("Items")
    field = _schema_of(items).field(column) if items is not None else None
    if items is None:
        raise InvalidInputException(
            f"optimizationObjective.itemAttribute {column!r} needs an Items dataset in the "
            "dataset group."
        )
    if field is None or field.type not in ("int", "long", "float", "double") or field.nullable:
        raise InvalidInputException(
            f"optimizationObjective.itemAttribute {column!r} must be a numeric, non-nullable "
            "column of the Items schema."
        )


def _check_training_data(
    context: Context,
    request: dict[str, Any],
    config: dict[str, Any],
    group_datasets: dict[str, ResourceRow],
    recipe: catalog.Recipe | None,
) -> None:
    interactions = group_datasets.get("Interactions")
    items_only = recipe is not None and recipe.name in ITEMS_ONLY_RECIPES
    if items_only:
        _check_item_text_fields(request, group_datasets)
    if (interactions is None or not interactions.attributes.get("files")) and not items_only:
        raise InvalidInputException(
            f"The dataset group {request['datasetGroupArn']} has no Interactions data: create an "
            "Interactions dataset and import data into it (an ACTIVE dataset import job) first."
        )
    training_data = config.get("trainingDataConfig") or {}
    for member in ("includedDatasetColumns", "excludedDatasetColumns"):
        for dataset_type, columns in (training_data.get(member) or {}).items():
            dataset = next(
                (d for t, d in group_datasets.items() if t.upper() == dataset_type.upper()), None
            )
            if dataset is None:
                raise InvalidInputException(
                    f"trainingDataConfig.{member} names {dataset_type}, but the dataset group "
                    f"has no such dataset (it has {', '.join(group_datasets) or 'none'})."
                )
            schema = _schema_of(dataset)
            for column in columns:
                if schema.field(column) is None:
                    raise InvalidInputException(
                        f"trainingDataConfig.{member}.{dataset_type} column {column!r} is not in "
                        f"the {dataset.attributes['datasetType']} schema."
                    )
    wanted = [request["eventType"]] if request.get("eventType") else []
    wanted += [
        parameters["eventType"]
        for parameters in (config.get("eventsConfig") or {}).get("eventParametersList") or []
        if parameters.get("eventType")
    ]
    if wanted:
        present = event_types_in(context, interactions) if interactions is not None else set()
        present_keys = {event_type_key(t) for t in present}
        for event_type in wanted:
            if event_type_key(event_type) not in present_keys:
                raise InvalidInputException(
                    f"Event type {event_type!r} does not occur in the Interactions data of "
                    f"{request['datasetGroupArn']} (types present: "
                    f"{', '.join(sorted(present)[:10]) or 'none'})."
                )
    threshold = config.get("eventValueThreshold")
    if threshold is not None:
        try:
            float(threshold)
        except ValueError as error:
            raise InvalidInputException(
                f"solutionConfig.eventValueThreshold {threshold!r} is not a number."
            ) from error
        if interactions is None or _schema_of(interactions).exact_field("EVENT_VALUE") is None:
            raise InvalidInputException(
                "solutionConfig.eventValueThreshold needs an EVENT_VALUE field in the "
                "Interactions schema."
            )


def _check_item_text_fields(
    request: dict[str, Any], group_datasets: dict[str, ResourceRow]
) -> None:
    """aws-semantic-similarity embeds the Items dataset's itemName and textual fields."""
    from openpersonalize.recipes.semantic_similarity import missing_text_fields

    items = group_datasets.get("Items")
    if items is None:
        raise InvalidInputException(
            f"The recipe {request['recipeArn']} trains on item text: the dataset group "
            f"{request['datasetGroupArn']} needs an Items dataset with an itemName field and "
            "a textual field first."
        )
    schema = _schema_of(items)
    item_name = next((f.name for f in schema.fields if f.item_name), None)
    problem = missing_text_fields(item_name, [f.name for f in schema.fields if f.textual])
    if problem is not None:
        raise InvalidInputException(
            f"{problem} (Items dataset {items.arn}, schema {items.attributes['schemaArn']})"
        )


def _check_hpo_resources(config: dict[str, Any]) -> None:
    resources = (config.get("hpoConfig") or {}).get("hpoResourceConfig") or {}
    for member, limit in (
        ("maxNumberOfTrainingJobs", MAX_TRAINING_JOBS),
        ("maxParallelTrainingJobs", MAX_PARALLEL_TRAINING_JOBS),
    ):
        if member not in resources:
            continue
        value = resources[member]
        if not value.isdigit() or not 1 <= int(value) <= limit:
            raise InvalidInputException(
                f"hpoResourceConfig.{member} must be a whole number from 1 to {limit}, "
                f"not {value!r}."
            )


def datasets_of(session: Session, group_arn: str) -> dict[str, ResourceRow]:
    """The group's datasets by type ("Interactions", "Items", ...)."""
    rows = session.scalars(
        select(ResourceRow).where(
            ResourceRow.resource_type == "dataset", ResourceRow.parent_arn == group_arn
        )
    )
    return {row.attributes["datasetType"]: row for row in rows}


def _schema_of(dataset: ResourceRow) -> Schema:
    with_schema = dataset.attributes["schemaArn"]
    session = Session.object_session(dataset)
    assert session is not None
    return schemas.load(lifecycle.get(session, schemas.KIND, with_schema))


def event_types_in(context: Context, interactions: ResourceRow) -> set[str]:
    """Distinct EVENT_TYPE values of a dataset's data (reads that one column only)."""
    present: set[str] = set()
    for key in interactions.attributes.get("files", []):
        if "EVENT_TYPE" not in context.blobs.parquet_schema(key).names:
            return present
        column = context.blobs.read_parquet(key, columns=["EVENT_TYPE"]).column(0)
        present.update(v for v in column.unique().to_pylist() if v is not None)
    return present


def latest_active_version(session: Session, solution_arn: str) -> ResourceRow | None:
    return session.scalars(
        select(ResourceRow)
        .where(
            ResourceRow.resource_type == VERSION_KIND_NAME,
            ResourceRow.parent_arn == solution_arn,
            ResourceRow.status == lifecycle.ACTIVE,
        )
        .order_by(ResourceRow.created_at.desc())
        .limit(1)
    ).first()


def describe_solution(session: Session, row: ResourceRow) -> dict[str, Any]:
    description = lifecycle.describe(row, KIND)
    latest = session.scalars(
        select(ResourceRow)
        .where(ResourceRow.resource_type == VERSION_KIND_NAME, ResourceRow.parent_arn == row.arn)
        .order_by(ResourceRow.created_at.desc())
        .limit(1)
    ).first()
    if latest is not None:
        description["latestSolutionVersion"] = {
            **latest.attributes,
            "solutionVersionArn": latest.arn,
            "status": latest.status,
            "failureReason": latest.failure_reason,
            "creationDateTime": latest.created_at,
            "lastUpdatedDateTime": latest.updated_at,
        }
    return description


def describe(context: Context, request: dict[str, Any]) -> dict[str, Any]:
    with context.database.transaction() as session:
        row = lifecycle.get(session, KIND, request["solutionArn"])
        return {"solution": describe_solution(session, row)}


def list_(context: Context, request: dict[str, Any]) -> dict[str, Any]:
    with context.database.transaction() as session:
        group_arn = request.get("datasetGroupArn")
        if group_arn:
            lifecycle.get(session, dataset_groups.KIND, group_arn)
        rows, token = lifecycle.list_page(session, KIND, request, parent_arn=group_arn)
        return {"solutions": [lifecycle.describe(row, KIND) for row in rows], "nextToken": token}


def update(context: Context, request: dict[str, Any]) -> dict[str, Any]:
    """UpdateSolution: automatic training, incremental update and the events config."""
    arn = request["solutionArn"]
    now = context.now()
    with context.database.transaction() as session:
        row = lifecycle.get(session, KIND, arn)
        lifecycle.require_status(row, KIND, lifecycle.ACTIVE)
        pending = (row.attributes.get("latestSolutionUpdate") or {}).get("status")
        if pending in (UPDATE_PENDING, UPDATE_IN_PROGRESS):
            raise ResourceInUseException(f"The solution {arn} is already being updated.")
        recipe_arn = row.attributes.get("recipeArn")
        recipe_name = catalog.get_recipe(recipe_arn).name if recipe_arn else ""
        if (
            request.get("performIncrementalUpdate")
            and recipe_name not in INCREMENTAL_UPDATE_RECIPES
        ):
            raise InvalidInputException(
                "performIncrementalUpdate is only supported with the aws-semantic-similarity "
                f"recipe, not {recipe_name or 'AutoML'}."
            )
        update_config = request.get("solutionUpdateConfig") or {}
        schedule = (update_config.get("autoTrainingConfig") or {}).get("schedulingExpression")
        if schedule:
            schedule_seconds(schedule)
        events = update_config.get("eventsConfig")
        if events:
            group_datasets = datasets_of(session, row.parent_arn or "")
            interactions = group_datasets.get("Interactions")
            present = event_types_in(context, interactions) if interactions is not None else set()
            for parameters in events.get("eventParametersList") or []:
                if parameters.get("eventType") and parameters["eventType"] not in present:
                    raise InvalidInputException(
                        f"Event type {parameters['eventType']!r} does not occur in the "
                        "Interactions data."
                    )
        record = {
            "solutionUpdateConfig": update_config,
            "performAutoTraining": request.get(
                "performAutoTraining", row.attributes.get("performAutoTraining", True)
            ),
            "performIncrementalUpdate": request.get(
                "performIncrementalUpdate", row.attributes.get("performIncrementalUpdate", False)
            ),
            "status": UPDATE_PENDING,
            "creationDateTime": now,
            "lastUpdatedDateTime": now,
        }
        lifecycle.update_attributes(row, now, latestSolutionUpdate=record)
        runner.enqueue(session, "solution_update", arn, now)
    return {"solutionArn": arn}


def _run_update(job: runner.JobHandle) -> None:
    context = job.context
    now = context.now()
    with context.database.transaction() as session:
        row = lifecycle.get(session, KIND, job.resource_arn)
        record = dict(row.attributes["latestSolutionUpdate"])
        record.update(status=UPDATE_IN_PROGRESS, lastUpdatedDateTime=now)
        lifecycle.update_attributes(row, now, latestSolutionUpdate=record)
    with context.database.transaction() as session:
        row = lifecycle.get(session, KIND, job.resource_arn)
        record = dict(row.attributes["latestSolutionUpdate"])
        config = dict(row.attributes.get("solutionConfig") or {})
        update_config = record.get("solutionUpdateConfig") or {}
        changes: dict[str, Any] = {
            "performAutoTraining": record["performAutoTraining"],
            "performIncrementalUpdate": record["performIncrementalUpdate"],
        }
        if update_config.get("eventsConfig"):
            config["eventsConfig"] = update_config["eventsConfig"]
        if update_config.get("autoTrainingConfig"):
            config["autoTrainingConfig"] = update_config["autoTrainingConfig"]
        if record["performAutoTraining"]:
            config.setdefault("autoTrainingConfig", {"schedulingExpression": DEFAULT_SCHEDULE})
            if not row.attributes.get("performAutoTraining") or update_config.get(
                "autoTrainingConfig"
            ):
                interval = schedule_seconds(config["autoTrainingConfig"]["schedulingExpression"])
                changes["nextAutoTrainingAt"] = context.now() + min(
                    interval, FIRST_AUTO_TRAINING_DELAY
                )
        else:
            changes["nextAutoTrainingAt"] = None
        changes["solutionConfig"] = config
        record.update(status=lifecycle.ACTIVE, lastUpdatedDateTime=context.now())
        changes["latestSolutionUpdate"] = record
        lifecycle.update_attributes(row, context.now(), **changes)


def _fail_update(context: Context, arn: str, reason: str) -> None:
    with context.database.transaction() as session:
        row = lifecycle.find(session, arn)
        if row is not None:
            record = dict(row.attributes.get("latestSolutionUpdate") or {})
            record.update(
                status=lifecycle.CREATE_FAILED,
                failureReason=reason,
                lastUpdatedDateTime=context.now(),
            )
            lifecycle.update_attributes(row, context.now(), latestSolutionUpdate=record)


runner.register("solution_update", _run_update, _fail_update)


def _refuse_if_training_or_serving(session: Session, row: ResourceRow) -> None:
    """The service keeps a solution while a version trains or a campaign serves one."""
    arn = row.arn
    training = lifecycle.child_in_flight(session, arn)
    if training:
        raise ResourceInUseException(
            f"The solution {arn} has a solution version in training ({training}); "
            "stop it or wait for it to finish."
        )
    campaigns = session.scalars(
        select(ResourceRow).where(ResourceRow.resource_type == "campaign")
    ).all()
    serving = [
        c.arn
        for c in campaigns
        if str(c.attributes.get("servingVersionArn", "")).startswith(arn + "/")
    ]
    if serving:
        raise ResourceInUseException(
            f"The solution {arn} is used by campaign {serving[0]}; delete the campaign first."
        )


delete = lifecycle.delete_handler(KIND, check=_refuse_if_training_or_serving)
