"""The wire contract through real boto3 clients: routing, model validation, error bodies."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import botocore.session
import pytest
from botocore.exceptions import ClientError

from openpersonalize.testing.server import ServerProcess


def test_health(server: ServerProcess) -> None:
    with urllib.request.urlopen(server.endpoint_url + "/health") as reply:
        assert reply.status == 200


def test_pattern_violation_is_invalid_input(personalize) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ClientError) as caught:
        personalize.create_dataset_group(name="not a valid name!")
    error = caught.value.response
    assert error["Error"]["Code"] == "InvalidInputException"
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert "regular expression pattern" in error["Error"]["Message"]
    assert "'name'" in error["Error"]["Message"]


def test_max_length_and_enum(personalize) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ClientError) as caught:
        personalize.create_dataset_group(name="a" * 64, domain="GAMES")
    message = caught.value.response["Error"]["Message"]
    assert message.startswith("2 validation errors detected")
    assert "less than or equal to 63" in message and "enum value set" in message


def test_numeric_range(personalize) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ClientError) as caught:
        personalize.list_dataset_groups(maxResults=101)
    assert caught.value.response["Error"]["Code"] == "InvalidInputException"
    assert "maxResults" in caught.value.response["Error"]["Message"]


def _raw_post(server: ServerProcess, target: str | None, body: bytes, path: str = "/"):  # type: ignore[no-untyped-def]
    request = urllib.request.Request(server.endpoint_url + path, data=body, method="POST")
    request.add_header("Content-Type", "application/x-amz-json-1.1")
    if target:
        request.add_header("X-Amz-Target", target)
    try:
        with urllib.request.urlopen(request) as reply:
            return reply.status, json.loads(reply.read() or b"{}"), dict(reply.headers)
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}"), dict(error.headers)


def test_unknown_member_and_wrong_type(server: ServerProcess) -> None:
    status, body, _ = _raw_post(
        server,
        "AmazonPersonalize.CreateDatasetGroup",
        json.dumps({"name": "ok", "color": "blue"}).encode(),
    )
    assert status == 400 and body["__type"] == "InvalidInputException"
    assert "Unknown parameter 'color'" in body["message"]
    status, body, _ = _raw_post(
        server, "AmazonPersonalize.ListDatasetGroups", json.dumps({"maxResults": "ten"}).encode()
    )
    assert status == 400 and "must be an integer" in body["message"]


def test_missing_required_member(server: ServerProcess) -> None:
    status, body, _ = _raw_post(server, "AmazonPersonalize.CreateSchema", b'{"name": "x"}')
    assert status == 400
    assert "'schema' failed to satisfy constraint: Member must not be null" in body["message"]


def test_bad_json_and_unknown_target(server: ServerProcess) -> None:
    status, body, _ = _raw_post(server, "AmazonPersonalize.ListSchemas", b"{not json")
    assert status == 400 and body["__type"] == "InvalidInputException"
    status, body, _ = _raw_post(server, "AmazonPersonalize.MakeCoffee", b"{}")
    assert status == 400 and body["__type"] == "UnknownOperationException"


def test_every_operation_is_routed_never_404_or_500(server: ServerProcess) -> None:
    """Each operation of the three models answers with a modeled 4xx or success, never 404/500."""
    session = botocore.session.get_session()
    for service in ("personalize", "personalize-runtime", "personalize-events"):
        model = session.get_service_model(service)
        for name in model.operation_names:
            operation = model.operation_model(name)
            if service == "personalize":
                status, body, _ = _raw_post(server, f"AmazonPersonalize.{name}", b"{}")
            else:
                status, body, _ = _raw_post(server, None, b"{}", operation.http["requestUri"])
            assert status in (200, 400), (service, name, status, body)
            if status == 400:
                assert body["__type"] in ("InvalidInputException",), (name, body)


def test_runtime_route_answers_with_rest_error(server: ServerProcess) -> None:
    runtime = server.client("personalize-runtime")
    missing = "arn:aws:personalize:us-east-1:000000000000:campaign/nowhere"
    with pytest.raises(ClientError) as caught:
        runtime.get_recommendations(campaignArn=missing, userId="u1")
    response = caught.value.response
    assert response["Error"]["Code"] == "ResourceNotFoundException"
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 404  # REST services: modeled status
    assert missing in response["Error"]["Message"]
    assert response["ResponseMetadata"]["HTTPHeaders"]["x-amzn-errortype"] == (
        "ResourceNotFoundException"
    )
    assert "x-amzn-requestid" in response["ResponseMetadata"]["HTTPHeaders"]


def test_timestamps_are_epoch_seconds(server: ServerProcess, personalize) -> None:  # type: ignore[no-untyped-def]
    arn = personalize.create_dataset_group(name="epoch-check")["datasetGroupArn"]
    status, body, headers = _raw_post(
        server,
        "AmazonPersonalize.DescribeDatasetGroup",
        json.dumps({"datasetGroupArn": arn}).encode(),
    )
    assert status == 200
    assert isinstance(body["datasetGroup"]["creationDateTime"], float)
    assert {k.lower(): v for k, v in headers.items()}[
        "content-type"
    ] == "application/x-amz-json-1.1"
