"""Recipes end to end: train, deploy, and ask the campaign (related items, popular items,
the HRNN family, cold items through metadata)."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from botocore.exceptions import ClientError
from helpers import active_dataset, active_group, error_code, run_import, schema, unique
from test_e2e_campaigns import deploy, taste_group
from test_e2e_solutions import (  # noqa: F401 - `group` is a fixture
    create_solution,
    group,
    interactions_csv,
    train,
)

from openpersonalize.testing.server import ServerProcess

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


# The service's clock at the start of each run (UTC): midnight, 07:00 (when the wall-clock
# version of this test failed), mid-afternoon, a minute before midnight on New Year's Eve.
CLOCK_SETTINGS = {
    "00:00": datetime(2026, 3, 1, 0, 0, tzinfo=UTC),
    "07:00": datetime(2026, 3, 1, 7, 0, tzinfo=UTC),
    "13:30": datetime(2026, 6, 15, 13, 30, tzinfo=UTC),
    "23:59": datetime(2026, 12, 31, 23, 59, tzinfo=UTC),
}
DAY = 86_400


@pytest.mark.parametrize("clock", list(CLOCK_SETTINGS))
def test_trending_now_follows_streamed_events(tmp_path: Path, clock: str) -> None:
    """A burst of clicks in the latest complete daily window puts the item first, whatever
    the time of day: the server runs on an injected clock, and the test places the events
    by the window boundaries (they follow the newest training event by whole days)."""
    start = CLOCK_SETTINGS[clock].timestamp()
    s3 = tmp_path / "s3"
    (s3 / "trending").mkdir(parents=True)
    csv = interactions_csv()
    (s3 / "trending" / "interactions.csv").write_text(csv)
    newest = max(int(line.split(",")[2]) for line in csv.splitlines()[1:])
    settings = {"s3_local_root": str(s3), "clock_start": str(start)}
    with ServerProcess(tmp_path / "server", settings=settings) as server:
        personalize = server.client("personalize")
        group_arn = active_group(personalize)
        dataset = active_dataset(personalize, group_arn, schema(personalize))
        assert run_import(personalize, dataset, "s3://trending/interactions.csv")["status"] == (
            "ACTIVE"
        )
        campaign = campaign_for(
            personalize,
            {"group": group_arn},
            "aws-trending-now",
            solutionConfig={
                "featureTransformationParameters": {"trend_discovery_frequency": "1 day"}
            },
        )
        runtime = server.client("personalize-runtime")
        before = runtime.get_recommendations(campaignArn=campaign, numResults=5)["itemList"]
        assert len(before) == 5  # no userId needed for a popular-items recipe
        assert before[0]["itemId"] != "c99"
        tracker = personalize.create_event_tracker(name=unique("t"), datasetGroupArn=group_arn)
        # The latest complete window ends a whole number of days after the newest event, at
        # or before the server's now (a few seconds past `start`): put the burst in its middle.
        window_end = newest + (int(start) - newest) // DAY * DAY
        burst = window_end - DAY // 2
        events = server.client("personalize-events")
        for user in range(60):
            events.put_events(
                trackingId=tracker["trackingId"],
                userId=f"u{user}",
                sessionId=f"s{user}",
                eventList=[{"eventType": "click", "itemId": "c99", "sentAt": burst + user}],
            )
        after = before
        for _ in range(40):  # the campaign's cached trend list is refreshed within seconds
            after = runtime.get_recommendations(campaignArn=campaign, numResults=5)["itemList"]
            if after[0]["itemId"] == "c99":
                break
            time.sleep(0.5)
        assert after[0]["itemId"] == "c99", (clock, before, after)


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


@pytest.mark.parametrize("recipe", ["aws-hrnn", "aws-hrnn-metadata", "aws-hrnn-coldstart"])
def test_hrnn_recipes_recommend_each_user_their_taste(  # type: ignore[no-untyped-def]
    personalize,
    server,
    group,  # noqa: F811
    recipe: str,
) -> None:
    runtime = server.client("personalize-runtime")
    campaign = campaign_for(
        personalize,
        group,
        recipe,
        solutionConfig={"algorithmHyperParameters": {"hidden_dimension": "32", "bptt": "16"}},
    )
    in_taste = []
    for user in range(100, 108):
        items = runtime.get_recommendations(campaignArn=campaign, userId=f"u{user}", numResults=10)[
            "itemList"
        ]
        assert len(items) == 10 and all("score" in entry for entry in items)
        in_taste.append(np.mean([taste_group(e["itemId"]) == user % 4 for e in items]))
    # Users of taste group g click items c{25g}..c{25g+24}: their lists follow their taste.
    assert np.mean(in_taste) >= 0.5, in_taste
    ranking = runtime.get_personalized_ranking(
        campaignArn=campaign, userId="u101", inputList=["c3", "c30", "unknown-item"]
    )["personalizedRanking"]
    assert [entry["itemId"] for entry in ranking] == ["c30", "c3", "unknown-item"]


# -- cold items: in the Items dataset, never interacted with ------------------------------------

COLD_ITEMS_SCHEMA = json.dumps(
    {
        "type": "record",
        "name": "Items",
        "namespace": "com.amazonaws.personalize.schema",
        "version": "1.0",
        "fields": [
            {"name": "ITEM_ID", "type": "string"},
            {"name": "GENRE", "type": "string", "categorical": True},
        ],
    }
)


@pytest.fixture(scope="module")
def cold_group(personalize, s3_root: Path) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """Users of taste g click items of GENRE g; new-g0 .. new-g3 have metadata and no events."""
    rng = np.random.default_rng(11)
    rows = []
    for user in range(160):
        genre = user % 4
        liked = rng.choice(10, size=8, replace=False)
        other = rng.integers(0, 40, size=2)
        picks = [f"m{genre}-{j}" for j in liked] + [f"m{k // 10}-{k % 10}" for k in other]
        for step, item in enumerate(rng.permutation(picks)):
            rows.append(f"u{user},{item},{1_700_000_000 + user * 100 + step},click,")
    items = [f"m{g}-{j},g{g}" for g in range(4) for j in range(10)]
    items += [f"new-g{g},g{g}" for g in range(4)]
    folder = s3_root / "cold"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "interactions.csv").write_text(
        "USER_ID,ITEM_ID,TIMESTAMP,EVENT_TYPE,EVENT_VALUE\n" + "\n".join(rows) + "\n"
    )
    (folder / "items.csv").write_text("ITEM_ID,GENRE\n" + "\n".join(items) + "\n")
    group_arn = active_group(personalize)
    interactions = active_dataset(personalize, group_arn, schema(personalize))
    item_set = active_dataset(
        personalize, group_arn, schema(personalize, COLD_ITEMS_SCHEMA), "Items"
    )
    assert run_import(personalize, interactions, "s3://cold/interactions.csv")["status"] == "ACTIVE"
    assert run_import(personalize, item_set, "s3://cold/items.csv")["status"] == "ACTIVE"
    unseen = personalize.create_filter(
        name=unique("unseen"),
        datasetGroupArn=group_arn,
        filterExpression='EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("*")',
    )["filterArn"]
    return {"group": group_arn, "unseen": unseen}


def cold_campaign(personalize, cold_group, recipe: str, **config: Any) -> str:  # type: ignore[no-untyped-def]
    fields: dict[str, Any] = {}
    if recipe == "aws-user-personalization":  # no exploration: only the model places new items
        fields["campaignConfig"] = {"itemExplorationConfig": {"explorationWeight": "0"}}
    else:  # a small network is plenty for 40 items, and quick to train
        config["algorithmHyperParameters"] = {"hidden_dimension": "32", "bptt": "8"}
    version = train(
        personalize,
        create_solution(
            personalize, cold_group, recipeArn=RECIPE.format(recipe), solutionConfig=config
        ),
    )
    assert version["status"] == "ACTIVE", version
    return deploy(personalize, version["solutionVersionArn"], **fields)


NEW_ITEMS = ["new-g0", "new-g1", "new-g2", "new-g3"]
COLD_START_RECIPES = ["aws-user-personalization", "aws-hrnn-coldstart"]


@pytest.mark.parametrize("recipe", COLD_START_RECIPES)
def test_items_without_interactions_reach_users_whose_taste_matches(  # type: ignore[no-untyped-def]
    personalize, server, cold_group, recipe: str
) -> None:
    runtime = server.client("personalize-runtime")
    campaign = cold_campaign(personalize, cold_group, recipe)
    found = []
    for user in range(16):
        # Among the items the user has not interacted with (the guide's EXCLUDE filter).
        listed = runtime.get_recommendations(
            campaignArn=campaign, userId=f"u{user}", numResults=5, filterArn=cold_group["unseen"]
        )["itemList"]
        found.append(f"new-g{user % 4}" in [entry["itemId"] for entry in listed])
    assert np.mean(found) >= 0.75, found
    # The new item of the user's genre outranks those of other genres.
    ranking = runtime.get_personalized_ranking(
        campaignArn=campaign, userId="u2", inputList=NEW_ITEMS
    )["personalizedRanking"]
    assert ranking[0]["itemId"] == "new-g2", ranking


@pytest.mark.parametrize("recipe", COLD_START_RECIPES)
def test_excluding_the_metadata_column_leaves_new_items_alike(  # type: ignore[no-untyped-def]
    personalize, server, cold_group, recipe: str
) -> None:
    runtime = server.client("personalize-runtime")
    campaign = cold_campaign(
        personalize,
        cold_group,
        recipe,
        trainingDataConfig={"excludedDatasetColumns": {"ITEMS": ["GENRE"]}},
    )
    ranking = runtime.get_personalized_ranking(
        campaignArn=campaign, userId="u2", inputList=NEW_ITEMS
    )["personalizedRanking"]
    assert len({entry["score"] for entry in ranking}) == 1, ranking
