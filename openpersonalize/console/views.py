"""What each console page shows, read through the same operations the API answers.

Every read and every action goes through `call`: the botocore model validates the arguments
and the operation's handler in the resources (or serving) layer answers, exactly as for an
API request, so the console can neither see nor do anything the API would refuse, and its
errors are the API's errors. The one direct read is the latest streamed events of a dataset
group, which no operation returns.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterator
from functools import cache
from typing import Any

import pyarrow as pa
from sqlalchemy import select

from openpersonalize.api import Handler, handlers
from openpersonalize.context import Context
from openpersonalize.errors import ServiceError
from openpersonalize.recipes import catalog
from openpersonalize.resources import campaigns, lifecycle, recommenders
from openpersonalize.store.database import EventRow
from openpersonalize.wire import model

CONTROL, RUNTIME, EVENTS = "personalize", "personalize-runtime", "personalize-events"
LATEST_EVENTS = 10
# Item metadata columns shown beside a recommendation (the Items schema's first ones).
METADATA_COLUMNS = 6
# Resources the console can delete: type in the form -> (operation, ARN member).
DELETABLE = {
    "campaign": ("DeleteCampaign", "campaignArn"),
    "recommender": ("DeleteRecommender", "recommenderArn"),
    "filter": ("DeleteFilter", "filterArn"),
    "event-tracker": ("DeleteEventTracker", "eventTrackerArn"),
    "solution": ("DeleteSolution", "solutionArn"),
    "dataset": ("DeleteDataset", "datasetArn"),
    "dataset-group": ("DeleteDatasetGroup", "datasetGroupArn"),
}
IN_FLIGHT = (*lifecycle.IN_FLIGHT, *lifecycle.DELETING, "UPDATE PENDING", "UPDATE IN_PROGRESS")
_PLACEHOLDER = re.compile(r"\$([A-Za-z0-9_]+)")


@cache
def _table() -> dict[tuple[str, str], Handler]:
    return handlers()


def call(context: Context, service: str, operation: str, arguments: dict[str, Any]) -> dict:
    """One operation, validated by the model and answered by its handler, as the API does."""
    spec = model.operations()[(service, operation)]
    validated = model.validate_input(spec, arguments)
    return _table()[(service, operation)](context, validated) or {}


def list_all(
    context: Context, operation: str, key: str, service: str = CONTROL, **arguments: Any
) -> list[dict[str, Any]]:
    """Every page of a List operation."""
    found: list[dict[str, Any]] = []
    token: str | None = None
    while True:
        request = {**arguments, "maxResults": 100, **({"nextToken": token} if token else {})}
        page = call(context, service, operation, request)
        found.extend(page.get(key) or [])
        token = page.get("nextToken")
        if not token:
            return found


def when(seconds: float | None) -> str:
    if seconds is None:
        return ""
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def recipe_name(arn: str | None) -> str:
    return arn.rsplit("/", 1)[-1] if arn else "AutoML"


def recipe_type(arn: str | None) -> str:
    if not arn:
        return ""
    try:
        return catalog.get_recipe(arn).recipe_type
    except ServiceError:
        return ""


def hyperparameters(resource: dict[str, Any]) -> dict[str, Any]:
    """The hyperparameters a solution (or version) trains with: the recipe's defaults with
    the solution's own values over them."""
    config = resource.get("solutionConfig") or {}
    given = config.get("algorithmHyperParameters") or {}
    arn = resource.get("recipeArn")
    if not arn:
        return dict(given)
    try:
        return catalog.resolve_hyperparameters(
            catalog.get_recipe(arn), given, config.get("featureTransformationParameters")
        )
    except ServiceError:
        return dict(given)


def _elapsed(resource: dict[str, Any], now: float) -> float | None:
    """How long it has been (or was) in the making: until now while in flight, else until
    its last update."""
    created = resource.get("creationDateTime")
    if created is None:
        return None
    end = now if resource.get("status") in IN_FLIGHT else resource.get("lastUpdatedDateTime")
    return max(0.0, (end or now) - created)


def _schema_fields(schema_text: str) -> list[dict[str, Any]]:
    fields = []
    for field in json.loads(schema_text).get("fields", []):
        kind = field.get("type")
        if isinstance(kind, list):
            kind = " | ".join(str(k) for k in kind)
        fields.append(
            {
                "name": field.get("name"),
                "type": str(kind),
                "categorical": bool(field.get("categorical")),
                "textual": bool(field.get("textual")),
            }
        )
    return fields


# ------------------------------------------------------------------------------ pages


def groups_page(context: Context) -> dict[str, Any]:
    groups = list_all(context, "ListDatasetGroups", "datasetGroups")
    return {"groups": groups}


def group_page(context: Context, arn: str) -> dict[str, Any]:
    now = context.now()
    group = call(context, CONTROL, "DescribeDatasetGroup", {"datasetGroupArn": arn})["datasetGroup"]
    datasets = []
    for dataset in list_all(context, "ListDatasets", "datasets", datasetGroupArn=arn):
        schema = call(context, CONTROL, "DescribeSchema", {"schemaArn": dataset["schemaArn"]})
        imports = list_all(
            context, "ListDatasetImportJobs", "datasetImportJobs", datasetArn=dataset["datasetArn"]
        )
        for job in imports:
            job["elapsed"] = _elapsed(job, now)
        datasets.append(
            {
                **dataset,
                "fields": _schema_fields(schema["schema"]["schema"]),
                "imports": imports,
            }
        )
    solutions = []
    for solution in list_all(context, "ListSolutions", "solutions", datasetGroupArn=arn):
        described = call(
            context, CONTROL, "DescribeSolution", {"solutionArn": solution["solutionArn"]}
        )["solution"]
        versions = list_all(
            context,
            "ListSolutionVersions",
            "solutionVersions",
            solutionArn=solution["solutionArn"],
        )
        for version in versions:
            version["elapsed"] = _elapsed(version, now)
            version["batchJobs"] = _batch_jobs(context, version)
        solutions.append(
            {
                **described,
                "recipe": recipe_name(described.get("recipeArn")),
                "hyperparameters": hyperparameters(described),
                "versions": versions,
            }
        )
    campaigns = [
        campaign
        for campaign in list_all(context, "ListCampaigns", "campaigns")
        if campaign.get("datasetGroupArn") == arn
    ]
    trackers = list_all(context, "ListEventTrackers", "eventTrackers", datasetGroupArn=arn)
    return {
        "group": group,
        "datasets": datasets,
        "solutions": solutions,
        "campaigns": campaigns,
        "recommenders": list_all(context, "ListRecommenders", "recommenders", datasetGroupArn=arn),
        "filters": list_all(context, "ListFilters", "Filters", datasetGroupArn=arn),
        "trackers": trackers,
        "latest_events": latest_events(context, arn) if trackers else [],
    }


def _batch_jobs(context: Context, version: dict[str, Any]) -> list[dict[str, Any]]:
    jobs = []
    for operation, key, kind in (
        ("ListBatchInferenceJobs", "batchInferenceJobs", "inference"),
        ("ListBatchSegmentJobs", "batchSegmentJobs", "segment"),
    ):
        for job in list_all(
            context, operation, key, solutionVersionArn=version["solutionVersionArn"]
        ):
            jobs.append({**job, "kind": kind})
    return jobs


def version_page(context: Context, arn: str) -> dict[str, Any]:
    version = call(context, CONTROL, "DescribeSolutionVersion", {"solutionVersionArn": arn})[
        "solutionVersion"
    ]
    version["elapsed"] = _elapsed(version, context.now())
    group_arn = version["datasetGroupArn"]
    compared = []
    for solution in list_all(context, "ListSolutions", "solutions", datasetGroupArn=group_arn):
        for other in list_all(
            context, "ListSolutionVersions", "solutionVersions", solutionArn=solution["solutionArn"]
        ):
            if other["status"] != lifecycle.ACTIVE:
                continue
            full = call(
                context,
                CONTROL,
                "DescribeSolutionVersion",
                {"solutionVersionArn": other["solutionVersionArn"]},
            )["solutionVersion"]
            metrics = dict(
                call(
                    context,
                    CONTROL,
                    "GetSolutionMetrics",
                    {"solutionVersionArn": other["solutionVersionArn"]},
                )["metrics"]
            )
            # Our extra measures (recall, hit rate) beside the service's.
            for name, value in (full.get("extendedMetrics") or {}).items():
                metrics.setdefault(name, value)
            compared.append(
                {
                    "arn": other["solutionVersionArn"],
                    "label": f"{solution['name']}/{other['solutionVersionArn'].rsplit('/', 1)[1]}"
                    f" ({recipe_name(full.get('recipeArn'))})",
                    "current": other["solutionVersionArn"] == arn,
                    "metrics": metrics,
                }
            )
    metric_names = sorted({name for entry in compared for name in entry["metrics"]})
    trials = sorted(version.get("trials") or [], key=lambda trial: trial.get("number", 0))
    campaigns = [
        campaign
        for campaign in list_all(context, "ListCampaigns", "campaigns")
        if campaign.get("datasetGroupArn") == group_arn
    ]
    return {
        "version": version,
        "recipe": recipe_name(version.get("recipeArn")),
        "hyperparameters": hyperparameters(version),
        "tuned": (version.get("tunedHPOParams") or {}).get("algorithmHyperParameters") or {},
        "metric_names": metric_names,
        "compared": compared,
        "chart": {
            "metrics": metric_names,
            "versions": [
                {
                    "label": entry["label"],
                    "current": entry["current"],
                    "values": [entry["metrics"].get(name) for name in metric_names],
                }
                for entry in compared
            ],
            "trials": _trial_chart(trials),
        },
        "trials": trials,
        "campaigns": campaigns,
        "in_flight": version["status"] in lifecycle.IN_FLIGHT,
    }


def _trial_chart(trials: list[dict[str, Any]]) -> dict[str, Any]:
    """Objective per trial, and each numeric hyperparameter against the objective."""
    if not trials:
        return {}
    parameters: dict[str, list[float | None]] = {}
    for trial in trials:
        for name in trial.get("hyperparameters") or {}:
            parameters.setdefault(name, [])
    for trial in trials:
        for name, values in parameters.items():
            raw = (trial.get("hyperparameters") or {}).get(name)
            try:
                values.append(float(raw) if raw is not None else None)
            except (TypeError, ValueError):
                values.append(None)
    numeric = {
        name: values for name, values in parameters.items() if any(v is not None for v in values)
    }
    return {
        "metric": trials[0].get("metric", ""),
        "numbers": [trial.get("number", index + 1) for index, trial in enumerate(trials)],
        "values": [trial.get("value") for trial in trials],
        "labels": [recipe_name(trial.get("recipeArn")) for trial in trials],
        "parameters": numeric,
    }


def _placeholders(filters: list[dict[str, Any]]) -> dict[str, list[str]]:
    return {
        item["filterArn"]: sorted(set(_PLACEHOLDER.findall(item.get("filterExpression", ""))))
        for item in filters
    }


def deployment_page(context: Context, kind: str, arn: str, query: dict[str, str]) -> dict[str, Any]:
    """A campaign's or recommender's page: its settings and the try-it panel."""
    if kind == "campaign":
        resource = call(context, CONTROL, "DescribeCampaign", {"campaignArn": arn})["campaign"]
        version_arn = resource.get("servingVersionArn") or resource["solutionVersionArn"]
        version = call(
            context, CONTROL, "DescribeSolutionVersion", {"solutionVersionArn": version_arn}
        )["solutionVersion"]
        recipe_arn = version.get("recipeArn") or (
            call(context, CONTROL, "DescribeSolution", {"solutionArn": version["solutionArn"]})[
                "solution"
            ].get("autoMLResult")
            or {}
        ).get("bestRecipeArn")
        group_arn = resource["datasetGroupArn"]
    else:
        resource = call(context, CONTROL, "DescribeRecommender", {"recommenderArn": arn})[
            "recommender"
        ]
        recipe_arn = resource.get("recipeArn")
        group_arn = resource["datasetGroupArn"]
    filters = [
        item
        for item in list_all(context, "ListFilters", "Filters", datasetGroupArn=group_arn)
        if item.get("status") == lifecycle.ACTIVE
    ]
    trackers = list_all(context, "ListEventTrackers", "eventTrackers", datasetGroupArn=group_arn)
    tracker = next(iter(trackers), None)
    if tracker is not None:
        tracker = call(
            context,
            CONTROL,
            "DescribeEventTracker",
            {"eventTrackerArn": tracker["eventTrackerArn"]},
        )["eventTracker"]
    versions = []
    if kind == "campaign":
        solution_arn = resource["solutionVersionArn"].rsplit("/", 1)[0]
        versions = [
            item
            for item in list_all(
                context, "ListSolutionVersions", "solutionVersions", solutionArn=solution_arn
            )
            if item["status"] == lifecycle.ACTIVE
        ]
    page: dict[str, Any] = {
        "kind": kind,
        "resource": resource,
        "arn": arn,
        "group_arn": group_arn,
        "recipe": recipe_name(recipe_arn),
        "recipe_type": recipe_type(recipe_arn),
        "filters": filters,
        "placeholders": _placeholders(filters),
        "tracker": tracker,
        "versions": versions,
        "query": query,
        "result": None,
        "error": None,
        "user_events": [],
    }
    if query.get("userId") or query.get("itemId") or query.get("inputList"):
        try:
            page["result"] = try_it(context, kind, arn, page["recipe_type"], query)
        except ServiceError as error:
            page["error"] = f"{error.code}: {error.message}"
        if query.get("userId") and tracker is not None:
            page["user_events"] = latest_events(context, group_arn, query["userId"])
    return page


def filter_values(query: dict[str, str]) -> dict[str, str]:
    """filterValues from the form's `fv.<NAME>` fields (the text as the API takes it)."""
    return {
        name[3:]: value for name, value in query.items() if name.startswith("fv.") and value != ""
    }


def try_it(
    context: Context, kind: str, arn: str, kind_of_recipe: str, query: dict[str, str]
) -> dict[str, Any]:
    """A runtime request as an application sends it, with the items' metadata beside."""
    body: dict[str, Any] = {f"{kind}Arn": arn, "numResults": int(query.get("numResults") or 10)}
    for key in ("userId", "itemId"):
        if query.get(key):
            body[key] = query[key]
    if query.get("filterArn"):
        body["filterArn"] = query["filterArn"]
        values = filter_values(query)
        if values:
            body["filterValues"] = values
    if kind_of_recipe == "PERSONALIZED_RANKING":
        body.pop("numResults")
        body["inputList"] = [
            item.strip() for item in query.get("inputList", "").split(",") if item.strip()
        ]
        answer = call(context, RUNTIME, "GetPersonalizedRanking", body)
        items = answer.get("personalizedRanking") or []
    else:
        answer = call(context, RUNTIME, "GetRecommendations", body)
        items = answer.get("itemList") or []
    columns, metadata = item_metadata(context, kind, arn, [item["itemId"] for item in items])
    return {
        "request": body,
        "items": [{**item, "metadata": row} for item, row in zip(items, metadata, strict=True)],
        "columns": columns,
        "recommendationId": answer.get("recommendationId"),
    }


def item_metadata(
    context: Context, kind: str, arn: str, item_ids: list[str]
) -> tuple[list[str], list[dict[str, str]]]:
    """The Items data of the listed items, from the catalog the serving layer keeps."""
    from openpersonalize.serving import engine

    with context.database.snapshot() as session:
        if kind == "campaign":
            version_arn = lifecycle.get(session, campaigns.KIND, arn).attributes[
                "servingVersionArn"
            ]
        else:
            version_arn = recommenders.serving_record(session, arn)["servingVersionArn"]
    deployed = engine.MODELS.get(context, version_arn)
    table = engine.item_catalog(context, deployed).item_metadata
    if table is None or not item_ids:
        return [], [{} for _ in item_ids]
    columns = [name for name in table.column_names if name != "ITEM_ID"][:METADATA_COLUMNS]
    index = deployed.artifacts.item_index
    codes = [index.get(item_id, -1) for item_id in item_ids]
    known = [code for code in codes if 0 <= code < table.num_rows]
    rows = iter(table.select(columns).take(pa.array(known, type=pa.int64())).to_pylist())
    found = []
    for code in codes:
        row = next(rows) if 0 <= code < table.num_rows else {}
        found.append({name: _shown(row.get(name)) for name in columns})
    return columns, found


def _shown(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):  # float32 columns: 8.99, not 8.989999771118164
        return f"{value:.7g}"
    return str(value)


def latest_events(
    context: Context, group_arn: str, user_id: str | None = None
) -> list[dict[str, Any]]:
    """The newest streamed events of the group (of one user if given); no operation lists
    them, so they are read from the event store directly."""
    from openpersonalize.resources import solutions

    with context.database.snapshot() as session:
        interactions = solutions.datasets_of(session, group_arn).get("Interactions")
        if interactions is None:
            return []
        query = select(EventRow).where(EventRow.dataset_arn == interactions.arn)
        if user_id is not None:
            query = query.where(EventRow.user_id == user_id)
        rows = session.scalars(query.order_by(EventRow.id.desc()).limit(LATEST_EVENTS)).all()
        return [
            {
                "userId": row.user_id,
                "itemId": row.item_id,
                "eventType": row.event_type,
                "eventValue": row.event_value,
                "sentAt": row.timestamp,
                "receivedAt": row.received_at,
            }
            for row in rows
        ]


# ------------------------------------------------------------------------------ actions


def send_event(
    context: Context, tracking_id: str, user_id: str, item_id: str, event_type: str
) -> None:
    """PutEvents, as the events API takes it (the user's session is the user)."""
    call(
        context,
        EVENTS,
        "PutEvents",
        {
            "trackingId": tracking_id,
            "userId": user_id,
            "sessionId": user_id,
            "eventList": [{"eventType": event_type, "itemId": item_id, "sentAt": context.now()}],
        },
    )


def create_campaign(context: Context, form: dict[str, str]) -> str:
    arguments: dict[str, Any] = {
        "name": form.get("name", ""),
        "solutionVersionArn": form.get("solutionVersionArn", ""),
    }
    if form.get("minProvisionedTPS"):
        try:
            arguments["minProvisionedTPS"] = int(form["minProvisionedTPS"])
        except ValueError:
            arguments["minProvisionedTPS"] = form["minProvisionedTPS"]  # the model says why
    if form.get("enableMetadataWithRecommendations"):
        arguments["campaignConfig"] = {"enableMetadataWithRecommendations": True}
    return str(call(context, CONTROL, "CreateCampaign", arguments)["campaignArn"])


def update_campaign(context: Context, form: dict[str, str]) -> str:
    return str(
        call(
            context,
            CONTROL,
            "UpdateCampaign",
            {
                "campaignArn": form.get("campaignArn", ""),
                "solutionVersionArn": form.get("solutionVersionArn", ""),
            },
        )["campaignArn"]
    )


def stop_version(context: Context, form: dict[str, str]) -> None:
    call(
        context,
        CONTROL,
        "StopSolutionVersionCreation",
        {"solutionVersionArn": form.get("solutionVersionArn", "")},
    )


def delete_resource(context: Context, form: dict[str, str]) -> None:
    entry = DELETABLE.get(form.get("type", ""))
    if entry is None:
        from openpersonalize.errors import InvalidInputException

        raise InvalidInputException(
            f"The console deletes {', '.join(sorted(DELETABLE))}, not {form.get('type')!r}."
        )
    operation, key = entry
    call(context, CONTROL, operation, {key: form.get("arn", "")})


def in_flight(page: dict[str, Any]) -> bool:
    """Whether anything on a page is still changing (the page then refreshes itself)."""
    return any(status in IN_FLIGHT for status in _statuses(page))


def _statuses(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "status" and isinstance(item, str):
                yield item
            elif key not in ("chart", "query"):
                yield from _statuses(item)
    elif isinstance(value, list):
        for item in value:
            yield from _statuses(item)
