"""Dataset groups, schemas, datasets and tags through real boto3 clients."""

from __future__ import annotations

import json
import threading

import pytest
from botocore.exceptions import ClientError
from helpers import (
    INTERACTIONS_SCHEMA,
    ITEMS_SCHEMA,
    active_dataset,
    active_group,
    error_code,
    schema,
    unique,
)

from openpersonalize.testing.server import wait_for_status

MISSING_GROUP = "arn:aws:personalize:us-east-1:000000000000:dataset-group/no-such-group"


def test_dataset_group_lifecycle(personalize) -> None:  # type: ignore[no-untyped-def]
    name = unique("dg")
    created = personalize.create_dataset_group(name=name, domain="ECOMMERCE")
    arn = created["datasetGroupArn"]
    assert arn == f"arn:aws:personalize:us-east-1:000000000000:dataset-group/{name}"
    assert created["domain"] == "ECOMMERCE"
    first = personalize.describe_dataset_group(datasetGroupArn=arn)["datasetGroup"]
    assert first["status"] in ("CREATE PENDING", "CREATE IN_PROGRESS", "ACTIVE")
    described = wait_for_status(
        personalize.describe_dataset_group, "datasetGroup", "datasetGroupArn", arn
    )
    assert described["status"] == "ACTIVE" and described["name"] == name
    assert described["domain"] == "ECOMMERCE"
    assert described["creationDateTime"] <= described["lastUpdatedDateTime"]
    personalize.delete_dataset_group(datasetGroupArn=arn)
    for _ in range(200):
        try:
            status = personalize.describe_dataset_group(datasetGroupArn=arn)["datasetGroup"]
            assert status["status"] in ("DELETE PENDING", "DELETE IN_PROGRESS")
        except ClientError as error:
            assert error_code(error) == "ResourceNotFoundException"
            break
        threading.Event().wait(0.05)
    else:
        pytest.fail("dataset group was never deleted")


def test_duplicate_and_unknown_and_bad_arns(personalize) -> None:  # type: ignore[no-untyped-def]
    name = unique("dg")
    personalize.create_dataset_group(name=name)
    with pytest.raises(ClientError) as caught:
        personalize.create_dataset_group(name=name)
    assert error_code(caught.value) == "ResourceAlreadyExistsException"
    assert name in caught.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as caught:
        personalize.describe_dataset_group(datasetGroupArn=MISSING_GROUP)
    assert error_code(caught.value) == "ResourceNotFoundException"
    assert MISSING_GROUP in caught.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as caught:
        personalize.describe_dataset_group(datasetGroupArn="not-an-arn")
    assert error_code(caught.value) == "InvalidInputException"
    schema_arn = "arn:aws:personalize:us-east-1:000000000000:schema/x"
    with pytest.raises(ClientError) as caught:
        personalize.describe_dataset_group(datasetGroupArn=schema_arn)
    assert error_code(caught.value) == "InvalidInputException"
    assert "dataset-group" in caught.value.response["Error"]["Message"]


def test_role_needs_kms_key(personalize) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ClientError) as caught:
        personalize.create_dataset_group(
            name=unique("dg"), roleArn="arn:aws:iam::123456789012:role/r"
        )
    assert error_code(caught.value) == "InvalidInputException"
    assert "kmsKeyArn" in caught.value.response["Error"]["Message"]


def test_racing_creates_give_exactly_one(personalize, server) -> None:  # type: ignore[no-untyped-def]
    name = unique("race")
    outcomes: list[str] = []

    def attempt() -> None:
        client = server.client()
        try:
            client.create_dataset_group(name=name)
            outcomes.append("created")
        except ClientError as error:
            outcomes.append(error_code(error))

    threads = [threading.Thread(target=attempt) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["ResourceAlreadyExistsException"] * 7 + ["created"]
    names = [
        g["name"]
        for g in personalize.get_paginator("list_dataset_groups")
        .paginate()
        .build_full_result()["datasetGroups"]
    ]
    assert names.count(name) == 1


def test_pagination(personalize) -> None:  # type: ignore[no-untyped-def]
    created = {schema(personalize) for _ in range(7)}
    first = personalize.list_schemas(maxResults=3)
    assert len(first["schemas"]) == 3 and "nextToken" in first
    seen = []
    token = None
    while True:
        page = personalize.list_schemas(maxResults=3, **({"nextToken": token} if token else {}))
        seen += [s["schemaArn"] for s in page["schemas"]]
        token = page.get("nextToken")
        if not token:
            break
    assert created <= set(seen) and len(seen) == len(set(seen))
    with pytest.raises(ClientError) as caught:
        personalize.list_schemas(nextToken="garbage!!")
    assert error_code(caught.value) == "InvalidNextTokenException"
    with pytest.raises(ClientError) as caught:
        personalize.list_dataset_groups(nextToken=first["nextToken"])
    assert error_code(caught.value) == "InvalidNextTokenException"


def test_schema_rules_reach_the_client(personalize) -> None:  # type: ignore[no-untyped-def]
    bad = json.loads(INTERACTIONS_SCHEMA)
    bad["fields"][2]["type"] = {"type": "array", "items": "string"}
    with pytest.raises(ClientError) as caught:
        schema(personalize, json.dumps(bad))
    assert error_code(caught.value) == "InvalidInputException"
    assert "TIMESTAMP" in caught.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as caught:
        schema(personalize, "{not json")
    assert "JSON" in caught.value.response["Error"]["Message"]
    arn = schema(personalize)
    described = personalize.describe_schema(schemaArn=arn)["schema"]
    assert json.loads(described["schema"]) == json.loads(INTERACTIONS_SCHEMA)


def test_dataset_type_rules(personalize) -> None:  # type: ignore[no-untyped-def]
    group = active_group(personalize)
    items_schema = schema(personalize, ITEMS_SCHEMA)
    # An Items schema cannot back an Interactions dataset: it lacks USER_ID and TIMESTAMP.
    with pytest.raises(ClientError) as caught:
        personalize.create_dataset(
            name=unique("ds"),
            datasetGroupArn=group,
            schemaArn=items_schema,
            datasetType="Interactions",
        )
    assert error_code(caught.value) == "InvalidInputException"
    assert "USER_ID" in caught.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as caught:
        personalize.create_dataset(
            name=unique("ds"), datasetGroupArn=group, schemaArn=items_schema, datasetType="Gadgets"
        )
    assert error_code(caught.value) == "InvalidInputException"
    dataset = active_dataset(personalize, group, items_schema, "items")
    assert dataset.endswith(f"dataset/{group.rsplit('/', 1)[1]}/ITEMS")
    described = personalize.describe_dataset(datasetArn=dataset)["dataset"]
    assert described["datasetType"] == "Items" and described["schemaArn"] == items_schema
    # one dataset per type per group
    with pytest.raises(ClientError) as caught:
        personalize.create_dataset(
            name=unique("ds"), datasetGroupArn=group, schemaArn=items_schema, datasetType="Items"
        )
    assert error_code(caught.value) == "ResourceAlreadyExistsException"
    with pytest.raises(ClientError) as caught:
        personalize.create_dataset(
            name=unique("ds"),
            datasetGroupArn=MISSING_GROUP,
            schemaArn=items_schema,
            datasetType="Users",
        )
    assert error_code(caught.value) == "ResourceNotFoundException"
    listed = personalize.list_datasets(datasetGroupArn=group)["datasets"]
    assert [d["datasetArn"] for d in listed] == [dataset]


def test_in_use_deletes(personalize) -> None:  # type: ignore[no-untyped-def]
    group = active_group(personalize)
    schema_arn = schema(personalize)
    dataset = active_dataset(personalize, group, schema_arn)
    with pytest.raises(ClientError) as caught:
        personalize.delete_dataset_group(datasetGroupArn=group)
    assert error_code(caught.value) == "ResourceInUseException"
    assert dataset in caught.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as caught:
        personalize.delete_schema(schemaArn=schema_arn)
    assert error_code(caught.value) == "ResourceInUseException"
    personalize.delete_dataset(datasetArn=dataset)
    for _ in range(200):
        if not personalize.list_datasets(datasetGroupArn=group)["datasets"]:
            break
        threading.Event().wait(0.05)
    personalize.delete_schema(schemaArn=schema_arn)
    with pytest.raises(ClientError) as caught:
        personalize.describe_schema(schemaArn=schema_arn)
    assert error_code(caught.value) == "ResourceNotFoundException"
    personalize.delete_dataset_group(datasetGroupArn=group)


def test_update_dataset_schema(personalize) -> None:  # type: ignore[no-untyped-def]
    group = active_group(personalize)
    original = schema(personalize)
    dataset = active_dataset(personalize, group, original)
    wider = json.loads(INTERACTIONS_SCHEMA)
    wider["fields"].append({"name": "DEVICE", "type": ["null", "string"], "categorical": True})
    wider_arn = schema(personalize, json.dumps(wider))
    personalize.update_dataset(datasetArn=dataset, schemaArn=wider_arn)
    for _ in range(200):
        described = personalize.describe_dataset(datasetArn=dataset)["dataset"]
        if described["latestDatasetUpdate"]["status"] == "ACTIVE":
            break
        threading.Event().wait(0.05)
    assert described["schemaArn"] == wider_arn
    assert described["latestDatasetUpdate"]["schemaArn"] == wider_arn
    narrower = json.loads(INTERACTIONS_SCHEMA)
    narrower["fields"] = narrower["fields"][:3]
    with pytest.raises(ClientError) as caught:
        personalize.update_dataset(
            datasetArn=dataset, schemaArn=schema(personalize, json.dumps(narrower))
        )
    assert error_code(caught.value) == "InvalidInputException"
    assert "EVENT_TYPE" in caught.value.response["Error"]["Message"]


def test_tags(personalize) -> None:  # type: ignore[no-untyped-def]
    arn = personalize.create_dataset_group(
        name=unique("dg"), tags=[{"tagKey": "team", "tagValue": "search"}]
    )["datasetGroupArn"]
    assert personalize.list_tags_for_resource(resourceArn=arn)["tags"] == [
        {"tagKey": "team", "tagValue": "search"}
    ]
    personalize.tag_resource(
        resourceArn=arn,
        tags=[{"tagKey": "env", "tagValue": "prod"}, {"tagKey": "team", "tagValue": "recs"}],
    )
    assert personalize.list_tags_for_resource(resourceArn=arn)["tags"] == [
        {"tagKey": "env", "tagValue": "prod"},
        {"tagKey": "team", "tagValue": "recs"},
    ]
    personalize.untag_resource(resourceArn=arn, tagKeys=["env"])
    assert [t["tagKey"] for t in personalize.list_tags_for_resource(resourceArn=arn)["tags"]] == [
        "team"
    ]
    with pytest.raises(ClientError) as caught:
        personalize.tag_resource(resourceArn=MISSING_GROUP, tags=[{"tagKey": "a", "tagValue": "b"}])
    assert error_code(caught.value) == "ResourceNotFoundException"
    with pytest.raises(ClientError) as caught:
        personalize.tag_resource(
            resourceArn=arn, tags=[{"tagKey": f"k{i}", "tagValue": "v"} for i in range(60)]
        )
    assert error_code(caught.value) == "TooManyTagsException"
    with pytest.raises(ClientError) as caught:
        personalize.tag_resource(resourceArn=arn, tags=[{"tagKey": "bad<key>", "tagValue": "v"}])
    assert error_code(caught.value) == "InvalidInputException"
    schema_arn = schema(personalize)
    personalize.tag_resource(resourceArn=schema_arn, tags=[{"tagKey": "a", "tagValue": "b"}])
    assert personalize.list_tags_for_resource(resourceArn=schema_arn)["tags"] == [
        {"tagKey": "a", "tagValue": "b"}
    ]


def test_group_deleted_right_after_its_tracker(personalize) -> None:  # type: ignore[no-untyped-def]
    # Cleanup code deletes the tracker and then the group without waiting; the service takes
    # it, and both go.
    group = active_group(personalize)
    tracker = personalize.create_event_tracker(name=unique("tracker"), datasetGroupArn=group)
    personalize.delete_event_tracker(eventTrackerArn=tracker["eventTrackerArn"])
    personalize.delete_dataset_group(datasetGroupArn=group)
    for _ in range(200):
        try:
            personalize.describe_dataset_group(datasetGroupArn=group)
        except ClientError as error:
            assert error_code(error) == "ResourceNotFoundException"
            break
        threading.Event().wait(0.05)
    else:
        raise AssertionError("the dataset group was never deleted")
    with pytest.raises(ClientError) as caught:
        personalize.describe_event_tracker(eventTrackerArn=tracker["eventTrackerArn"])
    assert error_code(caught.value) == "ResourceNotFoundException"
