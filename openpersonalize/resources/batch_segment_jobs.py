"""Batch segment jobs: for every line of a JSON-lines file in S3, the users most likely to
interact with an item (aws-item-affinity) or with items of given attributes
(aws-item-attribute-affinity), written as ``{"usersList": [...], "recommendedUsers": [...]}``.

Input and output storage, per-line errors and the job's failure rules are the batch
inference jobs' (resources/batch_inference_jobs.py); each input file ``name.json`` becomes
``{output prefix}name.json.out``. Output lines carry both shapes on record: the service's (the
users under ``usersList``, the query under ``input``, as in the outputs stored in AWS's own
sample notebooks, user_segmentation and update-item-dataset-schema) and the guide's examples'
(``recommendedUsers``, and an Item-Attribute-Affinity query echoed at the top level too).
"""

from __future__ import annotations

from typing import Any

from openpersonalize.context import Context
from openpersonalize.errors import (
    InvalidInputException,
)
from openpersonalize.filters.expression import parse_filter
from openpersonalize.jobs import runner
from openpersonalize.recipes import catalog
from openpersonalize.resources import batch_inference_jobs as batch
from openpersonalize.resources import filters, lifecycle, solution_versions
from openpersonalize.store.database import ResourceRow

KIND = lifecycle.Kind(
    "batch-segment-job", "batchSegmentJobArn", "batch segment job", name_key="jobName"
)
MAX_JOBS_IN_FLIGHT = 5  # pending or in progress, per account (the service's quota)
DEFAULT_NUM_RESULTS, MAX_NUM_RESULTS = 25, 5_000_000
ATTRIBUTES_RECIPE = "aws-item-attribute-affinity"


def create(context: Context, request: dict[str, Any]) -> dict[str, Any]:
    num_results = request.get("numResults", DEFAULT_NUM_RESULTS)
    if not 1 <= num_results <= MAX_NUM_RESULTS:
        raise InvalidInputException(
            f"numResults (users per segment) must be from 1 to {MAX_NUM_RESULTS:,}, "
            f"not {num_results}."
        )
    batch.check_input_path(request["jobInput"]["s3DataSource"]["path"])
    batch.check_output_path(request["jobOutput"]["s3DataDestination"]["path"])
    name = request["jobName"]
    arn = context.arn(KIND.resource_type, name)
    now = context.now()
    with context.database.transaction() as session:
        version = batch.active_version(
            session, request["solutionVersionArn"], "a batch segment job"
        )
        recipe = catalog.get_recipe(version.attributes.get("recipeArn") or "")
        if recipe.recipe_type != "USER_SEGMENTATION":
            raise InvalidInputException(
                f"Batch segment jobs need a solution version of a USER_SEGMENTATION recipe "
                f"(aws-item-affinity, aws-item-attribute-affinity); {version.arn} uses "
                f"{recipe.name} ({recipe.recipe_type}): use a batch inference job."
            )
        filter_arn = request.get("filterArn")
        if filter_arn:
            _check_filter(session, filter_arn, version, recipe)
        lifecycle.require_room_in_flight(session, KIND, MAX_JOBS_IN_FLIGHT)
        attributes = {
            "solutionVersionArn": version.arn,
            "filterArn": filter_arn,
            "numResults": num_results,
            "jobInput": request["jobInput"],
            "jobOutput": request["jobOutput"],
            "roleArn": request["roleArn"],
        }
        lifecycle.create_pending(
            session,
            KIND,
            arn=arn,
            name=name,
            now=now,
            parent_arn=version.arn,
            attributes={k: v for k, v in attributes.items() if v is not None},
            job="batch_segment",
            tags=request.get("tags"),
        )
    return {"batchSegmentJobArn": arn}


def _check_filter(
    session: Any, filter_arn: str, version: ResourceRow, recipe: catalog.Recipe
) -> None:
    batch.check_filter(session, filter_arn, version)
    expression = lifecycle.get(session, filters.KIND, filter_arn).attributes["filterExpression"]
    parsed = parse_filter(expression)
    if any(e.target != "UserID" for e in parsed.expressions):
        raise InvalidInputException(
            f"The filter {filter_arn} selects items; a batch segment job needs a user-segment "
            "filter (INCLUDE UserID WHERE ... or EXCLUDE UserID WHERE ...)."
        )
    reads_interactions = any(
        c.dataset == "Interactions" for e in parsed.expressions for c in e.conditions
    )
    if recipe.name == ATTRIBUTES_RECIPE and reads_interactions:
        raise InvalidInputException(
            f"Item-Attribute-Affinity segments cannot use Interactions filters ({filter_arn})."
        )


describe = lifecycle.describe_handler(KIND, "batchSegmentJob")
list_ = lifecycle.list_handler(KIND, "batchSegmentJobs", parent=solution_versions.KIND)


def _run(job: runner.JobHandle) -> None:
    from openpersonalize.serving.segments import Segmenter

    context = job.context
    attributes = dict(lifecycle.begin_job(context, KIND, job.resource_arn).attributes)
    segmenter = Segmenter(
        context,
        attributes["solutionVersionArn"],
        int(attributes.get("numResults", DEFAULT_NUM_RESULTS)),
        attributes.get("filterArn"),
    )
    by_attributes = segmenter.deployed.recipe.name == ATTRIBUTES_RECIPE

    def answer(record: Any) -> dict[str, Any]:
        if not isinstance(record, dict):
            raise InvalidInputException("Each input line must be a JSON object.")
        if record.get("filterValues") is not None and not isinstance(record["filterValues"], dict):
            raise InvalidInputException("filterValues must be an object of strings.")
        if by_attributes:
            users = segmenter.attribute_affinity(record)
        else:
            users = segmenter.item_affinity(record)
        return {"usersList": users, "recommendedUsers": users}

    def entry(record: Any, output: Any, error: str | None) -> dict[str, Any]:
        if by_attributes and isinstance(record, dict):  # the guide: at the top level too
            return {**record, "input": record, "output": output, "error": error}
        return {"input": record, "output": output, "error": error}

    total = batch.answer_inputs(job, attributes, answer, entry, "batch-segment")
    lifecycle.finish_job(context, KIND, job.resource_arn)
    job.progress(1.0, f"{total} segments written to {attributes['jobOutput']}")


runner.register("batch_segment", _run, batch.fail_job)
