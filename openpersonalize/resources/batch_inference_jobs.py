"""Batch inference jobs: recommendations for every line of a JSON-lines file in S3, in a worker.

The input is one object or every object under a prefix (S3 prefix semantics: the
path need not end in "/"); each is read line by line and answered with the
serving engine against the solution version itself (no campaign needed). One
output line per input line, as the service writes them:
``{"input": {...}, "output": {"recommendedItems": [...], "scores": [...]}, "error": null}``;
a line that cannot be answered (bad JSON, a missing userId, bad filter values)
gets ``"output": null`` and the reason in ``"error"``, and the job carries on.
The job fails, with a reason naming the file and line, only when a file is not
text, when no line of a file is JSON, or when no input file is found.

Each input file ``.../name.json`` becomes ``{output prefix}name.json.out``: a
file in the local S3 root (``--s3-local-root``) or an object uploaded through
boto3 to the configured S3 endpoint.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from openpersonalize.context import Context
from openpersonalize.data.importer import ImportFailed
from openpersonalize.data.sources import parse_s3_location, s3_client
from openpersonalize.errors import (
    InvalidInputException,
    ResourceInUseException,
    ServiceError,
)
from openpersonalize.jobs import runner
from openpersonalize.recipes import catalog
from openpersonalize.resources import campaigns, filters, lifecycle, solution_versions
from openpersonalize.store.database import ResourceRow

KIND = lifecycle.Kind(
    "batch-inference-job", "batchInferenceJobArn", "batch inference job", name_key="jobName"
)
MAX_JOBS_IN_FLIGHT = 5  # pending or in progress, per account (the service's quota)
DEFAULT_NUM_RESULTS, MAX_NUM_RESULTS = 25, 500
MODE = "BATCH_INFERENCE"
# Recipes the service cannot run batch inference for.
NO_BATCH_RECIPES = ("aws-trending-now", "aws-next-best-action")
OUTPUT_SUFFIX = ".out"
PROGRESS_EVERY = 1000  # lines


class BatchJobFailed(Exception):
    """The job cannot finish; the message becomes its failureReason."""


# ------------------------------------------------------------------------------ the API


def create(context: Context, request: dict[str, Any]) -> dict[str, Any]:
    mode = request.get("batchInferenceJobMode") or MODE
    if mode != MODE:
        raise InvalidInputException(
            f"batchInferenceJobMode {mode} is not supported by openpersonalize; use {MODE}."
        )
    if request.get("themeGenerationConfig"):
        raise InvalidInputException(
            "themeGenerationConfig is not supported: openpersonalize does not generate themes "
            "(batchInferenceJobMode THEME_GENERATION)."
        )
    num_results = request.get("numResults", DEFAULT_NUM_RESULTS)
    if not 1 <= num_results <= MAX_NUM_RESULTS:
        raise InvalidInputException(
            f"numResults must be from 1 to {MAX_NUM_RESULTS}, not {num_results}."
        )
    input_path = request["jobInput"]["s3DataSource"]["path"]
    output_path = request["jobOutput"]["s3DataDestination"]["path"]
    check_input_path(input_path)
    check_output_path(output_path)
    config = request.get("batchInferenceJobConfig") or {}
    name = request["jobName"]
    arn = context.arn(KIND.resource_type, name)
    now = context.now()
    with context.database.transaction() as session:
        version = active_version(session, request["solutionVersionArn"], "batch inference")
        _check_recipe(version)
        if config.get("rankingInfluence") and version.attributes.get("recipeArn") != (
            catalog.RECIPES["aws-semantic-similarity"].arn
        ):
            raise InvalidInputException(
                "batchInferenceJobConfig.rankingInfluence is only for aws-semantic-similarity "
                f"solution versions, not {version.arn}."
            )
        if config.get("itemExplorationConfig"):
            campaigns.check_config(version.arn, version, config)
        filter_arn = request.get("filterArn")
        if filter_arn:
            check_filter(session, filter_arn, version)
        lifecycle.require_room_in_flight(session, KIND, MAX_JOBS_IN_FLIGHT)
        attributes = {
            "solutionVersionArn": version.arn,
            "filterArn": filter_arn,
            "numResults": num_results,
            "jobInput": request["jobInput"],
            "jobOutput": request["jobOutput"],
            "batchInferenceJobConfig": config or None,
            "roleArn": request["roleArn"],
            "batchInferenceJobMode": mode,
        }
        lifecycle.create_pending(
            session,
            KIND,
            arn=arn,
            name=name,
            now=now,
            parent_arn=version.arn,
            attributes={k: v for k, v in attributes.items() if v is not None},
            job="batch_inference",
            tags=request.get("tags"),
        )
    return {"batchInferenceJobArn": arn}


describe = lifecycle.describe_handler(KIND, "batchInferenceJob")
list_ = lifecycle.list_handler(KIND, "batchInferenceJobs", parent=solution_versions.KIND)


def active_version(session: Any, arn: str, needed_by: str) -> ResourceRow:
    """The solution version a batch job answers with; ResourceInUseException unless ACTIVE."""
    version = lifecycle.get(session, solution_versions.KIND, arn)
    if version.status != lifecycle.ACTIVE:
        raise ResourceInUseException(
            f"The solution version {version.arn} is {version.status}; {needed_by} needs an "
            "ACTIVE solution version."
        )
    return version


def check_input_path(path: str) -> None:
    try:
        _bucket, key = parse_s3_location(path)
    except ImportFailed as error:
        raise InvalidInputException(f"jobInput.s3DataSource.path: {error}") from None
    if ".." in key.split("/"):
        raise InvalidInputException(f"jobInput.s3DataSource.path {path} must not contain '..'.")


def check_output_path(path: str) -> None:
    try:
        bucket, key = parse_s3_location(path)
    except ImportFailed as error:
        raise InvalidInputException(f"jobOutput.s3DataDestination.path: {error}") from None
    if key and not key.endswith("/"):
        raise InvalidInputException(
            f"jobOutput.s3DataDestination.path {path} must name a folder: end it with '/' "
            f"(for example s3://{bucket}/{key}/)."
        )
    if ".." in key.split("/"):
        raise InvalidInputException(
            f"jobOutput.s3DataDestination.path {path} must not contain '..'."
        )


def _check_recipe(version: ResourceRow) -> None:
    recipe_arn = version.attributes.get("recipeArn")
    if not recipe_arn:  # AutoML: the recipe is known once trained; the engine checks then
        return
    recipe = catalog.get_recipe(recipe_arn)
    if recipe.name in NO_BATCH_RECIPES or recipe.recipe_type not in (
        "USER_PERSONALIZATION",
        "RELATED_ITEMS",
        "PERSONALIZED_RANKING",
    ):
        raise InvalidInputException(
            f"Batch inference jobs cannot use the {recipe.name} recipe "
            f"({recipe.recipe_type}); use a batch segment job or another recipe."
        )


def check_filter(session: Any, filter_arn: str, version: ResourceRow) -> None:
    row = lifecycle.get(session, filters.KIND, filter_arn)
    lifecycle.require_usable(row, filters.KIND)
    if row.parent_arn != version.attributes.get("datasetGroupArn"):
        raise InvalidInputException(
            f"The filter {filter_arn} belongs to another dataset group than the solution version "
            f"{version.arn}."
        )


# ------------------------------------------------------------------------------ the job


def _run(job: runner.JobHandle) -> None:
    from openpersonalize.serving.engine import MODELS  # deferred: the engine is heavy

    context = job.context
    attributes = dict(lifecycle.begin_job(context, KIND, job.resource_arn).attributes)
    deployed = MODELS.get(context, attributes["solutionVersionArn"])
    answer = _Answerer(context, attributes, deployed.recipe.recipe_type)
    total = answer_inputs(job, attributes, answer, _entry, "batch-inference")
    lifecycle.finish_job(context, KIND, job.resource_arn)
    output_path = attributes["jobOutput"]["s3DataDestination"]["path"]
    job.progress(1.0, f"{total} lines answered, written to {output_path}")


Answer = Callable[[Any], dict[str, Any]]  # an input record -> its output; ServiceError if not
Entry = Callable[[Any, Any, str | None], dict[str, Any]]  # (record, output, error) -> a line


def _entry(record: Any, output: Any, error: str | None) -> dict[str, Any]:
    return {"input": record, "output": output, "error": error}


def answer_inputs(
    job: runner.JobHandle, attributes: dict[str, Any], answer: Answer, entry: Entry, label: str
) -> int:
    """Answer every line of every input file of a batch job (`jobInput`) and write each
    file's answers to the output folder (`jobOutput`) as ``<name>.out``; the lines written."""
    context = job.context
    input_path = attributes["jobInput"]["s3DataSource"]["path"]
    output_path = attributes["jobOutput"]["s3DataDestination"]["path"]
    out_bucket, out_prefix = parse_s3_location(output_path)  # "" (the bucket) or ends in "/"
    settings = context.settings
    store = Store(
        settings.s3_endpoint_url,
        Path(settings.s3_local_root) if settings.s3_local_root else None,
    )
    scratch = context.data_dir / "scratch" / f"{label}-{job.job_id}"
    try:
        inputs = store.list_inputs(input_path, output_path)
        job.progress(0.0, f"{len(inputs)} input file(s) at {input_path}, writing to {output_path}")
        scratch.mkdir(parents=True, exist_ok=True)
        total = 0
        for number, source in enumerate(inputs):
            local_input = store.fetch(source, scratch / f"in-{number:05d}")
            local_output = scratch / f"out-{number:05d}"
            count = _answer_file(source.location, local_input, local_output, answer, entry, job)
            destination = f"s3://{out_bucket}/{out_prefix}{source.relative_name}{OUTPUT_SUFFIX}"
            store.store(local_output, destination)
            total += count
            job.progress(
                (number + 1) / len(inputs), f"{source.location}: {count} lines -> {destination}"
            )
        if total == 0:
            raise BatchJobFailed(f"The input at {input_path} has no records (every file is empty).")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return total


def fail_job(context: Context, arn: str, reason: str) -> None:
    """A batch job that cannot finish ends CREATE FAILED with the reason."""
    with context.database.transaction() as session:
        row = lifecycle.find(session, arn)
        if row is not None and row.status in lifecycle.IN_FLIGHT:
            lifecycle.set_status(row, lifecycle.CREATE_FAILED, context.now(), reason)


runner.register("batch_inference", _run, fail_job)


class _Answerer:
    """Answers one parsed input line with the serving engine; ServiceError when it cannot."""

    def __init__(self, context: Context, attributes: dict[str, Any], recipe_type: str) -> None:
        self.context = context
        self.recipe_type = recipe_type
        self.base: dict[str, Any] = {
            "solutionVersionArn": attributes["solutionVersionArn"],
            "numResults": attributes.get("numResults", DEFAULT_NUM_RESULTS),
        }
        if attributes.get("filterArn"):
            self.base["filterArn"] = attributes["filterArn"]
        # Exploration settings reach the engine as a campaign's would.
        self.base["campaignConfig"] = attributes.get("batchInferenceJobConfig") or {}

    def __call__(self, record: Any) -> dict[str, Any]:
        from openpersonalize.serving.engine import get_personalized_ranking, get_recommendations

        if not isinstance(record, dict):
            raise InvalidInputException("Each input line must be a JSON object.")
        body = dict(self.base)
        if record.get("filterValues") is not None:
            if not isinstance(record["filterValues"], dict):
                raise InvalidInputException("filterValues must be an object of strings.")
            body["filterValues"] = record["filterValues"]
        if self.recipe_type == "RELATED_ITEMS":
            body["itemId"] = _text(record, "itemId")
            return _items(get_recommendations(self.context, body)["itemList"])
        body["userId"] = _text(record, "userId")
        if self.recipe_type != "PERSONALIZED_RANKING":
            return _items(get_recommendations(self.context, body)["itemList"])
        item_list = record.get("itemList")
        if not isinstance(item_list, list) or not item_list:
            raise InvalidInputException(
                "itemList (a non-empty list of item IDs) is required for a PERSONALIZED_RANKING "
                "solution version."
            )
        if not all(isinstance(item, str) and item for item in item_list):
            raise InvalidInputException("itemList must hold item IDs (non-empty strings).")
        body["inputList"] = item_list
        del body["numResults"]  # ranking answers the whole list, as GetPersonalizedRanking does
        return _items(get_personalized_ranking(self.context, body)["personalizedRanking"])


def _text(record: dict[str, Any], key: str) -> str:
    value = record.get(key)
    if not isinstance(value, str) or not value:
        raise InvalidInputException(f"{key} (a non-empty string) is required on each input line.")
    return value


def _items(entries: list[dict[str, Any]]) -> dict[str, Any]:
    # Items a ranking model never saw come last without a score; 0.0 keeps the lists aligned.
    return {
        "recommendedItems": [entry["itemId"] for entry in entries],
        "scores": [entry.get("score", 0.0) for entry in entries],
    }


def _answer_file(
    location: str, source: Path, target: Path, answer: Answer, entry: Entry, job: runner.JobHandle
) -> int:
    """Write one output line per non-blank input line; the number of lines written."""
    lines = parsed = 0
    first_bad = ""
    with source.open("rb") as reader, target.open("w", encoding="utf-8") as writer:
        for number, raw in enumerate(reader, start=1):
            try:
                text = raw.decode("utf-8-sig" if number == 1 else "utf-8").strip()
            except UnicodeDecodeError as error:
                raise BatchJobFailed(
                    f"{location} line {number} is not UTF-8 text ({error.reason}); the input must "
                    "be JSON lines."
                ) from None
            if not text:
                continue
            lines += 1
            try:
                record = json.loads(text)
            except json.JSONDecodeError as error:
                line = entry(text, None, f"Invalid JSON: {error}")
                first_bad = first_bad or f"line {number}: Invalid JSON: {error}"
            else:
                parsed += 1
                line = _answer_record(record, answer, entry, f"{location} line {number}")
            writer.write(json.dumps(line, separators=(",", ":"), ensure_ascii=False) + "\n")
            if lines % PROGRESS_EVERY == 0:
                job.progress(0.0, f"{location}: {lines} lines")
    if lines and not parsed:
        raise BatchJobFailed(f"{location} is not JSON lines ({first_bad}).")
    return lines


def _answer_record(record: Any, answer: Answer, entry: Entry, where: str) -> dict[str, Any]:
    try:
        output = answer(record)
    except ServiceError as error:  # this line's problem: reported on the line, the job goes on
        return entry(record, None, error.message)
    except Exception as error:  # not the input's fault: stop, saying where
        raise BatchJobFailed(f"{where}: could not answer {record!r:.200}: {error}") from error
    return entry(record, output, None)


# ------------------------------------------------------------------------------ storage


@dataclass(frozen=True)
class _Input:
    location: str  # s3://bucket/key
    bucket: str
    key: str
    relative_name: str  # the output name: the key after the input path's folder
    local: Path | None = None  # the file itself when a local S3 root stands in for S3


class Store:
    """Objects under the local S3 root (``{root}/{bucket}/{key}``) or through boto3."""

    def __init__(self, endpoint_url: str | None, local_root: Path | None) -> None:
        self.endpoint_url = endpoint_url
        self.local_root = Path(os.path.abspath(local_root)) if local_root else None
        self._client: Any = None

    def list_inputs(self, path: str, output_path: str) -> list[_Input]:
        bucket, key = _parse(path)
        folder = key.rsplit("/", 1)[0] + "/" if "/" in key else ""
        out_bucket, out_key = _parse(output_path)
        # Outputs written inside the input folder must not be read as input by the next job.
        skip = out_key if out_bucket == bucket and len(out_key) > len(key) else None
        keys = self._list_local(bucket, key) if self.local_root else self._list_s3(bucket, key)
        keys = [k for k in keys if not (skip and k.startswith(skip))]
        if not keys:
            raise BatchJobFailed(f"No input file found at {path}.")
        return [
            _Input(
                f"s3://{bucket}/{k}",
                bucket,
                k,
                k[len(folder) :],
                self._local_path(bucket, k) if self.local_root else None,
            )
            for k in keys
        ]

    def fetch(self, source: _Input, scratch: Path) -> Path:
        if source.local is not None:
            return source.local
        with self._errors(source.location, "read"):
            self._s3().download_file(source.bucket, source.key, str(scratch))
        return scratch

    def store(self, local: Path, location: str) -> None:
        bucket, key = _parse(location)
        if self.local_root is None:
            # put_object, not upload_file: its errors stay ClientErrors (NoSuchBucket, ...).
            with self._errors(location, "write"), local.open("rb") as body:
                self._s3().put_object(
                    Bucket=bucket, Key=key, Body=body, ContentType="application/json"
                )
            return
        if not (self.local_root / bucket).is_dir():
            raise BatchJobFailed(f"Bucket {bucket} does not exist (output location {location}).")
        target = self._local_path(bucket, key)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.partial")
        shutil.copyfile(local, partial)
        os.replace(partial, target)  # readers never see half a file

    # local root

    def _local_path(self, bucket: str, key: str) -> Path:
        assert self.local_root is not None
        target = Path(os.path.normpath(os.path.join(self.local_root, bucket, *key.split("/"))))
        if os.path.commonpath([self.local_root, target]) != str(self.local_root):
            raise BatchJobFailed(f"s3://{bucket}/{key} is outside the S3 root.")
        return target

    def _list_local(self, bucket: str, key: str) -> list[str]:
        bucket_dir = self._local_path(bucket, "")
        if not bucket_dir.is_dir():
            raise BatchJobFailed(
                f"Bucket {bucket} does not exist (input location s3://{bucket}/{key})."
            )
        exact = self._local_path(bucket, key) if key else None
        if exact is not None and not key.endswith("/") and exact.is_file():
            return [key]
        start = self._local_path(bucket, key.rsplit("/", 1)[0] if "/" in key else "")
        found = []
        for directory, _dirs, files in os.walk(start):
            for filename in files:
                relative = Path(directory, filename).relative_to(bucket_dir).as_posix()
                if relative.startswith(key) and not filename.startswith("."):
                    found.append(relative)
        return sorted(found)  # S3 lists keys in byte order

    # boto3

    def _s3(self) -> Any:
        if self._client is None:
            self._client = s3_client(self.endpoint_url)
        return self._client

    def _list_s3(self, bucket: str, key: str) -> list[str]:
        location = f"s3://{bucket}/{key}"
        with self._errors(location, "read"):
            client = self._s3()
            if key and not key.endswith("/"):
                try:
                    client.head_object(Bucket=bucket, Key=key)
                    return [key]
                except Exception as error:
                    if _code(error) not in ("404", "NoSuchKey", "NotFound"):
                        raise
            keys = []
            for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=key):
                keys += [o["Key"] for o in page.get("Contents", []) if not o["Key"].endswith("/")]
        return sorted(keys)

    @staticmethod
    @contextmanager
    def _errors(location: str, verb: str) -> Iterator[None]:
        """Turn boto3's errors into a BatchJobFailed that names the location."""
        import botocore.exceptions as bx

        try:
            yield
        except bx.ClientError as error:
            code = _code(error)
            message = error.response.get("Error", {}).get("Message") or str(error)
            if code == "NoSuchBucket":
                reason = f"The bucket of {location} does not exist"
            elif code in ("NoSuchKey", "404", "NotFound"):
                reason = f"No object found at {location}"
            elif code in ("AccessDenied", "403", "Forbidden"):
                reason = f"Access denied to {location}"
            else:
                reason = f"Could not {verb} {location}: {code} {message}".strip()
            raise BatchJobFailed(reason) from None
        except bx.NoCredentialsError:
            raise BatchJobFailed(f"No S3 credentials are configured to {verb} {location}") from None
        except bx.BotoCoreError as error:
            raise BatchJobFailed(f"Could not {verb} {location}: {error}") from None


def _code(error: Any) -> str:
    return str(getattr(error, "response", {}).get("Error", {}).get("Code", ""))


def _parse(location: str) -> tuple[str, str]:
    try:
        return parse_s3_location(location)
    except ImportFailed as error:
        raise BatchJobFailed(str(error)) from None
