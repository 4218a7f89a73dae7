"""Campaigns, recommendations, filters and events end to end through real boto3 clients."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.exceptions import ClientError
from helpers import error_code, unique
from test_e2e_solutions import (  # noqa: F401 - `group` is a fixture
    POPULARITY,
    UP,
    create_solution,
    group,
    items_csv,
    seen_items,
    train,
)

from openpersonalize.testing.server import wait_for_status

# When the tests' events happened: after every imported one (a fixed time, not the clock's).
STREAMED_AT = datetime(2024, 1, 2, 12, 0, tzinfo=UTC)
GENRE = {line.split(",")[0]: line.split(",")[2] for line in items_csv().splitlines()[1:]}


def taste_group(item: str) -> int:
    return int(item[1:]) // 25 if item.startswith("c") else -1


def deploy(personalize, version_arn: str, **fields: Any) -> str:  # type: ignore[no-untyped-def]
    arn = personalize.create_campaign(
        name=unique("campaign"), solutionVersionArn=version_arn, **fields
    )["campaignArn"]
    status = wait_for_status(personalize.describe_campaign, "campaign", "campaignArn", arn)
    assert status["status"] == "ACTIVE", status
    return arn


@pytest.fixture(scope="module")
def trained(personalize, group) -> dict[str, str]:  # type: ignore[no-untyped-def]  # noqa: F811
    solution = create_solution(personalize, group)
    version = train(personalize, solution)
    assert version["status"] == "ACTIVE", version
    campaign = deploy(
        personalize,
        version["solutionVersionArn"],
        campaignConfig={"itemExplorationConfig": {"explorationWeight": "0"}},
    )
    return {"solution": solution, "version": version["solutionVersionArn"], "campaign": campaign}


@pytest.fixture(scope="module")
def unseen(personalize, group) -> str:  # type: ignore[no-untyped-def]  # noqa: F811
    """The guide's filter for items the user has not interacted with (any event type)."""
    return personalize.create_filter(
        name=unique("unseen"),
        datasetGroupArn=group["group"],
        filterExpression='EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("*")',
    )["filterArn"]


@pytest.fixture(scope="module")
def runtime(server):  # type: ignore[no-untyped-def]
    return server.client("personalize-runtime")


def recommend(runtime, campaign: str, user: str, **fields: Any) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    return runtime.get_recommendations(campaignArn=campaign, userId=user, **fields)["itemList"]


def test_campaign_lifecycle_and_validation(personalize, trained, group) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    described = personalize.describe_campaign(campaignArn=trained["campaign"])["campaign"]
    assert described["solutionVersionArn"] == trained["version"]
    assert described["minProvisionedTPS"] == 1
    assert described["campaignConfig"]["itemExplorationConfig"] == {"explorationWeight": "0"}
    listed = personalize.list_campaigns(solutionArn=trained["solution"])["campaigns"]
    assert [c["campaignArn"] for c in listed] == [trained["campaign"]]
    with pytest.raises(ClientError) as caught:
        personalize.create_campaign(name=described["name"], solutionVersionArn=trained["version"])
    assert error_code(caught.value) == "ResourceAlreadyExistsException"
    with pytest.raises(ClientError) as caught:
        personalize.create_campaign(name=unique("c"), solutionVersionArn=trained["version"] + "0")
    assert error_code(caught.value) == "ResourceNotFoundException"
    with pytest.raises(ClientError) as caught:
        personalize.create_campaign(
            name=unique("c"),
            solutionVersionArn=trained["version"],
            campaignConfig={"syncWithLatestSolutionVersion": True},
        )
    assert error_code(caught.value) == "InvalidInputException"
    assert "$LATEST" in caught.value.response["Error"]["Message"]
    popularity = train(personalize, create_solution(personalize, group, recipeArn=POPULARITY))
    with pytest.raises(ClientError) as caught:
        personalize.create_campaign(
            name=unique("c"),
            solutionVersionArn=popularity["solutionVersionArn"],
            campaignConfig={"itemExplorationConfig": {"explorationWeight": "0.5"}},
        )
    assert error_code(caught.value) == "InvalidInputException"
    with pytest.raises(ClientError) as caught:
        personalize.delete_solution(solutionArn=trained["solution"])
    assert error_code(caught.value) == "ResourceInUseException"


def test_recommendations_are_personal_and_filters_decide_on_seen_items(  # type: ignore[no-untyped-def]
    runtime, trained, unseen
) -> None:
    seen = seen_items()
    # Custom recipes recommend what the user interacted with like anything else, as the
    # service does; the guide's EXCLUDE filter leaves it out.
    unfiltered = recommend(runtime, trained["campaign"], "u4")
    assert {entry["itemId"] for entry in unfiltered} & seen["u4"]
    response = runtime.get_recommendations(
        campaignArn=trained["campaign"], userId="u4", filterArn=unseen
    )
    items = response["itemList"]
    assert response["recommendationId"].startswith("RID-")
    assert len(items) == 25
    assert not {entry["itemId"] for entry in items} & seen["u4"]
    scores = [entry["score"] for entry in items]
    assert scores == sorted(scores, reverse=True) and all(0 < s <= 1 for s in scores)
    # user 4 is in taste group 0 (u % 4): the items they have not seen of that group come first
    top = [
        entry["itemId"]
        for entry in recommend(runtime, trained["campaign"], "u4", numResults=5, filterArn=unseen)
    ]
    assert sum(taste_group(item) == 0 for item in top) >= 3, top
    other = [
        entry["itemId"]
        for entry in recommend(runtime, trained["campaign"], "u5", numResults=5, filterArn=unseen)
    ]
    assert sum(taste_group(item) == 1 for item in other) >= 3, other
    cold = recommend(runtime, trained["campaign"], "someone-new", numResults=10)
    assert len(cold) == 10  # cold start: popular items, not an error
    with pytest.raises(ClientError) as caught:
        runtime.get_recommendations(campaignArn=trained["campaign"], userId="u1", numResults=501)
    assert error_code(caught.value) == "InvalidInputException"
    with pytest.raises(ClientError) as caught:
        runtime.get_recommendations(campaignArn=trained["campaign"])
    assert error_code(caught.value) == "InvalidInputException"
    assert "userId" in caught.value.response["Error"]["Message"]


def test_personalized_ranking(runtime, trained) -> None:  # type: ignore[no-untyped-def]
    ranking = runtime.get_personalized_ranking(
        campaignArn=trained["campaign"],
        userId="u4",
        inputList=["c30", "c3", "never-seen", "c60", "c7"],
    )["personalizedRanking"]
    assert [entry["itemId"] for entry in ranking][-1] == "never-seen"
    assert "score" not in ranking[-1]
    assert {entry["itemId"] for entry in ranking[:2]} == {"c3", "c7"}  # u4's taste group


def test_interaction_filters_read_the_users_history(personalize, runtime, trained, group) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    seen = seen_items()
    purchases: dict[str, set[str]] = {}
    from test_e2e_solutions import interactions_csv

    for line in interactions_csv().splitlines()[1:]:
        user, item, _, event_type = line.split(",")[:4]
        if event_type == "purchase":
            purchases.setdefault(user, set()).add(item)

    def made(expression: str) -> str:
        return personalize.create_filter(
            name=unique("f"), datasetGroupArn=group["group"], filterExpression=expression
        )["filterArn"]

    # "Items the user has interacted with" (the guide's INCLUDE ... IN ("*")): watch again.
    again = made('INCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("*")')
    items = {e["itemId"] for e in recommend(runtime, trained["campaign"], "u4", filterArn=again)}
    assert items and items <= seen["u4"]
    # Buy again, spelled as sample notebooks spell it: field and event type in another case.
    bought = made('INCLUDE ItemID WHERE interactions.event_type IN ("PURCHASE")')
    items = {e["itemId"] for e in recommend(runtime, trained["campaign"], "u4", filterArn=bought)}
    assert items and items <= purchases["u4"]
    # By a placeholder: only the clicked items.
    by_type = made("INCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ($TYPE)")
    items = {
        e["itemId"]
        for e in recommend(
            runtime,
            trained["campaign"],
            "u4",
            filterArn=by_type,
            filterValues={"TYPE": '"click"'},
        )
    }
    assert items and all(item.startswith("c") for item in items) and items <= seen["u4"]


def test_filters(personalize, runtime, trained, group) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    with pytest.raises(ClientError) as caught:
        personalize.create_filter(
            name=unique("f"),
            datasetGroupArn=group["group"],
            filterExpression="INCLUDE ItemID WERE Items.GENRE IN ($G)",
        )
    assert error_code(caught.value) == "InvalidInputException"
    assert "position" in caught.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as caught:
        personalize.create_filter(
            name=unique("f"),
            datasetGroupArn=group["group"],
            filterExpression='INCLUDE ItemID WHERE Items.COLOR IN ("red")',
        )
    assert error_code(caught.value) == "InvalidInputException"
    assert "COLOR" in caught.value.response["Error"]["Message"]
    genre = personalize.create_filter(
        name=unique("f"),
        datasetGroupArn=group["group"],
        filterExpression="INCLUDE ItemID WHERE Items.GENRE IN ($G)",
    )["filterArn"]
    assert (
        wait_for_status(personalize.describe_filter, "filter", "filterArn", genre)["status"]
        == "ACTIVE"
    )
    listed = personalize.list_filters(datasetGroupArn=group["group"])["Filters"]
    assert genre in [f["filterArn"] for f in listed]
    items = recommend(
        runtime,
        trained["campaign"],
        "u4",
        numResults=20,
        filterArn=genre,
        filterValues={"G": '"g1"'},
    )
    assert len(items) == 20  # filtered before top-k: the full count still comes back
    assert {GENRE[entry["itemId"]] for entry in items} == {"g1"}
    with pytest.raises(ClientError) as caught:
        recommend(runtime, trained["campaign"], "u4", filterArn=genre)
    assert error_code(caught.value) == "InvalidInputException"
    assert "G" in caught.value.response["Error"]["Message"]
    clicked = personalize.create_filter(
        name=unique("f"),
        datasetGroupArn=group["group"],
        filterExpression='EXCLUDE ItemID WHERE Items.GENRE IN ("g0", "g2")',
    )["filterArn"]
    wait_for_status(personalize.describe_filter, "filter", "filterArn", clicked)
    items = recommend(runtime, trained["campaign"], "u4", numResults=30, filterArn=clicked)
    assert {GENRE[entry["itemId"]] for entry in items} <= {"g1", "g3"}
    personalize.delete_filter(filterArn=clicked)


def test_events_change_the_next_answer(
    personalize, runtime, trained, group, server, unseen  # noqa: F811
) -> None:  # type: ignore[no-untyped-def]
    created = personalize.create_event_tracker(
        name=unique("tracker"), datasetGroupArn=group["group"]
    )
    tracker = wait_for_status(
        personalize.describe_event_tracker,
        "eventTracker",
        "eventTrackerArn",
        created["eventTrackerArn"],
    )
    assert tracker["status"] == "ACTIVE" and tracker["trackingId"] == created["trackingId"]
    dataset = personalize.describe_dataset(datasetArn=group["interactions"])["dataset"]
    assert dataset["trackingId"] == created["trackingId"]
    with pytest.raises(ClientError) as caught:
        personalize.create_event_tracker(name=unique("tracker"), datasetGroupArn=group["group"])
    assert error_code(caught.value) == "ResourceAlreadyExistsException"
    events = server.client("personalize-events")
    before = [
        entry["itemId"] for entry in recommend(runtime, trained["campaign"], "u8", filterArn=unseen)
    ]
    clicked = before[:3]
    events.put_events(
        trackingId=created["trackingId"],
        userId="u8",
        sessionId="s-1",
        eventList=[
            {"eventType": "click", "itemId": item, "sentAt": STREAMED_AT} for item in clicked
        ],
    )
    after = [
        entry["itemId"] for entry in recommend(runtime, trained["campaign"], "u8", filterArn=unseen)
    ]
    assert not set(clicked) & set(after)  # just interacted with: the filter leaves them out
    # a brand-new user's clicks fold into a session profile: the next answer follows them
    group3 = [f"c{75 + i}" for i in range(8)]
    events.put_events(
        trackingId=created["trackingId"],
        userId="visitor-1",
        sessionId="s-2",
        eventList=[
            {"eventType": "click", "itemId": item, "sentAt": STREAMED_AT} for item in group3[:8]
        ][:10],
    )
    visitor = [
        entry["itemId"]
        for entry in recommend(runtime, trained["campaign"], "visitor-1", numResults=5)
    ]
    assert sum(taste_group(item) == 3 for item in visitor) >= 3, visitor
    # Older sample code names the item in properties ({"itemId": ...}) rather than a member.
    top = recommend(runtime, trained["campaign"], "u9", filterArn=unseen)[0]["itemId"]
    events.put_events(
        trackingId=created["trackingId"],
        userId="u9",
        sessionId="s-3",
        eventList=[
            {"eventType": "click", "sentAt": STREAMED_AT, "properties": json.dumps({"itemId": top})}
        ],
    )
    later = recommend(runtime, trained["campaign"], "u9", filterArn=unseen)
    assert top not in {entry["itemId"] for entry in later}
    with pytest.raises(ClientError) as caught:
        events.put_events(
            trackingId="no-such-tracker",
            sessionId="s",
            eventList=[{"eventType": "click", "itemId": "c1", "sentAt": STREAMED_AT}],
        )
    assert error_code(caught.value) == "InvalidInputException"
    with pytest.raises(ClientError) as caught:
        events.put_events(
            trackingId=created["trackingId"],
            sessionId="s",
            eventList=[
                {
                    "eventType": "click",
                    "itemId": "c1",
                    "sentAt": STREAMED_AT,
                    "properties": '{"userId": "x"}',
                }
            ],
        )
    assert error_code(caught.value) == "InvalidInputException"


def test_put_items_and_users(personalize, server, group) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    events = server.client("personalize-events")
    events.put_items(
        datasetArn=group["items"],
        items=[{"itemId": "brand-new", "properties": '{"price": 3.5, "genre": "g2"}'}],
    )
    with pytest.raises(ClientError) as caught:
        events.put_items(
            datasetArn=group["items"], items=[{"itemId": "x", "properties": '{"color": "red"}'}]
        )
    assert error_code(caught.value) == "InvalidInputException"
    assert "color" in caught.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as caught:
        events.put_items(
            datasetArn=group["items"], items=[{"itemId": "x", "properties": '{"price": "cheap"}'}]
        )
    assert error_code(caught.value) == "InvalidInputException"
    missing = group["items"].replace("/ITEMS", "/USERS")
    with pytest.raises(ClientError) as caught:
        events.put_users(datasetArn=missing, users=[{"userId": "u1", "properties": "{}"}])
    assert error_code(caught.value) == "ResourceNotFoundException"
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def test_metadata_promotions_and_exploration(personalize, runtime, trained, group) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    with pytest.raises(ClientError) as caught:
        recommend(runtime, trained["campaign"], "u4", metadataColumns={"ITEMS": ["GENRE"]})
    assert error_code(caught.value) == "InvalidInputException"
    rich = deploy(
        personalize,
        trained["version"],
        campaignConfig={
            "enableMetadataWithRecommendations": True,
            "itemExplorationConfig": {"explorationWeight": "1.0", "explorationItemAgeCutOff": "30"},
        },
    )
    items = recommend(runtime, rich, "u4", numResults=10, metadataColumns={"ITEMS": ["GENRE"]})
    assert all(entry["metadata"]["GENRE"] == GENRE[entry["itemId"]] for entry in items)
    explored = [entry for entry in items if entry.get("reason") == ["Exploration"]]
    assert {entry["itemId"] for entry in explored} <= {"new1", "new2"} and explored
    promoted_filter = personalize.create_filter(
        name=unique("f"),
        datasetGroupArn=group["group"],
        filterExpression='INCLUDE ItemID WHERE Items.GENRE IN ("g2")',
    )["filterArn"]
    wait_for_status(personalize.describe_filter, "filter", "filterArn", promoted_filter)
    items = recommend(
        runtime,
        trained["campaign"],
        "u4",
        numResults=10,
        promotions=[{"name": "summer", "percentPromotedItems": 30, "filterArn": promoted_filter}],
    )
    promoted = [entry for entry in items if entry.get("promotionName") == "summer"]
    assert len(promoted) == 3 and all(GENRE[entry["itemId"]] == "g2" for entry in promoted)
    assert len(items) == 10 and len({entry["itemId"] for entry in items}) == 10


def test_update_campaign_switches_without_failed_requests(personalize, server, trained) -> None:  # type: ignore[no-untyped-def]
    newer = train(personalize, trained["solution"])
    assert newer["status"] == "ACTIVE"
    failures: list[str] = []
    served = 0
    stop = threading.Event()

    def traffic() -> None:
        nonlocal served
        client = server.client("personalize-runtime")
        while not stop.is_set():
            try:
                assert len(recommend(client, trained["campaign"], "u3", numResults=5)) == 5
                served += 1
            except Exception as error:  # any failure counts
                failures.append(repr(error))

    threads = [threading.Thread(target=traffic) for _ in range(3)]
    for thread in threads:
        thread.start()
    try:
        personalize.update_campaign(
            campaignArn=trained["campaign"], solutionVersionArn=newer["solutionVersionArn"]
        )
        deadline = time.monotonic() + 60
        while True:
            campaign = personalize.describe_campaign(campaignArn=trained["campaign"])["campaign"]
            if campaign["latestCampaignUpdate"]["status"] == "ACTIVE":
                break
            assert time.monotonic() < deadline
            time.sleep(0.05)
        time.sleep(2)  # keep traffic flowing across the switch
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert failures == []
    assert served > 20
    assert campaign["solutionVersionArn"] == newer["solutionVersionArn"]
    personalize.delete_campaign(campaignArn=trained["campaign"])
