"""SigV4 authentication end to end: a server with keys, and the refusal to run open off loopback."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import ClientError

from openpersonalize.testing.server import ServerProcess

KEY, SECRET = "AKIDOPENPERSONALIZE", "s3cr3t-for-tests"


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    settings = {"access_key_id": KEY, "secret_access_key": SECRET, "workers": "1"}
    with ServerProcess(
        tmp_path_factory.mktemp("secured"),
        settings=settings,
        access_key_id=KEY,
        secret_access_key=SECRET,
    ) as running:
        yield running


def test_signed_requests_pass(secured: ServerProcess) -> None:
    client = secured.client()
    assert client.list_dataset_groups()["datasetGroups"] == []
    runtime = secured.client("personalize-runtime")
    with pytest.raises(ClientError) as caught:  # authenticated, then answered by the operation
        runtime.get_recommendations(
            campaignArn="arn:aws:personalize:us-east-1:1:campaign/c", userId="u"
        )
    assert caught.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_unknown_key(secured: ServerProcess) -> None:
    client = secured.client(aws_access_key_id="AKIDUNKNOWN")
    with pytest.raises(ClientError) as caught:
        client.list_dataset_groups()
    assert caught.value.response["Error"]["Code"] == "UnrecognizedClientException"
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_wrong_secret(secured: ServerProcess) -> None:
    client = secured.client(aws_secret_access_key="not-the-secret")
    with pytest.raises(ClientError) as caught:
        client.create_dataset_group(name="never-made")
    assert caught.value.response["Error"]["Code"] == "InvalidSignatureException"
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert secured.client().list_dataset_groups()["datasetGroups"] == []


def test_wrong_service_in_scope(secured: ServerProcess) -> None:
    # A client for another service signs with its own name; the scope must say personalize.
    import boto3

    sts_like = boto3.client(
        "sqs",
        endpoint_url=secured.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id=KEY,
        aws_secret_access_key=SECRET,
        config=Config(retries={"max_attempts": 0}),
    )
    with pytest.raises(ClientError) as caught:
        sts_like.list_queues()
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_missing_signature(secured: ServerProcess) -> None:
    client = secured.client(config=Config(signature_version=UNSIGNED, retries={"max_attempts": 0}))
    with pytest.raises(ClientError) as caught:
        client.list_dataset_groups()
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert caught.value.response["Error"]["Code"] == "MissingAuthenticationTokenException"


def test_refuses_open_server_off_loopback(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "openpersonalize.cli",
            "serve",
            "--host",
            "0.0.0.0",
            "--data-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 2
    assert "OPENPERSONALIZE_ACCESS_KEY_ID" in result.stderr
