"""Campaigns: a solution version deployed for real-time recommendations.

An update records `latestCampaignUpdate` and a job that loads the new model;
only when it is ACTIVE does the campaign point at the new version, so the old
model serves every request until then.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from openpersonalize.context import Context
from openpersonalize.errors import (
    InvalidInputException,
    ResourceInUseException,
    ResourceNotFoundException,
)
from openpersonalize.jobs import runner
from openpersonalize.recipes import catalog
from openpersonalize.resources import lifecycle, solution_versions, solutions
from openpersonalize.store.database import ResourceRow

KIND = lifecycle.Kind("campaign", "campaignArn", "campaign")
UPDATE_PENDING, UPDATE_IN_PROGRESS = "UPDATE PENDING", "UPDATE IN_PROGRESS"
LATEST = "$LATEST"
EXPLORATION_KEYS = {"explorationWeight", "explorationItemAgeCutOff"}


def resolve_version(session: Session, requested: str) -> ResourceRow:
    """The solution version a campaign serves; `<solutionArn>/$LATEST` is the newest ACTIVE one."""
    if requested.endswith("/" + LATEST):
        solution_arn = requested[: -len(LATEST) - 1]
        solution = lifecycle.get(session, solutions.KIND, solution_arn)
        latest = solutions.latest_active_version(session, solution.arn)
        if latest is None:
            raise ResourceInUseException(
                f"The solution {solution_arn} has no ACTIVE solution version to deploy."
            )
        return latest
    version = lifecycle.get(session, solution_versions.KIND, requested)
    if version.status != lifecycle.ACTIVE:
        raise ResourceInUseException(
            f"The solution version {requested} is {version.status}; only an ACTIVE version can "
            "be deployed."
        )
    return version


def check_config(requested_version: str, version: ResourceRow, config: dict[str, Any]) -> None:
    if config.get("syncWithLatestSolutionVersion") and not requested_version.endswith("/" + LATEST):
        raise InvalidInputException(
            "syncWithLatestSolutionVersion needs solutionVersionArn in the form "
            "<solutionArn>/$LATEST."
        )
    exploration = config.get("itemExplorationConfig") or {}
    if exploration:  # an AutoML version knows its recipe only once trained
        recipe = catalog.get_recipe(version.attributes.get("recipeArn") or "")
        check_exploration(recipe, exploration)


def check_exploration(recipe: catalog.Recipe, exploration: dict[str, str]) -> None:
    """itemExplorationConfig (of a campaign or a recommender): known keys, values in range,
    and only for a recipe that explores."""
    unknown = set(exploration) - EXPLORATION_KEYS
    if unknown:
        raise InvalidInputException(
            f"itemExplorationConfig keys must be {' and '.join(sorted(EXPLORATION_KEYS))}; "
            f"got {', '.join(sorted(unknown))}."
        )
    if not exploration:
        return
    if not recipe.explores:
        raise InvalidInputException(
            f"itemExplorationConfig is only for recipes that recommend new items to explore "
            f"(User-Personalization, Top picks for you, Recommended for you), not {recipe.name}."
        )
    for key, low, high in (
        ("explorationWeight", 0.0, 1.0),
        ("explorationItemAgeCutOff", 0.0, float("inf")),
    ):
        if key in exploration:
            try:
                value = float(exploration[key])
            except ValueError:
                value = float("nan")
            if not low <= value <= high or (key == "explorationItemAgeCutOff" and value == 0):
                raise InvalidInputException(
                    f"itemExplorationConfig.{key} {exploration[key]!r} is out of range."
                )


def create(context: Context, request: dict[str, Any]) -> dict[str, Any]:
    name = request["name"]
    arn = context.arn(KIND.resource_type, name)
    now = context.now()
    config = request.get("campaignConfig") or {}
    with context.database.transaction() as session:
        version = resolve_version(session, request["solutionVersionArn"])
        check_config(request["solutionVersionArn"], version, config)
        attributes = {
            "solutionVersionArn": request["solutionVersionArn"],
            "servingVersionArn": version.arn,
            "minProvisionedTPS": request.get("minProvisionedTPS", 1),
            "campaignConfig": config,
            "datasetGroupArn": version.attributes["datasetGroupArn"],
        }
        lifecycle.create_pending(
            session,
            KIND,
            arn=arn,
            name=name,
            now=now,
            parent_arn=version.attributes["datasetGroupArn"],
            attributes=attributes,
            job="deploy",
            tags=request.get("tags"),
        )
    return {"campaignArn": arn}


describe = lifecycle.describe_handler(KIND, "campaign")


def list_(context: Context, request: dict[str, Any]) -> dict[str, Any]:
    """ListCampaigns, optionally of one solution (whose versions the campaigns serve)."""
    solution_arn = request.get("solutionArn")
    with context.database.transaction() as session:
        if not solution_arn:
            rows, token = lifecycle.list_page(session, KIND, request)
        else:
            lifecycle.get(session, solutions.KIND, solution_arn)
            every, _ = lifecycle.list_page(session, KIND, {"maxResults": 10**9})
            serving = [
                row
                for row in every
                if str(row.attributes.get("servingVersionArn", "")).startswith(solution_arn + "/")
            ]
            rows, token = lifecycle.paginate(serving, request, f"campaigns|{solution_arn}")
        return {"campaigns": [lifecycle.describe(row, KIND) for row in rows], "nextToken": token}


def update(context: Context, request: dict[str, Any]) -> dict[str, Any]:
    arn = request["campaignArn"]
    now = context.now()
    with context.database.transaction() as session:
        row = lifecycle.get(session, KIND, arn)
        if row.status not in (lifecycle.ACTIVE, lifecycle.CREATE_FAILED):
            raise ResourceInUseException(
                f"The campaign {arn} is {row.status}; it can be updated when ACTIVE or "
                "CREATE FAILED."
            )
        pending = (row.attributes.get("latestCampaignUpdate") or {}).get("status")
        if pending in (UPDATE_PENDING, UPDATE_IN_PROGRESS):
            raise ResourceInUseException(f"The campaign {arn} is already being updated.")
        requested = request.get("solutionVersionArn") or row.attributes["solutionVersionArn"]
        version = resolve_version(session, requested)
        config = request.get("campaignConfig", row.attributes.get("campaignConfig") or {})
        check_config(requested, version, config)
        record = {
            "solutionVersionArn": requested,
            "servingVersionArn": version.arn,
            "minProvisionedTPS": request.get(
                "minProvisionedTPS", row.attributes.get("minProvisionedTPS", 1)
            ),
            "campaignConfig": config,
            "status": UPDATE_PENDING,
            "creationDateTime": now,
            "lastUpdatedDateTime": now,
        }
        lifecycle.update_attributes(row, now, latestCampaignUpdate=record)
        runner.enqueue(session, "deploy", arn, now, payload={"update": True})
    return {"campaignArn": arn}


delete = lifecycle.delete_handler(KIND)


def serving_record(session: Session, arn: str) -> ResourceRow:
    """The campaign a runtime request names; 404 unless it exists and is ACTIVE."""
    row = lifecycle.get(session, KIND, arn)
    if row.status != lifecycle.ACTIVE:
        raise ResourceNotFoundException(f"The campaign {arn} is {row.status}, not ACTIVE.")
    return row


def follow_latest(session: Session, solution_arn: str, version_arn: str, now: float) -> None:
    """Campaigns with syncWithLatestSolutionVersion switch to a newly ACTIVE version."""
    latest = f"{solution_arn}/{LATEST}"
    for row in session.scalars(
        select(ResourceRow).where(ResourceRow.resource_type == KIND.resource_type)
    ):
        config = row.attributes.get("campaignConfig") or {}
        if row.attributes.get("solutionVersionArn") == latest and config.get(
            "syncWithLatestSolutionVersion"
        ):
            lifecycle.update_attributes(row, now, servingVersionArn=version_arn)


def _deploy(job: runner.JobHandle) -> None:
    """Load the model once to prove it serves, then switch the campaign to it."""
    from openpersonalize.serving.engine import MODELS

    context = job.context
    updating = bool(job.payload.get("update"))
    with context.database.transaction() as session:
        row = lifecycle.get(session, KIND, job.resource_arn)
        if updating:
            record = dict(row.attributes["latestCampaignUpdate"])
            record.update(status=UPDATE_IN_PROGRESS, lastUpdatedDateTime=context.now())
            lifecycle.update_attributes(row, row.updated_at, latestCampaignUpdate=record)
            target = record["servingVersionArn"]
        else:
            lifecycle.set_status(row, lifecycle.CREATE_IN_PROGRESS, context.now())
            target = row.attributes["servingVersionArn"]
    MODELS.get(context, target)  # raises with a reason if the artifacts cannot be loaded
    with context.database.transaction() as session:
        row = lifecycle.get(session, KIND, job.resource_arn)
        now = context.now()
        if updating:
            record = dict(row.attributes["latestCampaignUpdate"])
            record.update(status=lifecycle.ACTIVE, lastUpdatedDateTime=now)
            lifecycle.update_attributes(
                row,
                now,
                latestCampaignUpdate=record,
                solutionVersionArn=record["solutionVersionArn"],
                servingVersionArn=record["servingVersionArn"],
                minProvisionedTPS=record["minProvisionedTPS"],
                campaignConfig=record["campaignConfig"],
            )
        else:
            lifecycle.set_status(row, lifecycle.ACTIVE, now)


def _fail_deploy(context: Context, arn: str, reason: str) -> None:
    with context.database.transaction() as session:
        row = lifecycle.find(session, arn)
        if row is None:
            return
        record = row.attributes.get("latestCampaignUpdate")
        if record and record.get("status") in (UPDATE_PENDING, UPDATE_IN_PROGRESS):
            record = {**record, "status": lifecycle.CREATE_FAILED, "failureReason": reason}
            lifecycle.update_attributes(row, context.now(), latestCampaignUpdate=record)
        elif row.status in lifecycle.IN_FLIGHT:
            lifecycle.set_status(row, lifecycle.CREATE_FAILED, context.now(), reason)


runner.register("deploy", _deploy, _fail_deploy)
