"""Metric attributions end to end: the six operations, their validation, and the figures an
import and PutEvents publish to S3 (and the CLI prints), checked against sums this test
computes itself from the rows it sent."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from helpers import avro_schema, error_code, run_import, unique
from test_e2e_solutions import POPULARITY, create_solution, train

from openpersonalize.testing.server import wait_for_status

INTERACTIONS = avro_schema(
    "Interactions",
    ("USER_ID", "string"),
    ("ITEM_ID", "string"),
    ("TIMESTAMP", "long"),
    ("EVENT_TYPE", "string"),
    ("EVENT_VALUE", ["null", "float"]),
    ("EVENT_ATTRIBUTION_SOURCE", ["null", "string"]),
    ("RECOMMENDATION_ID", ["null", "string"]),
)
PLAIN_INTERACTIONS = avro_schema(
    "Interactions",
    ("USER_ID", "string"),
    ("ITEM_ID", "string"),
    ("TIMESTAMP", "long"),
    ("EVENT_TYPE", "string"),
)
NO_EVENT_TYPE = avro_schema(
    "Interactions", ("USER_ID", "string"), ("ITEM_ID", "string"), ("TIMESTAMP", "long")
)
ITEMS = avro_schema(
    "Items",
    ("ITEM_ID", "string"),
    {"name": "GENRE", "type": "string", "categorical": True},
    ("PRICE", "float"),
)
ROLE = "arn:aws:iam::000000000000:role/PersonalizeRole"
METRICS = [
    {"eventType": "click", "metricName": "CLICKS", "expression": "SAMPLECOUNT()"},
    {
        "eventType": "click",
        "metricName": "CLICK_VALUE",
        "expression": "SUM(Interactions.EVENT_VALUE)",
    },
    {"eventType": "purchase", "metricName": "REVENUE", "expression": "SUM(Items.PRICE)"},
]
FUNCTION = {"SAMPLECOUNT()": "samplecount"}
START = 1_704_200_000  # 2024-01-02 12:53:20 UTC: windows start at multiples of 900 s
N_ITEMS = 40


def price(item: int) -> float:
    return 1.25 * (item % 7) + 0.5  # exact in binary: sums compare exactly


def item_of(name: str) -> int:
    return int(name[1:])


def expected_figures(events: list[dict[str, Any]]) -> dict[tuple[str, str, int], float]:
    """(metric, source, window) -> value, computed from the events as the guide describes."""
    figures: dict[tuple[str, str, int], float] = defaultdict(float)
    for metric in METRICS:
        for event in events:
            if event["type"].lower() != metric["eventType"]:
                continue
            if metric["expression"] == "SAMPLECOUNT()":
                value: float | None = 1.0
            elif metric["expression"] == "SUM(Items.PRICE)":
                value = price(item_of(event["item"]))
            else:
                value = event["value"]
            if value is None:
                continue
            window = event["timestamp"] // 900 * 900
            figures[(metric["metricName"], event["source"], window)] += value
    return dict(figures)


def read_reports(folder: Path, method: str) -> list[dict[str, str]]:
    rows: list[dict[str, str]] = []
    for path in sorted(folder.glob(f"AggregatedAttributionMetrics - {method} - *.csv")):
        with path.open() as handle:
            reader = csv.DictReader(handle)
            assert reader.fieldnames == [
                "METRIC_NAME",
                "EVENT_TYPE",
                "VALUE",
                "MATH_FUNCTION",
                "EVENT_ATTRIBUTION_SOURCE",
                "TIMESTAMP",
            ]
            rows.extend(reader)
    return rows


def summed(rows: list[dict[str, str]]) -> dict[tuple[str, str, int], float]:
    """Report rows added up per (metric, source, window), as CloudWatch sums data points."""
    figures: dict[tuple[str, str, int], float] = defaultdict(float)
    by_name = {metric["metricName"]: metric for metric in METRICS}
    for row in rows:
        metric = by_name[row["METRIC_NAME"]]
        assert row["EVENT_TYPE"] == metric["eventType"]
        assert row["MATH_FUNCTION"] == FUNCTION.get(metric["expression"], "sum")
        assert "." in row["VALUE"]  # a float, as the service writes it
        key = (row["METRIC_NAME"], row["EVENT_ATTRIBUTION_SOURCE"], int(row["TIMESTAMP"]))
        figures[key] += float(row["VALUE"])
    return dict(figures)


def interactions_csv(events: list[dict[str, Any]], rids: dict[str, str]) -> str:
    lines = [
        "USER_ID,ITEM_ID,TIMESTAMP,EVENT_TYPE,EVENT_VALUE,EVENT_ATTRIBUTION_SOURCE,RECOMMENDATION_ID"
    ]
    for event in events:
        value = "" if event["value"] is None else repr(event["value"])
        lines.append(
            f"{event['user']},{event['item']},{event['timestamp']},{event['type']},{value},"
            f"{event.get('given_source', '')},{rids.get(event.get('rid_key', ''), '')}"
        )
    return "\n".join(lines) + "\n"


def import_events(count: int, offset: int, source_of: Any) -> list[dict[str, Any]]:
    events = []
    for n in range(count):
        kind = "purchase" if n % 3 == 0 else "click"
        event = {
            "user": f"u{n % 60}",
            "item": f"i{(n * 7 + offset) % N_ITEMS}",
            "timestamp": START + offset + n * 37,  # 1000 rows span ~10 hours: many windows
            "type": kind,
            "value": None if n % 5 == 0 else float(n % 4) + 0.5,
        }
        event.update(source_of(n))
        events.append(event)
    return events


@pytest.fixture(scope="module")
def setup(personalize, server, s3_root) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    bucket = unique("attribution")
    root = s3_root / bucket
    root.mkdir()
    (root / "items.csv").write_text(
        "ITEM_ID,GENRE,PRICE\n" + "".join(f"i{n},g{n % 3},{price(n)}\n" for n in range(N_ITEMS))
    )
    early = import_events(1200, 0, lambda n: {"given_source": "old-import", "source": "old-import"})
    (root / "early.csv").write_text(interactions_csv(early, {}))
    group = personalize.create_dataset_group(name=unique("dg"))["datasetGroupArn"]
    arns = {"group": group}
    for kind, text in (("Interactions", INTERACTIONS), ("Items", ITEMS)):
        schema = personalize.create_schema(name=unique("schema"), schema=text)["schemaArn"]
        arns[kind] = personalize.create_dataset(
            name=unique("ds"), datasetGroupArn=group, schemaArn=schema, datasetType=kind
        )["datasetArn"]
    assert run_import(personalize, arns["Items"], f"s3://{bucket}/items.csv")["status"] == "ACTIVE"
    # Imported (and asking to publish) before the attribution exists: never counted.
    early_job = personalize.create_dataset_import_job(
        jobName=unique("early"),
        datasetArn=arns["Interactions"],
        dataSource={"dataLocation": f"s3://{bucket}/early.csv"},
        publishAttributionMetricsToS3=True,
    )["datasetImportJobArn"]
    done = wait_for_status(
        personalize.describe_dataset_import_job,
        "datasetImportJob",
        "datasetImportJobArn",
        early_job,
    )
    assert done["status"] == "ACTIVE", done.get("failureReason")
    assert done["publishAttributionMetricsToS3"] is True
    solution = create_solution(personalize, {"group": group}, recipeArn=POPULARITY)
    version = train(personalize, solution)
    assert version["status"] == "ACTIVE", version
    campaign = personalize.create_campaign(
        name=unique("campaign"), solutionVersionArn=version["solutionVersionArn"]
    )["campaignArn"]
    status = wait_for_status(personalize.describe_campaign, "campaign", "campaignArn", campaign)
    assert status["status"] == "ACTIVE", status
    tracker = personalize.create_event_tracker(name=unique("tracker"), datasetGroupArn=group)
    events = server.client("personalize-events")
    # Streamed before the attribution exists: never counted either.
    events.put_events(
        trackingId=tracker["trackingId"],
        userId="u1",
        sessionId="early",
        eventList=[
            {
                "eventType": "click",
                "itemId": "i1",
                "sentAt": datetime.fromtimestamp(START, UTC),
                "metricAttribution": {"eventAttributionSource": "before-attribution"},
            }
        ],
    )
    name = unique("attribution")
    arn = personalize.create_metric_attribution(
        name=name,
        datasetGroupArn=group,
        metrics=METRICS,
        metricsOutputConfig={
            "roleArn": ROLE,
            "s3DataDestination": {"path": f"s3://{bucket}/reports/"},
        },
    )["metricAttributionArn"]
    first = personalize.describe_metric_attribution(metricAttributionArn=arn)["metricAttribution"]
    assert first["status"] in ("CREATE PENDING", "CREATE IN_PROGRESS", "ACTIVE")
    active = wait_for_status(
        personalize.describe_metric_attribution, "metricAttribution", "metricAttributionArn", arn
    )
    assert active["status"] == "ACTIVE", active
    return {
        **arns,
        "bucket": bucket,
        "root": root,
        "name": name,
        "arn": arn,
        "campaign": campaign,
        "tracking_id": tracker["trackingId"],
        "runtime": server.client("personalize-runtime"),
        "events": events,
    }


def refused(call: Any, **request: Any) -> ClientError:
    with pytest.raises(ClientError) as caught:
        call(**request)
    return caught.value


def group_with(personalize, schema_text: str) -> str:  # type: ignore[no-untyped-def]
    group = personalize.create_dataset_group(name=unique("dg"))["datasetGroupArn"]
    schema = personalize.create_schema(name=unique("schema"), schema=schema_text)["schemaArn"]
    personalize.create_dataset(
        name=unique("ds"), datasetGroupArn=group, schemaArn=schema, datasetType="Interactions"
    )
    return group


def attribution_in(personalize, group: str, metrics: list[dict[str, str]] | None = None) -> str:  # type: ignore[no-untyped-def]
    return personalize.create_metric_attribution(
        name=unique("attribution"),
        datasetGroupArn=group,
        metrics=metrics or METRICS[:1],
        metricsOutputConfig={"roleArn": ROLE},
    )["metricAttributionArn"]


def test_describe_and_list(personalize, setup) -> None:  # type: ignore[no-untyped-def]
    described = personalize.describe_metric_attribution(metricAttributionArn=setup["arn"])[
        "metricAttribution"
    ]
    assert described["name"] == setup["name"]
    assert described["datasetGroupArn"] == setup["group"]
    assert described["metricAttributionArn"].endswith(f":metric-attribution/{setup['name']}")
    assert described["metricsOutputConfig"] == {
        "roleArn": ROLE,
        "s3DataDestination": {"path": f"s3://{setup['bucket']}/reports/"},
    }
    assert described["creationDateTime"] <= described["lastUpdatedDateTime"]
    listed = personalize.list_metric_attributions(datasetGroupArn=setup["group"])
    assert [s["metricAttributionArn"] for s in listed["metricAttributions"]] == [setup["arn"]]
    assert listed["metricAttributions"][0]["status"] == "ACTIVE"
    metrics = personalize.list_metric_attribution_metrics(metricAttributionArn=setup["arn"])
    assert metrics["metrics"] == METRICS
    missing = setup["arn"] + "x"
    assert (
        error_code(refused(personalize.describe_metric_attribution, metricAttributionArn=missing))
        == "ResourceNotFoundException"
    )
    assert (
        error_code(refused(personalize.list_metric_attribution_metrics)) == "InvalidInputException"
    )


def test_create_is_validated(personalize, setup) -> None:  # type: ignore[no-untyped-def]
    plain = group_with(personalize, PLAIN_INTERACTIONS)  # Interactions only, no Items
    with_items = personalize.create_dataset_group(name=unique("dg"))["datasetGroupArn"]
    for kind, text in (("Interactions", PLAIN_INTERACTIONS), ("Items", ITEMS)):
        schema = personalize.create_schema(name=unique("schema"), schema=text)["schemaArn"]
        personalize.create_dataset(
            name=unique("ds"), datasetGroupArn=with_items, schemaArn=schema, datasetType=kind
        )
    no_event_type = group_with(personalize, NO_EVENT_TYPE)

    def refusal(group: str, metrics: list[dict[str, str]], **extra: Any) -> ClientError:
        request = {
            "name": unique("bad"),
            "datasetGroupArn": group,
            "metrics": metrics,
            "metricsOutputConfig": {"roleArn": ROLE},
            **extra,
        }
        return refused(personalize.create_metric_attribution, **request)

    def metric(expression: str, name: str = "M") -> list[dict[str, str]]:
        return [{"eventType": "click", "metricName": name, "expression": expression}]

    for group, expression, words in (
        (with_items, "AVG(Items.PRICE)", "is not valid"),
        (with_items, "SUM(Users.AGE)", "is not valid"),
        (with_items, "SUM(PRICE)", "is not valid"),
        (with_items, "SUM(Items.NOPE)", "NOPE is not one of its columns (numeric columns: PRICE)"),
        (with_items, "SUM(Items.GENRE)", "GENRE is a string"),
        (with_items, "SUM(Interactions.EVENT_VALUE)", "EVENT_VALUE is not one of its columns"),
        (plain, "SUM(Items.PRICE)", "has no Items dataset"),
        (no_event_type, "SAMPLECOUNT()", "EVENT_TYPE"),
    ):
        error = refusal(group, metric(expression))
        assert error_code(error) == "InvalidInputException", expression
        assert words in error.response["Error"]["Message"], error.response
    twice = metric("SAMPLECOUNT()") + metric("SUM(Items.PRICE)")
    assert "unique" in refusal(with_items, twice).response["Error"]["Message"]
    eleven = [m for n in range(11) for m in metric("SAMPLECOUNT()", f"M{n}")]
    assert error_code(refusal(with_items, eleven)) == "InvalidInputException"
    bad_path = {"roleArn": ROLE, "s3DataDestination": {"path": "s3://"}}
    error = refusal(with_items, metric("SAMPLECOUNT()"), metricsOutputConfig=bad_path)
    assert error_code(error) == "InvalidInputException"
    missing_group = setup["group"] + "-missing"
    error = refusal(missing_group, metric("SAMPLECOUNT()"))
    assert error_code(error) == "ResourceNotFoundException"
    # One per dataset group; the error names the one there is.
    second = refusal(setup["group"], metric("SAMPLECOUNT()"))
    assert error_code(second) == "ResourceAlreadyExistsException"
    assert setup["arn"] in second.response["Error"]["Message"]
    # Nothing half-made: the refused requests left no attribution behind.
    for group in (plain, with_items, no_event_type):
        listed = personalize.list_metric_attributions(datasetGroupArn=group)
        assert listed["metricAttributions"] == []


def test_update_adds_removes_and_replaces_the_output(personalize) -> None:  # type: ignore[no-untyped-def]
    arn = attribution_in(personalize, group_with(personalize, PLAIN_INTERACTIONS))
    active = wait_for_status(
        personalize.describe_metric_attribution, "metricAttribution", "metricAttributionArn", arn
    )
    assert active["status"] == "ACTIVE"

    def update(**request: Any) -> ClientError:
        return refused(personalize.update_metric_attribution, **request)

    def metrics() -> list[tuple[str, str]]:
        listed = personalize.list_metric_attribution_metrics(metricAttributionArn=arn)["metrics"]
        return [(m["metricName"], m["eventType"]) for m in listed]

    views = {"eventType": "view", "metricName": "VIEWS", "expression": "samplecount( )"}
    answer = personalize.update_metric_attribution(metricAttributionArn=arn, addMetrics=[views])
    assert answer["metricAttributionArn"] == arn
    assert metrics() == [("CLICKS", "click"), ("VIEWS", "view")]
    duplicate = update(metricAttributionArn=arn, addMetrics=[views])
    assert error_code(duplicate) == "ResourceAlreadyExistsException"
    assert "VIEWS" in duplicate.response["Error"]["Message"]
    unknown = update(metricAttributionArn=arn, removeMetrics=["NOPE"])
    assert error_code(unknown) == "InvalidInputException"
    assert "NOPE" in unknown.response["Error"]["Message"]
    no_arn = update(addMetrics=[{**views, "metricName": "OTHER"}])
    assert error_code(no_arn) == "InvalidInputException"
    assert "metricAttributionArn" in no_arn.response["Error"]["Message"]
    assert error_code(update(metricAttributionArn=arn)) == "InvalidInputException"
    bad = {"eventType": "view", "metricName": "BAD", "expression": "SUM(Items.PRICE)"}
    assert error_code(update(metricAttributionArn=arn, addMetrics=[bad])) == (
        "InvalidInputException"
    )
    nine = [{**views, "metricName": f"V{n}"} for n in range(9)]  # 11 in all
    assert error_code(update(metricAttributionArn=arn, addMetrics=nine)) == (
        "InvalidInputException"
    )
    gone = update(metricAttributionArn=arn + "x", addMetrics=[{**views, "metricName": "X"}])
    assert error_code(gone) == "ResourceNotFoundException"
    assert metrics() == [("CLICKS", "click"), ("VIEWS", "view")]  # refused updates change nothing
    # Remove and add back in one request, and replace the output configuration.
    output = {"roleArn": ROLE, "s3DataDestination": {"path": "s3://somewhere/metrics/"}}
    personalize.update_metric_attribution(
        metricAttributionArn=arn,
        removeMetrics=["CLICKS"],
        addMetrics=[{**METRICS[0], "eventType": "CLICK"}],
        metricsOutputConfig=output,
    )
    assert metrics() == [("VIEWS", "view"), ("CLICKS", "CLICK")]
    described = personalize.describe_metric_attribution(metricAttributionArn=arn)
    assert described["metricAttribution"]["metricsOutputConfig"] == output
    assert described["metricAttribution"]["lastUpdatedDateTime"] >= active["lastUpdatedDateTime"]


def test_lists_paginate(personalize) -> None:  # type: ignore[no-untyped-def]
    arns = [
        attribution_in(personalize, group_with(personalize, PLAIN_INTERACTIONS)) for _ in range(3)
    ]
    pages = list(
        personalize.get_paginator("list_metric_attributions").paginate(
            PaginationConfig={"PageSize": 2}
        )
    )
    assert all(len(page["metricAttributions"]) <= 2 for page in pages) and len(pages) >= 2
    listed = [s["metricAttributionArn"] for page in pages for s in page["metricAttributions"]]
    assert len(listed) == len(set(listed)) and set(arns) <= set(listed)
    many = [{**METRICS[0], "metricName": f"CLICKS_{n}"} for n in range(7)]
    arn = attribution_in(personalize, group_with(personalize, PLAIN_INTERACTIONS), many)
    pages = list(
        personalize.get_paginator("list_metric_attribution_metrics").paginate(
            metricAttributionArn=arn, PaginationConfig={"PageSize": 3}
        )
    )
    assert [len(page["metrics"]) for page in pages] == [3, 3, 1]
    assert [m for page in pages for m in page["metrics"]] == many
    bad_token = refused(
        personalize.list_metric_attribution_metrics, metricAttributionArn=arn, nextToken="nope"
    )
    assert error_code(bad_token) == "InvalidNextTokenException"


def test_delete_and_the_dataset_group(personalize) -> None:  # type: ignore[no-untyped-def]
    group = group_with(personalize, PLAIN_INTERACTIONS)
    arn = attribution_in(personalize, group)
    wait_for_status(
        personalize.describe_metric_attribution, "metricAttribution", "metricAttributionArn", arn
    )
    (dataset,) = personalize.list_datasets(datasetGroupArn=group)["datasets"]
    personalize.delete_dataset(datasetArn=dataset["datasetArn"])
    # The attribution is the group's last resource: the group cannot go before it.
    blocked = refused(personalize.delete_dataset_group, datasetGroupArn=group)
    assert error_code(blocked) == "ResourceInUseException"
    assert arn in blocked.response["Error"]["Message"]
    personalize.delete_metric_attribution(metricAttributionArn=arn)
    try:
        status = personalize.describe_metric_attribution(metricAttributionArn=arn)
        assert status["metricAttribution"]["status"] in ("DELETE PENDING", "DELETE IN_PROGRESS")
    except ClientError as error:  # already gone
        assert error_code(error) == "ResourceNotFoundException"
    again = refused(personalize.delete_metric_attribution, metricAttributionArn=arn)
    assert error_code(again) in ("ResourceInUseException", "ResourceNotFoundException")
    personalize.delete_dataset_group(datasetGroupArn=group)  # the attribution no longer blocks
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            personalize.describe_metric_attribution(metricAttributionArn=arn)
        except ClientError as error:
            assert error_code(error) == "ResourceNotFoundException"
            break
        time.sleep(0.1)
    else:
        pytest.fail(f"{arn} was not deleted")


def recommendation_id(setup: dict[str, Any], user: str) -> str:
    answer = setup["runtime"].get_recommendations(campaignArn=setup["campaign"], userId=user)
    assert answer["itemList"]
    rid = answer["recommendationId"]
    assert rid.startswith("RID-") and len(rid) <= 40  # PutEvents takes at most 40 characters
    return str(rid)


def test_import_publishes_its_figures_to_s3(personalize, setup) -> None:  # type: ignore[no-untyped-def]
    rids = {"a": recommendation_id(setup, "u3"), "b": recommendation_id(setup, "u4")}

    def source_of(n: int) -> dict[str, str]:
        if n % 4 == 0:
            return {"given_source": "newsletter", "source": "newsletter"}
        if n % 4 == 1:  # a recommendation ID from a real call: the campaign that answered
            return {"rid_key": "a" if n % 8 == 1 else "b", "source": setup["campaign"]}
        if n % 4 == 2:  # both: the given source wins
            return {"given_source": "banner", "rid_key": "a", "source": "banner"}
        return {"source": "SOURCE_NAME_UNDEFINED"}

    later = import_events(1100, 100_000, source_of)
    (setup["root"] / "later.csv").write_text(interactions_csv(later, rids))
    job = personalize.create_dataset_import_job(
        jobName=unique("later"),
        datasetArn=setup["Interactions"],
        dataSource={"dataLocation": f"s3://{setup['bucket']}/later.csv"},
        importMode="INCREMENTAL",
        publishAttributionMetricsToS3=True,
    )["datasetImportJobArn"]
    done = wait_for_status(
        personalize.describe_dataset_import_job, "datasetImportJob", "datasetImportJobArn", job
    )
    assert done["status"] == "ACTIVE", done.get("failureReason")
    reports = setup["root"] / "reports"
    deadline = time.monotonic() + 30
    while not read_reports(reports, "BULK") and time.monotonic() < deadline:
        time.sleep(0.1)
    rows = read_reports(reports, "BULK")
    (report,) = reports.glob("AggregatedAttributionMetrics - BULK - *.csv")  # only this import's
    expected = expected_figures(later)
    assert summed(rows) == expected
    assert len(rows) == len(expected)  # one row per metric, source and window
    assert {source for _, source, _ in expected} == {
        "newsletter",
        "banner",
        setup["campaign"],
        "SOURCE_NAME_UNDEFINED",
    }
    setup["imported"] = later
    assert report.name.startswith("AggregatedAttributionMetrics - BULK - ")


def test_put_events_are_attributed_and_published(personalize, setup) -> None:  # type: ignore[no-untyped-def]
    rid = recommendation_id(setup, "u7")
    sent: list[dict[str, Any]] = []
    batches = []
    for n in range(24):
        timestamp = START + 200_000 + n * 301
        event: dict[str, Any] = {
            "eventType": "CLICK" if n % 6 == 0 else ("purchase" if n % 3 == 0 else "click"),
            "itemId": f"i{n % N_ITEMS}",
            "sentAt": datetime.fromtimestamp(timestamp, UTC),
        }
        if n % 2 == 0:
            event["eventValue"] = float(n) + 0.25
        if n % 4 == 0:
            event["metricAttribution"] = {"eventAttributionSource": "push"}
            source = "push"
        elif n % 4 == 1:
            event["recommendationId"] = rid
            source = setup["campaign"]
        elif n % 4 == 2:  # both: the given source wins
            event["recommendationId"] = rid
            event["metricAttribution"] = {"eventAttributionSource": "email"}
            source = "email"
        else:
            source = "SOURCE_NAME_UNDEFINED"
        batches.append(event)
        sent.append(
            {
                "item": event["itemId"],
                "timestamp": timestamp,
                "type": event["eventType"],
                "value": event.get("eventValue"),
                "source": source,
            }
        )
    for start in range(0, len(batches), 6):
        setup["events"].put_events(
            trackingId=setup["tracking_id"],
            userId="streamer",
            sessionId="s-attribution",
            eventList=batches[start : start + 6],
        )
    expected = expected_figures(sent)
    reports = setup["root"] / "reports"
    deadline = time.monotonic() + 60
    while summed(read_reports(reports, "PUT")) != expected and time.monotonic() < deadline:
        time.sleep(0.25)
    published = summed(read_reports(reports, "PUT"))
    assert published == expected
    assert not any(source == "before-attribution" for _, source, _ in published)
    assert {source for _, source, _ in expected} == {
        "push",
        "email",
        setup["campaign"],
        "SOURCE_NAME_UNDEFINED",
    }
    setup["streamed"] = sent


def test_the_cli_prints_everything_that_counts(server, setup) -> None:  # type: ignore[no-untyped-def]
    if "imported" not in setup or "streamed" not in setup:
        pytest.skip("needs the import and PutEvents tests before it")
    command = [
        sys.executable,
        "-m",
        "openpersonalize.cli",
        "metric-attribution-report",
        setup["arn"],
        "--data-dir",
        str(server.data_dir),
    ]
    as_json = subprocess.run([*command, "--json"], capture_output=True, text=True)
    assert as_json.returncode == 0, as_json.stderr
    figures = defaultdict(float)
    for figure in json.loads(as_json.stdout):
        figures[(figure["metric_name"], figure["source"], figure["window"])] += figure["value"]
    # The early import and the event put before the attribution are not in it.
    expected = expected_figures(setup["imported"] + setup["streamed"])
    assert dict(figures) == expected
    table = subprocess.run(command, capture_output=True, text=True, check=True).stdout.splitlines()
    assert table[0].split() == ["metric", "source", "window", "(UTC)", "value"]
    assert len(table) == 1 + len(expected)
    first_window = min(window for _, _, window in expected)
    stamp = datetime.fromtimestamp(first_window, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert any(stamp in line for line in table[1:])
    missing = subprocess.run(
        [*command[:4], setup["arn"] + "x", *command[5:]], capture_output=True, text=True
    )
    assert missing.returncode == 1 and "Could not find" in missing.stderr
