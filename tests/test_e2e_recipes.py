"""Related-items and popular-items recipes end to end: train, deploy, and ask the campaign."""

from __future__ import annotations

import time

import pytest
from botocore.exceptions import ClientError
from helpers import error_code, unique
from test_e2e_campaigns import deploy, taste_group
from test_e2e_solutions import (  # noqa: F401 - `group` is a fixture
    create_solution,
    group,
    train,
)

from openpersonalize.testing.server import wait_for_status

RECIPE = "arn:aws:personalize:::recipe/{}"


def campaign_for(personalize, group, recipe: str, **fields) -> str:  # type: ignore[no-untyped-def]  # noqa: F811
    version = train(
        personalize, create_solution(personalize, group, recipeArn=RECIPE.format(recipe), **fields)
    )
    assert version["status"] == "ACTIVE", version
    assert set(
        personalize.get_solution_metrics(solutionVersionArn=version["solutionVersionArn"])[
            "metrics"
        ]
    )
    return deploy(personalize, version["solutionVersionArn"])


@pytest.mark.parametrize("recipe", ["aws-sims", "aws-similar-items"])
def test_related_items(personalize, server, group, recipe: str) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    runtime = server.client("personalize-runtime")
    campaign = campaign_for(personalize, group, recipe)
    items = runtime.get_recommendations(campaignArn=campaign, itemId="c30", numResults=10)[
        "itemList"
    ]
    related = [entry["itemId"] for entry in items]
    assert "c30" not in related and len(related) == 10
    # c30 is in taste group 1; similar-items also weighs GENRE, which cuts across groups
    assert sum(taste_group(item) == 1 for item in related) >= 5, related
    with pytest.raises(ClientError) as caught:
        runtime.get_recommendations(campaignArn=campaign, userId="u1")
    assert error_code(caught.value) == "InvalidInputException"
    assert "itemId" in caught.value.response["Error"]["Message"]


def test_similar_items_gives_cold_items_neighbours(personalize, server, group) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    runtime = server.client("personalize-runtime")
    campaign = campaign_for(personalize, group, "aws-similar-items")
    # new1 has no interactions at all; its metadata (GENRE) still finds it neighbours
    related = runtime.get_recommendations(campaignArn=campaign, itemId="new1", numResults=5)
    assert len(related["itemList"]) == 5


def test_trending_now_follows_streamed_events(personalize, server, group) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    runtime = server.client("personalize-runtime")
    campaign = campaign_for(
        personalize,
        group,
        "aws-trending-now",
        solutionConfig={"featureTransformationParameters": {"trend_discovery_frequency": "1 day"}},
    )
    before = runtime.get_recommendations(campaignArn=campaign, numResults=5)["itemList"]
    assert len(before) == 5  # no userId needed for a popular-items recipe
    trackers = personalize.list_event_trackers(datasetGroupArn=group["group"])["eventTrackers"]
    if trackers:
        tracking_id = personalize.describe_event_tracker(
            eventTrackerArn=trackers[0]["eventTrackerArn"]
        )["eventTracker"]["trackingId"]
    else:
        created = personalize.create_event_tracker(name=unique("t"), datasetGroupArn=group["group"])
        tracking_id = created["trackingId"]
        wait_for_status(
            personalize.describe_event_tracker,
            "eventTracker",
            "eventTrackerArn",
            created["eventTrackerArn"],
        )
    events = server.client("personalize-events")
    # c99 suddenly takes off: 60 clicks in yesterday's (complete) daily window
    base = time.time() - 86_400 - 6 * 3600
    for user in range(60):
        events.put_events(
            trackingId=tracking_id,
            userId=f"u{user}",
            sessionId=f"s{user}",
            eventList=[{"eventType": "click", "itemId": "c99", "sentAt": base + user}],
        )
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        after = runtime.get_recommendations(campaignArn=campaign, numResults=5)["itemList"]
        if after[0]["itemId"] == "c99":
            break
        time.sleep(0.5)
    assert after[0]["itemId"] == "c99", (before, after)


def test_user_personalization_v2_transformer(personalize, server, group) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    runtime = server.client("personalize-runtime")
    campaign = campaign_for(
        personalize,
        group,
        "aws-user-personalization-v2",
        solutionConfig={"algorithmHyperParameters": {"apply_recency_bias": "false"}},
    )
    items = runtime.get_recommendations(campaignArn=campaign, userId="u4", numResults=10)[
        "itemList"
    ]
    assert len(items) == 10
    ranking = runtime.get_personalized_ranking(
        campaignArn=campaign, userId="u4", inputList=["c3", "c60", "unknown-item"]
    )["personalizedRanking"]
    assert ranking[-1] == {"itemId": "unknown-item"}
