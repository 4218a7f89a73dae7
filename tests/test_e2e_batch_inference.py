"""Batch inference jobs end to end: JSON lines in the local S3 root, recommendations back."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from helpers import active_dataset, active_group, error_code, run_import, schema, unique
from test_e2e_imports import moto_s3  # noqa: F401 - a fixture
from test_e2e_solutions import (  # noqa: F401 - `group` is a fixture
    POPULARITY,
    create_solution,
    group,
    interactions_csv,
    items_csv,
    seen_items,
    train,
)

from openpersonalize.testing.server import ServerProcess, wait_for_status

RANKING = "arn:aws:personalize:::recipe/aws-personalized-ranking"
ROLE = "arn:aws:iam::000000000000:role/PersonalizeBatchRole"
BUCKET = "batch"
GENRE = {line.split(",")[0]: line.split(",")[2] for line in items_csv().splitlines()[1:]}


def write_input(s3_root: Path, key: str, lines: list[Any]) -> str:
    """Write JSON lines (strings are written as they are) under s3_root; return the s3:// path."""
    path = s3_root / BUCKET / key
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines))
    return f"s3://{BUCKET}/{key}"


def start_job(personalize, version: str, input_path: str, **fields: Any) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    """Create a job writing to its own output folder; (job ARN, output prefix under the bucket)."""
    name = fields.pop("jobName", None) or unique("batch")
    output = fields.pop("output", f"out/{name}/")
    arn = personalize.create_batch_inference_job(
        jobName=name,
        solutionVersionArn=version,
        jobInput={"s3DataSource": {"path": input_path}},
        jobOutput={"s3DataDestination": {"path": f"s3://{BUCKET}/{output}"}},
        roleArn=ROLE,
        **fields,
    )["batchInferenceJobArn"]
    return arn, output


def finish(personalize, arn: str) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    return wait_for_status(
        personalize.describe_batch_inference_job,
        "batchInferenceJob",
        "batchInferenceJobArn",
        arn,
        timeout=60,
    )


def read_output(s3_root: Path, output: str, name: str) -> list[dict[str, Any]]:
    text = (s3_root / BUCKET / output / name).read_text()
    return [json.loads(line) for line in text.splitlines()]


@pytest.fixture(scope="module")
def versions(personalize, group) -> dict[str, str]:  # type: ignore[no-untyped-def]  # noqa: F811
    """An aws-user-personalization and an aws-personalized-ranking version, trained side by side."""
    pending = {
        "personalization": create_solution(personalize, group),
        "ranking": create_solution(personalize, group, recipeArn=RANKING),
    }
    started = {
        key: personalize.create_solution_version(solutionArn=solution)["solutionVersionArn"]
        for key, solution in pending.items()
    }
    for arn in started.values():
        version = wait_for_status(
            personalize.describe_solution_version,
            "solutionVersion",
            "solutionVersionArn",
            arn,
            timeout=300,
        )
        assert version["status"] == "ACTIVE", version
    return started


def test_recommendations_for_every_user_line(personalize, versions, s3_root, group) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    first = write_input(
        s3_root,
        "users/part-1.json",
        [{"userId": f"u{n}"} for n in range(6)] + ["this is not json", {"itemId": "c1"}, ""],
    )
    write_input(s3_root, "users/part-2.json", [{"userId": "u6"}, {"userId": "someone-new"}])
    assert first.endswith("part-1.json")
    unseen = personalize.create_filter(
        name=unique("unseen"),
        datasetGroupArn=group["group"],
        filterExpression='EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("*")',
    )["filterArn"]
    arn, output = start_job(
        personalize,
        versions["personalization"],
        f"s3://{BUCKET}/users/",
        numResults=10,
        filterArn=unseen,
        tags=[{"tagKey": "team", "tagValue": "email"}],
    )
    assert arn.endswith(":batch-inference-job/" + output.split("/")[1])
    job = finish(personalize, arn)
    assert job["status"] == "ACTIVE", job
    seen = seen_items()
    part1 = read_output(s3_root, output, "part-1.json.out")
    part2 = read_output(s3_root, output, "part-2.json.out")
    assert [line["input"] for line in part1[:6]] == [{"userId": f"u{n}"} for n in range(6)]
    for line in part1[:6] + part2:
        assert line["error"] is None, line
        items = line["output"]["recommendedItems"]
        assert len(items) == len(line["output"]["scores"]) == 10
        assert len(set(items)) == 10
        assert not set(items) & seen.get(line["input"]["userId"], set()), line
    assert all(0 <= score <= 1 for line in part2 for score in line["output"]["scores"])
    # a line that is not JSON, and one without a userId, get an error each; blank lines are skipped
    assert len(part1) == 8
    assert part1[6]["input"] == "this is not json" and part1[6]["output"] is None
    assert "JSON" in part1[6]["error"]
    assert part1[7]["output"] is None and "userId" in part1[7]["error"]
    tags = personalize.list_tags_for_resource(resourceArn=arn)["tags"]
    assert tags == [{"tagKey": "team", "tagValue": "email"}]


def test_filter_applies_to_every_line(personalize, versions, group, s3_root) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    genre = personalize.create_filter(
        name=unique("f"),
        datasetGroupArn=group["group"],
        filterExpression="INCLUDE ItemID WHERE Items.GENRE IN ($G)",
    )["filterArn"]
    described = wait_for_status(personalize.describe_filter, "filter", "filterArn", genre)
    assert described["status"] == "ACTIVE"
    path = write_input(
        s3_root,
        "filtered/users.json",
        [
            {"userId": "u4", "filterValues": {"G": '"g1"'}},
            {"userId": "u5", "filterValues": {"G": '"g2", "g3"'}},
            {"userId": "u6"},
        ],
    )
    arn, output = start_job(
        personalize, versions["personalization"], path, numResults=15, filterArn=genre
    )
    job = finish(personalize, arn)
    assert job["status"] == "ACTIVE", job
    assert job["filterArn"] == genre
    lines = read_output(s3_root, output, "users.json.out")
    assert len(lines[0]["output"]["recommendedItems"]) == 15
    assert {GENRE[item] for item in lines[0]["output"]["recommendedItems"]} == {"g1"}
    assert {GENRE[item] for item in lines[1]["output"]["recommendedItems"]} <= {"g2", "g3"}
    assert lines[2]["output"] is None and "G" in lines[2]["error"]  # the filter needs a value


def test_ranking_version_ranks_each_item_list(personalize, versions, s3_root) -> None:  # type: ignore[no-untyped-def]
    path = write_input(
        s3_root,
        "ranking/input.json",
        [
            {"userId": "u4", "itemList": ["c30", "c3", "never-seen", "c60", "c7"]},
            {"userId": "u5"},
        ],
    )
    arn, output = start_job(personalize, versions["ranking"], path)
    job = finish(personalize, arn)
    assert job["status"] == "ACTIVE", job
    ranked, missing = read_output(s3_root, output, "input.json.out")
    items = ranked["output"]["recommendedItems"]
    assert sorted(items) == sorted(["c30", "c3", "never-seen", "c60", "c7"])
    assert set(items[:2]) == {"c3", "c7"}  # u4's taste group first
    assert items[-1] == "never-seen"  # items the model never saw keep their place at the end
    assert len(ranked["output"]["scores"]) == 5
    assert missing["output"] is None and "itemList" in missing["error"]


def test_bad_input_fails_the_job_with_a_reason(personalize, versions, s3_root) -> None:  # type: ignore[no-untyped-def]
    version = versions["personalization"]
    not_json = write_input(s3_root, "bad/users.csv", ["USER_ID", "u1", "u2"])
    binary = s3_root / BUCKET / "bad" / "users.bin"
    binary.write_bytes(b'{"userId": "u1"}\n\xff\xfe\x00garbage\n')
    jobs = {
        "missing": start_job(personalize, version, f"s3://{BUCKET}/nothing-here/")[0],
        "not_json": start_job(personalize, version, not_json)[0],
        "binary": start_job(personalize, version, f"s3://{BUCKET}/bad/users.bin")[0],
        "no_bucket": start_job(personalize, version, "s3://no-such-bucket/users.json")[0],
    }
    reasons = {}
    for key, arn in jobs.items():
        job = finish(personalize, arn)
        assert job["status"] == "CREATE FAILED", job
        reasons[key] = job["failureReason"]
    assert "No input file found at s3://batch/nothing-here/" in reasons["missing"]
    assert f"{not_json} is not JSON lines (line 1" in reasons["not_json"]
    assert "s3://batch/bad/users.bin line 2 is not UTF-8" in reasons["binary"]
    assert "no-such-bucket" in reasons["no_bucket"]


def test_create_refusals(personalize, versions, group, s3_root) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    version = versions["personalization"]
    path = write_input(s3_root, "refusals/users.json", [{"userId": "u1"}])

    def refused(code: str, fragment: str, **fields: Any) -> None:
        fields.setdefault("solutionVersionArn", version)
        with pytest.raises(ClientError) as caught:
            start_job(
                personalize, input_path=path, version=fields.pop("solutionVersionArn"), **fields
            )
        assert error_code(caught.value) == code, caught.value
        assert fragment in caught.value.response["Error"]["Message"]

    unknown = version.rsplit("/", 1)[0] + "/00000000"
    refused("ResourceNotFoundException", unknown, solutionVersionArn=unknown)
    refused("InvalidInputException", "not supported", batchInferenceJobMode="THEME_GENERATION")
    refused(
        "InvalidInputException",
        "themeGenerationConfig",
        themeGenerationConfig={"fieldsForThemeGeneration": {"itemName": "TITLE"}},
    )
    refused("InvalidInputException", "numResults", numResults=501)
    refused("InvalidInputException", "numResults", numResults=0)
    refused("InvalidInputException", "end it with '/'", output="out/no-slash")
    refused(
        "ResourceNotFoundException",
        "filter",
        filterArn=version.split(":solution/")[0] + ":filter/nope",
    )
    refused(
        "InvalidInputException",
        "explorationWeight",
        batchInferenceJobConfig={"itemExplorationConfig": {"explorationWeight": "2"}},
    )
    with pytest.raises(ClientError) as caught:
        personalize.create_batch_inference_job(
            jobName=unique("batch"),
            solutionVersionArn=version,
            jobInput={"s3DataSource": {"path": path}},
            jobOutput={"s3DataDestination": {"path": "https://example.com/out/"}},
            roleArn=ROLE,
        )
    assert error_code(caught.value) == "InvalidInputException"
    # a version still training cannot be used
    training = personalize.create_solution_version(
        solutionArn=create_solution(personalize, group, recipeArn=POPULARITY)
    )["solutionVersionArn"]
    try:
        refused("ResourceInUseException", "ACTIVE", solutionVersionArn=training)
    finally:
        personalize.stop_solution_version_creation(solutionVersionArn=training)
    # names are unique
    arn, _ = start_job(personalize, version, path, jobName=unique("dup"))
    name = arn.rsplit("/", 1)[1]
    refused("ResourceAlreadyExistsException", name, jobName=name)
    assert finish(personalize, arn)["status"] == "ACTIVE"


def test_describe_and_list(personalize, versions, s3_root) -> None:  # type: ignore[no-untyped-def]
    version = versions["ranking"]
    path = write_input(s3_root, "listing/users.json", [{"userId": "u1", "itemList": ["c1"]}])
    created = [
        start_job(
            personalize,
            version,
            path,
            numResults=7,
            batchInferenceJobConfig={"itemExplorationConfig": {}},
        )[0]
        for _ in range(3)
    ]
    for arn in created:
        assert finish(personalize, arn)["status"] == "ACTIVE"
    job = personalize.describe_batch_inference_job(batchInferenceJobArn=created[0])[
        "batchInferenceJob"
    ]
    assert job["batchInferenceJobArn"] == created[0]
    assert job["jobName"] == created[0].rsplit("/", 1)[1]
    assert job["solutionVersionArn"] == version
    assert job["numResults"] == 7
    assert job["jobInput"] == {"s3DataSource": {"path": path}}
    assert job["jobOutput"]["s3DataDestination"]["path"].endswith(f"/out/{job['jobName']}/")
    assert job["roleArn"] == ROLE
    assert job["batchInferenceJobMode"] == "BATCH_INFERENCE"
    assert "filterArn" not in job and "failureReason" not in job
    assert job["creationDateTime"] <= job["lastUpdatedDateTime"]
    listed: list[dict[str, Any]] = []
    token = None
    while True:
        page = personalize.list_batch_inference_jobs(
            solutionVersionArn=version, maxResults=2, **({"nextToken": token} if token else {})
        )
        listed += page["batchInferenceJobs"]
        token = page.get("nextToken")
        if not token:
            break
    arns = [j["batchInferenceJobArn"] for j in listed]
    assert len(arns) == len(set(arns)) >= 3
    assert set(created) <= set(arns)
    assert {j["solutionVersionArn"] for j in listed} == {version}
    assert {j["status"] for j in listed} == {"ACTIVE"}
    assert {j["batchInferenceJobMode"] for j in listed} == {"BATCH_INFERENCE"}
    everything = personalize.list_batch_inference_jobs()["batchInferenceJobs"]
    assert set(created) <= {j["batchInferenceJobArn"] for j in everything}
    with pytest.raises(ClientError) as caught:
        personalize.describe_batch_inference_job(
            batchInferenceJobArn=created[0].rsplit("/", 1)[0] + "/nope"
        )
    assert error_code(caught.value) == "ResourceNotFoundException"


def test_reads_and_writes_an_s3_compatible_endpoint(moto_s3: str, tmp_path: Path) -> None:  # noqa: F811
    """Without a local root the job downloads its input and uploads `<name>.out` through boto3."""
    credentials = {"aws_access_key_id": "moto", "aws_secret_access_key": "moto"}
    s3 = boto3.client("s3", endpoint_url=moto_s3, region_name="us-east-1", **credentials)
    s3.create_bucket(Bucket="recs")
    s3.put_object(Bucket="recs", Key="data/interactions.csv", Body=interactions_csv().encode())
    lines = [{"userId": "u1"}, {"userId": "u2"}, "{broken"]
    body = "".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines)
    s3.put_object(Bucket="recs", Key="batch/in/users.json", Body=body.encode())
    environment = {k.upper(): v for k, v in credentials.items()}
    environment["AWS_DEFAULT_REGION"] = "us-east-1"
    settings = {"s3_endpoint_url": moto_s3, "workers": "1"}
    with ServerProcess(tmp_path / "server", settings=settings, environment=environment) as server:
        personalize = server.client()
        group_arn = active_group(personalize)
        dataset = active_dataset(personalize, group_arn, schema(personalize))
        imported = run_import(personalize, dataset, "s3://recs/data/interactions.csv")
        assert imported["status"] == "ACTIVE", imported
        solution = create_solution(personalize, {"group": group_arn}, recipeArn=POPULARITY)
        version = train(personalize, solution)
        assert version["status"] == "ACTIVE", version
        arn = personalize.create_batch_inference_job(
            jobName="from-s3",
            solutionVersionArn=version["solutionVersionArn"],
            numResults=5,
            jobInput={"s3DataSource": {"path": "s3://recs/batch/in/users.json"}},
            jobOutput={"s3DataDestination": {"path": "s3://recs/batch/out/"}},
            roleArn=ROLE,
        )["batchInferenceJobArn"]
        job = finish(personalize, arn)
        assert job["status"] == "ACTIVE", job
        text = s3.get_object(Bucket="recs", Key="batch/out/users.json.out")["Body"].read()
        records = [json.loads(line) for line in text.decode().splitlines()]
        assert [r["input"] for r in records[:2]] == [{"userId": "u1"}, {"userId": "u2"}]
        assert all(len(r["output"]["recommendedItems"]) == 5 for r in records[:2])
        assert records[2]["error"] and records[2]["output"] is None
        arn = personalize.create_batch_inference_job(
            jobName="no-bucket",
            solutionVersionArn=version["solutionVersionArn"],
            jobInput={"s3DataSource": {"path": "s3://recs/batch/in/users.json"}},
            jobOutput={"s3DataDestination": {"path": "s3://missing-bucket/out/"}},
            roleArn=ROLE,
        )["batchInferenceJobArn"]
        job = finish(personalize, arn)
        assert job["status"] == "CREATE FAILED", job
        assert "s3://missing-bucket/out/users.json.out" in job["failureReason"]
