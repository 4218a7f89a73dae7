"""The metric attribution computation (metrics/attribution.py) and the events table upgrade
that stores each event's attribution source."""

from __future__ import annotations

import random
from collections import defaultdict
from pathlib import Path

import pyarrow as pa
import pytest
from sqlalchemy import create_engine, inspect, select

from openpersonalize.errors import InvalidInputException
from openpersonalize.metrics import attribution
from openpersonalize.store.database import Database, EventRow

CAMPAIGN = "arn:aws:personalize:us-east-1:000000000000:campaign/shop"
RECOMMENDER = "arn:aws:personalize:us-east-1:000000000000:recommender/home"


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("SAMPLECOUNT()", attribution.Expression("samplecount")),
        (" samplecount ( ) ", attribution.Expression("samplecount")),
        ("SUM(Items.PRICE)", attribution.Expression("sum", "Items", "PRICE")),
        (
            "sum( interactions . EVENT_VALUE )",
            attribution.Expression("sum", "Interactions", "EVENT_VALUE"),
        ),
    ],
)
def test_expressions_parse(text: str, parsed: attribution.Expression) -> None:
    assert attribution.parse_expression(text) == parsed


@pytest.mark.parametrize(
    "text",
    ["", "COUNT()", "SUM(Items)", "SUM(Users.AGE)", "SUM(Items.PRICE) + 1", "SAMPLECOUNT(x)"],
)
def test_bad_expressions_are_refused(text: str) -> None:
    with pytest.raises(InvalidInputException, match="not valid"):
        attribution.parse_expression(text)


def test_recommendation_ids_name_their_deployment_within_40_characters() -> None:
    codes = attribution.codes_of([CAMPAIGN, RECOMMENDER])
    ids = {attribution.recommendation_id(CAMPAIGN) for _ in range(100)}
    assert len(ids) == 100  # random beyond the deployment code
    for rid in ids:
        assert len(rid) == 40 and rid.startswith("RID-")
        assert attribution.deployment_of(rid, codes) == CAMPAIGN
    assert attribution.deployment_of(attribution.recommendation_id(RECOMMENDER), codes) == (
        RECOMMENDER
    )
    gone = attribution.recommendation_id(CAMPAIGN + "-deleted")
    assert attribution.deployment_of(gone, codes) is None
    assert attribution.deployment_of("RID-a-uuid-from-elsewhere", codes) is None
    assert attribution.deployment_of(None, codes) is None


def test_sources_prefer_the_given_one_then_the_recommendation() -> None:
    rid = attribution.recommendation_id(RECOMMENDER)
    sources = attribution.attribution_sources(
        pa.array(["email", None, "", None, "push"]),
        pa.array([rid, rid, rid, "someone-elses-id", None]),
        attribution.codes_of([CAMPAIGN, RECOMMENDER]),
    )
    assert sources.to_pylist() == [
        "email",
        RECOMMENDER,
        RECOMMENDER,
        "SOURCE_NAME_UNDEFINED",
        "push",
    ]
    nothing = attribution.attribution_sources(pa.nulls(2), pa.nulls(2), {})
    assert nothing.to_pylist() == ["SOURCE_NAME_UNDEFINED"] * 2


def metric(name: str, event_type: str, expression: str) -> attribution.Metric:
    return attribution.Metric.from_wire(
        {"metricName": name, "eventType": event_type, "expression": expression}
    )


def test_figures_match_a_direct_count_on_random_events() -> None:
    rng = random.Random(7)
    prices = {f"i{n}": float(rng.randint(1, 40)) / 4 for n in range(30)}
    events = [
        {
            "EVENT_TYPE": rng.choice(["click", "Click", "purchase", "view"]),
            "TIMESTAMP": 1_700_000_000 + rng.randint(0, 20_000),
            "ITEM_ID": rng.choice([*prices, "unknown-item"]),
            "EVENT_ATTRIBUTION_SOURCE": rng.choice(["a", "b", attribution.SOURCE_UNDEFINED]),
            "EVENT_VALUE": rng.choice([None, 0.5, 1.0, 2.25]),
        }
        for _ in range(2000)
    ]
    metrics = [
        metric("CLICKS", "CLICK", "SAMPLECOUNT()"),
        metric("CLICK_VALUE", "click", "SUM(Interactions.EVENT_VALUE)"),
        metric("REVENUE", "purchase", "SUM(Items.PRICE)"),
    ]
    items = pa.table({"ITEM_ID": list(prices), "PRICE": list(prices.values())})
    figures = attribution.compute(pa.Table.from_pylist(events), metrics, items)
    expected: dict[tuple[str, str, int], float] = defaultdict(float)
    for event in events:
        window = event["TIMESTAMP"] - event["TIMESTAMP"] % 900
        key = (event["EVENT_ATTRIBUTION_SOURCE"], window)
        if event["EVENT_TYPE"].lower() == "click":
            expected[("CLICKS", *key)] += 1
            if event["EVENT_VALUE"] is not None:
                expected[("CLICK_VALUE", *key)] += event["EVENT_VALUE"]
        if event["EVENT_TYPE"] == "purchase" and event["ITEM_ID"] in prices:
            expected[("REVENUE", *key)] += prices[event["ITEM_ID"]]
    assert {(f.metric_name, f.source, f.window): f.value for f in figures} == expected
    assert len(figures) == len(expected)
    functions = {f.metric_name: f.math_function for f in figures}
    assert functions == {"CLICKS": "samplecount", "CLICK_VALUE": "sum", "REVENUE": "sum"}
    # Within a metric: by source, then window.
    clicks = [(f.source, f.window) for f in figures if f.metric_name == "CLICKS"]
    assert clicks == sorted(clicks)


def test_the_newest_item_record_counts_and_missing_values_add_nothing() -> None:
    events = pa.table(
        {
            "EVENT_TYPE": ["buy", "buy", "buy"],
            "TIMESTAMP": [1799, 1800, 1801],
            "ITEM_ID": ["a", "a", "b"],
            "EVENT_ATTRIBUTION_SOURCE": ["s", "s", "s"],
        }
    )
    items = pa.table({"ITEM_ID": ["a", "b", "a"], "PRICE": [1.0, None, 5.0]})  # a: 5.0 now
    figures = attribution.compute(events, [metric("REVENUE", "buy", "SUM(Items.PRICE)")], items)
    assert [(f.window, f.value) for f in figures] == [(900, 5.0), (1800, 5.0)]
    assert attribution.compute(events.slice(0, 0), [metric("N", "buy", "SAMPLECOUNT()")]) == []
    no_items = attribution.compute(events, [metric("REVENUE", "buy", "SUM(Items.PRICE)")], None)
    assert no_items == []


def test_the_report_csv() -> None:
    figure = attribution.Figure(
        "COUNTWATCHES", "WATCH", 12.0, "samplecount", RECOMMENDER, 1_666_925_100
    )
    assert attribution.report_csv([figure]).splitlines() == [
        "METRIC_NAME,EVENT_TYPE,VALUE,MATH_FUNCTION,EVENT_ATTRIBUTION_SOURCE,TIMESTAMP",
        f"COUNTWATCHES,WATCH,12.0,samplecount,{RECOMMENDER},1666925100",
    ]


def test_an_older_events_table_gains_the_source_column_and_index(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    with create_engine(url).begin() as connection:  # the events table before the column
        connection.exec_driver_sql(
            "CREATE TABLE events (id INTEGER PRIMARY KEY, dataset_arn VARCHAR(256), "
            "tracking_id VARCHAR(64), user_id VARCHAR(256), session_id VARCHAR(256), "
            "item_id VARCHAR(256), event_type VARCHAR(256), event_value FLOAT, timestamp FLOAT, "
            "event_id VARCHAR(256), recommendation_id VARCHAR(64), impression TEXT, "
            "properties JSON, received_at FLOAT)"
        )
        connection.exec_driver_sql(
            "INSERT INTO events (dataset_arn, tracking_id, user_id, session_id, event_type, "
            "timestamp, received_at) VALUES ('d', 't', 'u', 's', 'click', 1, 2)"
        )
    database = Database(url)
    database.create_tables()
    database.create_tables()  # a second process starting finds it done
    columns = {c["name"] for c in inspect(database.engine).get_columns("events")}
    assert "event_attribution_source" in columns
    indexes = {i["name"] for i in inspect(database.engine).get_indexes("events")}
    assert "ix_events_dataset_id" in indexes
    with database.transaction() as session:
        session.add(
            EventRow(
                dataset_arn="d",
                tracking_id="t",
                user_id="u",
                session_id="s",
                event_type="click",
                timestamp=3,
                received_at=4,
                event_attribution_source="email",
            )
        )
    with database.snapshot() as session:
        sources = session.scalars(select(EventRow.event_attribution_source).order_by(EventRow.id))
        assert list(sources) == [None, "email"]
    database.dispose()
