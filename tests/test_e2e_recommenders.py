"""Domain dataset groups and recommenders end to end through real boto3 clients.

One ECOMMERCE and one VIDEO_ON_DEMAND dataset group (seeded synthetic data with planted
structure: shoppers and viewers prefer one category or genre, companions are bought in the
same basket) get one recommender per use case; each use case must answer the right kind of
list, leave out what the guide says it leaves out, and refuse what the service refuses.
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from helpers import error_code, run_import, unique

from openpersonalize.testing import domain
from openpersonalize.testing.server import wait_for_status

RECIPE = "arn:aws:personalize:::recipe/"
ECOMMERCE_USE_CASES = (
    "aws-ecomm-recommended-for-you",
    "aws-ecomm-customers-who-viewed-x-also-viewed",
    "aws-ecomm-frequently-bought-together",
    "aws-ecomm-popular-items-by-views",
    "aws-ecomm-popular-items-by-purchases",
)
VOD_USE_CASES = (
    "aws-vod-top-picks",
    "aws-vod-because-you-watched-x",
    "aws-vod-more-like-x",
    "aws-vod-most-popular",
    "aws-vod-trending-now",
)


def wait_recommender(personalize: Any, arn: str, *statuses: str) -> dict[str, Any]:
    return wait_for_status(
        personalize.describe_recommender,
        "recommender",
        "recommenderArn",
        arn,
        statuses=statuses or ("ACTIVE", "CREATE FAILED"),
        timeout=600,
    )


def domain_group(
    personalize: Any, s3_root: Path, data: domain.DomainData, *, items: bool = True
) -> str:
    """A Domain dataset group with the data imported (calls made without waiting, as user
    code makes them)."""
    bucket = unique("domain")
    interactions_csv, items_csv = data.write(s3_root / bucket)
    del interactions_csv, items_csv
    group = personalize.create_dataset_group(name=unique("dg"), domain=data.domain)
    assert group["domain"] == data.domain
    group_arn = group["datasetGroupArn"]
    for dataset_type, file_name in (("Interactions", "interactions.csv"), ("Items", "items.csv")):
        if dataset_type == "Items" and not items:
            continue
        schema_arn = personalize.create_schema(
            name=unique("schema"),
            schema=domain.schema_json(dataset_type, data),
            domain=data.domain,
        )["schemaArn"]
        dataset_arn = personalize.create_dataset(
            name=unique("ds"),
            datasetGroupArn=group_arn,
            schemaArn=schema_arn,
            datasetType=dataset_type,
        )["datasetArn"]
        done = run_import(personalize, dataset_arn, f"s3://{bucket}/{file_name}", timeout=300)
        assert done["status"] == "ACTIVE", done.get("failureReason")
    return group_arn


def create_recommenders(
    personalize: Any, group_arn: str, use_cases: tuple[str, ...], **extra: Any
) -> dict[str, str]:
    created = {
        use_case: personalize.create_recommender(
            name=unique(use_case.removeprefix("aws-")[:40]),
            datasetGroupArn=group_arn,
            recipeArn=RECIPE + use_case,
            **extra.get(use_case, {}),
        )["recommenderArn"]
        for use_case in use_cases
    }
    for use_case, arn in created.items():
        final = wait_recommender(personalize, arn)
        assert final["status"] == "ACTIVE", (use_case, final.get("failureReason"))
    return created


@pytest.fixture(scope="module")
def runtime(server):  # type: ignore[no-untyped-def]
    return server.client("personalize-runtime")


@pytest.fixture(scope="module")
def events(server):  # type: ignore[no-untyped-def]
    return server.client("personalize-events")


@pytest.fixture(scope="module")
def shop() -> domain.DomainData:
    return domain.ecommerce()


@pytest.fixture(scope="module")
def videos() -> domain.DomainData:
    return domain.video_on_demand()


@pytest.fixture(scope="module")
def ecommerce(personalize, s3_root, shop) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    group_arn = domain_group(personalize, s3_root, shop)
    recommenders = create_recommenders(
        personalize,
        group_arn,
        ECOMMERCE_USE_CASES,
        **{
            "aws-ecomm-recommended-for-you": {
                "recommenderConfig": {
                    "itemExplorationConfig": {"explorationWeight": "0"},
                    "enableMetadataWithRecommendations": True,
                },
                "tags": [{"tagKey": "team", "tagValue": "shop"}],
            }
        },
    )
    return {"group": group_arn, "recommenders": recommenders}


@pytest.fixture(scope="module")
def vod(personalize, s3_root, videos) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    group_arn = domain_group(personalize, s3_root, videos)
    recommenders = create_recommenders(
        personalize,
        group_arn,
        VOD_USE_CASES,
        **{
            "aws-vod-top-picks": {
                "recommenderConfig": {"itemExplorationConfig": {"explorationWeight": "0"}}
            }
        },
    )
    return {"group": group_arn, "recommenders": recommenders}


def items_of(runtime: Any, recommender_arn: str, **request: Any) -> list[str]:
    answer = runtime.get_recommendations(recommenderArn=recommender_arn, **request)
    assert answer["recommendationId"].startswith("RID-")
    return [entry["itemId"] for entry in answer["itemList"]]


def refusal(call: Any, seconds: float = 10.0) -> ClientError:
    """The error `call` raises once the change it waits for reached the hot path, which
    caches a recommender's record for about a second."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            call()
        except ClientError as error:
            return error
        assert time.monotonic() < deadline, "the call kept succeeding"
        time.sleep(0.2)


def of_user(data: domain.DomainData, user: str, event_type: str) -> set[str]:
    return {item for who, item, _, kind in data.interactions if who == user and kind == event_type}


# -- the recipes --------------------------------------------------------------------------------


def test_list_recipes_by_domain(personalize) -> None:  # type: ignore[no-untyped-def]
    by_domain = {
        name: {
            summary["name"]: summary.get("domain")
            for summary in personalize.list_recipes(domain=name)["recipes"]
        }
        for name in ("ECOMMERCE", "VIDEO_ON_DEMAND")
    }
    assert set(by_domain["ECOMMERCE"]) == set(ECOMMERCE_USE_CASES)
    assert set(by_domain["VIDEO_ON_DEMAND"]) == set(VOD_USE_CASES)
    assert set(by_domain["ECOMMERCE"].values()) == {"ECOMMERCE"}
    every = {summary["name"]: summary for summary in personalize.list_recipes()["recipes"]}
    assert set(ECOMMERCE_USE_CASES) | set(VOD_USE_CASES) <= set(every)
    assert "domain" not in every["aws-user-personalization"]  # custom recipes have none
    described = personalize.describe_recipe(recipeArn=RECIPE + "aws-vod-top-picks")["recipe"]
    assert described["recipeType"] == "USER_PERSONALIZATION"


def test_use_cases_are_refused_by_create_solution(personalize, ecommerce) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ClientError) as refused:
        personalize.create_solution(
            name=unique("sol"),
            datasetGroupArn=ecommerce["group"],
            recipeArn=RECIPE + "aws-ecomm-recommended-for-you",
        )
    assert error_code(refused.value) == "InvalidInputException"
    assert "CreateRecommender" in str(refused.value)


# -- ECOMMERCE ----------------------------------------------------------------------------------


def test_recommended_for_you_is_personal_and_leaves_out_purchases(  # type: ignore[no-untyped-def]
    personalize, runtime, ecommerce, shop
) -> None:
    arn = ecommerce["recommenders"]["aws-ecomm-recommended-for-you"]
    described = personalize.describe_recommender(recommenderArn=arn)["recommender"]
    assert described["status"] == "ACTIVE"
    assert described["recipeArn"] == RECIPE + "aws-ecomm-recommended-for-you"
    assert set(described["modelMetrics"]) >= {
        "coverage",
        "normalized_discounted_cumulative_gain_at_10",
    }
    assert described["recommenderConfig"]["enableMetadataWithRecommendations"] is True
    in_preferred = total = 0
    for user in list(shop.preferred)[:40]:
        items = items_of(runtime, arn, userId=user, numResults=10)
        assert len(items) == 10
        assert not set(items) & of_user(shop, user, "Purchase")  # automatic exclusion
        in_preferred += sum(shop.group_of[item] == shop.preferred[user] for item in items)
        total += len(items)
    # A sixth of the catalog is each shopper's category; most of the list should be.
    assert in_preferred / total > 0.6, in_preferred / total


def test_customers_who_viewed_x_also_viewed(personalize, runtime, ecommerce, shop) -> None:  # type: ignore[no-untyped-def]
    arn = ecommerce["recommenders"]["aws-ecomm-customers-who-viewed-x-also-viewed"]
    user = next(iter(shop.preferred))
    same = total = 0
    for item in list(shop.group_of)[::7]:
        related = items_of(runtime, arn, itemId=item, userId=user, numResults=10)
        assert item not in related
        assert not set(related) & of_user(shop, user, "Purchase")
        same += sum(shop.group_of[other] == shop.group_of[item] for other in related)
        total += len(related)
    assert same / total > 0.6, same / total
    with pytest.raises(ClientError) as refused:
        runtime.get_recommendations(recommenderArn=arn, userId=user)
    assert error_code(refused.value) == "InvalidInputException"
    assert "itemId is required" in str(refused.value)


def test_frequently_bought_together_finds_the_basket_companion(  # type: ignore[no-untyped-def]
    personalize, runtime, ecommerce, shop
) -> None:
    arn = ecommerce["recommenders"]["aws-ecomm-frequently-bought-together"]
    bought = Counter(item for _, item, _, kind in shop.interactions if kind == "Purchase")
    tried = found = 0
    for item, _ in bought.most_common(40):
        # No userId needed: this use case needs one only for filters that read the user.
        related = items_of(runtime, arn, itemId=item, numResults=3)
        tried += 1
        found += shop.companion[item] in related[:1]
    assert found / tried > 0.8, (found, tried)


def test_popular_use_cases_count_the_right_events(personalize, runtime, ecommerce, shop) -> None:  # type: ignore[no-untyped-def]
    user = next(iter(shop.preferred))
    for use_case, event_type in (
        ("aws-ecomm-popular-items-by-views", "View"),
        ("aws-ecomm-popular-items-by-purchases", "Purchase"),
    ):
        counts = Counter(item for _, item, _, kind in shop.interactions if kind == event_type)
        listed = items_of(runtime, ecommerce["recommenders"][use_case], userId=user, numResults=5)
        assert [counts[item] for item in listed] == sorted(counts.values(), reverse=True)[:5]
        # The guide marks userId required for the popularity use cases too.
        with pytest.raises(ClientError) as refused:
            runtime.get_recommendations(recommenderArn=ecommerce["recommenders"][use_case])
        assert error_code(refused.value) == "InvalidInputException"


def test_filters_metadata_and_promotions_on_a_recommender(  # type: ignore[no-untyped-def]
    personalize, runtime, ecommerce, shop
) -> None:
    arn = ecommerce["recommenders"]["aws-ecomm-recommended-for-you"]
    user = next(iter(shop.preferred))
    preferred = shop.preferred[user]
    not_preferred = personalize.create_filter(
        name=unique("filter"),
        datasetGroupArn=ecommerce["group"],
        filterExpression=f'EXCLUDE ItemID WHERE Items.CATEGORY_L1 IN ("{preferred}")',
    )["filterArn"]
    cheap = personalize.create_filter(
        name=unique("filter"),
        datasetGroupArn=ecommerce["group"],
        filterExpression="INCLUDE ItemID WHERE Items.PRICE < $price",
    )["filterArn"]
    items = items_of(runtime, arn, userId=user, numResults=10, filterArn=not_preferred)
    assert items and all(shop.group_of[item] != preferred for item in items)
    answer = runtime.get_recommendations(
        recommenderArn=arn,
        userId=user,
        numResults=10,
        metadataColumns={"ITEMS": ["PRICE", "CATEGORY_L1"]},
        promotions=[
            {
                "name": "cheap",
                "percentPromotedItems": 20,
                "filterArn": cheap,
                "filterValues": {"price": "10"},
            }
        ],
    )
    listed = answer["itemList"]
    assert all(
        entry["metadata"]["CATEGORY_L1"] == shop.group_of[entry["itemId"]] for entry in listed
    )
    promoted = [entry for entry in listed if entry.get("promotionName") == "cheap"]
    assert len(promoted) == 2 and all(float(entry["metadata"]["PRICE"]) < 10 for entry in promoted)
    # The promotion's filter alone picks promoted items; the request's filter the others.
    in_preferred = personalize.create_filter(
        name=unique("filter"),
        datasetGroupArn=ecommerce["group"],
        filterExpression=f'INCLUDE ItemID WHERE Items.CATEGORY_L1 IN ("{preferred}")',
    )["filterArn"]
    answer = runtime.get_recommendations(
        recommenderArn=arn,
        userId=user,
        numResults=10,
        filterArn=not_preferred,
        promotions=[{"name": "own", "percentPromotedItems": 30, "filterArn": in_preferred}],
    )
    for entry in answer["itemList"]:
        promoted_entry = entry.get("promotionName") == "own"
        assert (shop.group_of[entry["itemId"]] == preferred) == promoted_entry, entry
    assert sum(entry.get("promotionName") == "own" for entry in answer["itemList"]) == 3
    # Metadata only where the recommender enables it.
    with pytest.raises(ClientError) as refused:
        runtime.get_recommendations(
            recommenderArn=ecommerce["recommenders"]["aws-ecomm-popular-items-by-views"],
            userId=user,
            metadataColumns={"ITEMS": ["PRICE"]},
        )
    assert "enableMetadataWithRecommendations" in str(refused.value)


def test_streamed_events_reach_a_recommender_at_once(
    personalize, runtime, events, ecommerce, shop
) -> None:  # type: ignore[no-untyped-def]
    arn = ecommerce["recommenders"]["aws-ecomm-recommended-for-you"]
    tracker = personalize.create_event_tracker(
        name=unique("tracker"), datasetGroupArn=ecommerce["group"]
    )["trackingId"]
    newcomer = unique("newcomer")
    games = [item for item, category in shop.group_of.items() if category == "games"]
    before = items_of(runtime, arn, userId=newcomer, numResults=10)
    sent_at = datetime(2024, 1, 2, 12, 0, tzinfo=UTC)
    events.put_events(
        trackingId=tracker,
        userId=newcomer,
        sessionId="s1",
        eventList=[{"eventType": "View", "itemId": item, "sentAt": sent_at} for item in games[:6]]
        + [{"eventType": "Purchase", "itemId": games[0], "sentAt": sent_at}],
    )
    after = items_of(runtime, arn, userId=newcomer, numResults=10)
    assert after != before
    assert sum(shop.group_of[item] == "games" for item in after) >= 6, after
    assert games[0] not in after  # bought just now: left out at once


def test_tags_and_list_recommenders(personalize, ecommerce) -> None:  # type: ignore[no-untyped-def]
    arn = ecommerce["recommenders"]["aws-ecomm-recommended-for-you"]
    tags = personalize.list_tags_for_resource(resourceArn=arn)["tags"]
    assert tags == [{"tagKey": "team", "tagValue": "shop"}]
    listed = personalize.list_recommenders(datasetGroupArn=ecommerce["group"])["recommenders"]
    assert {entry["recommenderArn"] for entry in listed} == set(ecommerce["recommenders"].values())
    assert all("modelMetrics" not in entry and entry["status"] == "ACTIVE" for entry in listed)
    pages = personalize.get_paginator("list_recommenders").paginate(
        datasetGroupArn=ecommerce["group"], PaginationConfig={"PageSize": 2}
    )
    sizes = [len(page["recommenders"]) for page in pages]
    assert sizes == [2, 2, 1]
    with pytest.raises(ClientError) as refused:
        personalize.list_recommenders(
            datasetGroupArn=ecommerce["group"].replace("dataset-group/", "dataset-group/gone-")
        )
    assert error_code(refused.value) == "ResourceNotFoundException"


def test_quota_and_bad_create_requests(personalize, ecommerce, vod, s3_root) -> None:  # type: ignore[no-untyped-def]
    def refused(**request: Any) -> str:
        with pytest.raises(ClientError) as error:
            personalize.create_recommender(name=unique("rec"), **request)
        return error_code(error.value)

    shop_group = ecommerce["group"]
    # Five per dataset group.
    assert (
        refused(datasetGroupArn=shop_group, recipeArn=RECIPE + "aws-ecomm-recommended-for-you")
        == "LimitExceededException"
    )
    video_group = vod["group"]
    assert refused(
        datasetGroupArn=video_group, recipeArn=RECIPE + "aws-ecomm-recommended-for-you"
    ) in (
        "InvalidInputException",
        "LimitExceededException",
    )
    custom = personalize.create_dataset_group(name=unique("custom"))["datasetGroupArn"]
    assert refused(datasetGroupArn=custom, recipeArn=RECIPE + "aws-vod-top-picks") == (
        "InvalidInputException"
    )
    empty_vod = personalize.create_dataset_group(name=unique("vod"), domain="VIDEO_ON_DEMAND")[
        "datasetGroupArn"
    ]
    # (use case, recommenderConfig, the service's exception) in an empty VOD group.
    cases: list[tuple[str, dict[str, Any], str]] = [
        ("aws-ecomm-recommended-for-you", {}, "InvalidInputException"),  # the other domain's
        ("aws-user-personalization", {}, "InvalidInputException"),  # a custom recipe
        ("aws-vod-nothing", {}, "ResourceNotFoundException"),
        (
            "aws-vod-most-popular",  # popular use cases do not explore
            {"itemExplorationConfig": {"explorationWeight": "0.5"}},
            "InvalidInputException",
        ),
        (
            "aws-vod-top-picks",
            {"itemExplorationConfig": {"explorationWeight": "2"}},
            "InvalidInputException",
        ),
        (
            "aws-vod-top-picks",
            {"trainingDataConfig": {"excludedDatasetColumns": {"INTERACTIONS": ["EVENT_TYPE"]}}},
            "InvalidInputException",
        ),
    ]
    for use_case, config, code in cases:
        extra = {"recommenderConfig": config} if config else {}
        assert refused(datasetGroupArn=empty_vod, recipeArn=RECIPE + use_case, **extra) == code, (
            use_case,
            config,
        )
    name = unique("twice")
    personalize.create_recommender(
        name=name, datasetGroupArn=empty_vod, recipeArn=RECIPE + "aws-vod-most-popular"
    )
    with pytest.raises(ClientError) as duplicate:
        personalize.create_recommender(
            name=name, datasetGroupArn=empty_vod, recipeArn=RECIPE + "aws-vod-top-picks"
        )
    assert error_code(duplicate.value) == "ResourceAlreadyExistsException"


def test_missing_data_fails_with_a_reason(personalize, s3_root) -> None:  # type: ignore[no-untyped-def]
    views_only = domain.ecommerce(seed=5)
    views_only.interactions = [row for row in views_only.interactions if row[3] == "View"]
    group_arn = domain_group(personalize, s3_root, views_only, items=False)
    created = {
        use_case: personalize.create_recommender(
            name=unique("rec"), datasetGroupArn=group_arn, recipeArn=RECIPE + use_case
        )["recommenderArn"]
        for use_case in ("aws-ecomm-popular-items-by-purchases", "aws-ecomm-popular-items-by-views")
    }
    failed = wait_recommender(personalize, created["aws-ecomm-popular-items-by-purchases"])
    assert failed["status"] == "CREATE FAILED"
    assert "Purchase" in failed["failureReason"], failed["failureReason"]
    assert "modelMetrics" not in failed or not failed["modelMetrics"]
    assert wait_recommender(personalize, created["aws-ecomm-popular-items-by-views"])["status"] == (
        "ACTIVE"
    )
    # More like X trains on item metadata: without Items data it says so.
    video_group = domain_group(personalize, s3_root, domain.video_on_demand(seed=3), items=False)
    more_like = personalize.create_recommender(
        name=unique("rec"), datasetGroupArn=video_group, recipeArn=RECIPE + "aws-vod-more-like-x"
    )["recommenderArn"]
    failed = wait_recommender(personalize, more_like)
    assert failed["status"] == "CREATE FAILED" and "Items" in failed["failureReason"]


# -- VIDEO_ON_DEMAND ----------------------------------------------------------------------------


def test_vod_use_cases(personalize, runtime, vod, videos) -> None:  # type: ignore[no-untyped-def]
    recommenders = vod["recommenders"]
    user = next(iter(videos.preferred))
    watched = of_user(videos, user, "Watch")
    picks = items_of(runtime, recommenders["aws-vod-top-picks"], userId=user, numResults=10)
    assert len(picks) == 10 and not set(picks) & watched
    genre = videos.preferred[user]
    assert sum(videos.group_of[video] == genre for video in picks) >= 5, picks
    for use_case in ("aws-vod-because-you-watched-x", "aws-vod-more-like-x"):
        same = total = 0
        for viewer in list(videos.preferred)[:5]:
            seen = of_user(videos, viewer, "Watch")
            for video in sorted(seen)[:3]:
                related = items_of(
                    runtime, recommenders[use_case], itemId=video, userId=viewer, numResults=10
                )
                assert related and not set(related) & seen and video not in related
                same += sum(videos.group_of[other] == videos.group_of[video] for other in related)
                total += len(related)
        # A sixth of the catalog shares a video's genre.
        assert same / total > 0.4, (use_case, same / total)
        with pytest.raises(ClientError) as refused:
            runtime.get_recommendations(recommenderArn=recommenders[use_case], itemId=video)
        assert "userId is required" in str(refused.value)
    watches = Counter(item for _, item, _, kind in videos.interactions if kind == "Watch")
    popular = items_of(runtime, recommenders["aws-vod-most-popular"], userId=user, numResults=3)
    assert [watches[v] for v in popular] == sorted(watches.values(), reverse=True)[:3]
    trending = items_of(runtime, recommenders["aws-vod-trending-now"], numResults=5)
    assert len(trending) == 5  # no userId needed for Trending now


def test_update_stop_start_and_delete(personalize, runtime, vod, videos) -> None:  # type: ignore[no-untyped-def]
    arn = vod["recommenders"]["aws-vod-top-picks"]
    user = next(iter(videos.preferred))

    def described() -> dict[str, Any]:
        return personalize.describe_recommender(recommenderArn=arn)["recommender"]

    # A new RPS floor applies at once: nothing to train.
    personalize.update_recommender(
        recommenderArn=arn, recommenderConfig={"minRecommendationRequestsPerSecond": 3}
    )
    now = described()
    assert now["latestRecommenderUpdate"]["status"] == "ACTIVE"
    assert now["recommenderConfig"]["minRecommendationRequestsPerSecond"] == 3
    assert now["recommenderConfig"]["itemExplorationConfig"] == {"explorationWeight": "0"}
    # New training columns retrain; the old model serves meanwhile.
    personalize.update_recommender(
        recommenderArn=arn,
        recommenderConfig={
            "trainingDataConfig": {"excludedDatasetColumns": {"ITEMS": ["CREATION_TIMESTAMP"]}}
        },
    )
    assert described()["latestRecommenderUpdate"]["status"] in (
        "CREATE PENDING",
        "CREATE IN_PROGRESS",
    )
    assert items_of(runtime, arn, userId=user)
    with pytest.raises(ClientError) as busy:
        personalize.update_recommender(
            recommenderArn=arn, recommenderConfig={"minRecommendationRequestsPerSecond": 2}
        )
    assert error_code(busy.value) == "ResourceInUseException"
    deadline = time.monotonic() + 300
    while described()["latestRecommenderUpdate"]["status"] not in ("ACTIVE", "CREATE FAILED"):
        assert time.monotonic() < deadline
        time.sleep(0.2)
    updated = described()
    assert updated["latestRecommenderUpdate"]["status"] == "ACTIVE", updated
    assert updated["recommenderConfig"]["trainingDataConfig"] == {
        "excludedDatasetColumns": {"ITEMS": ["CREATION_TIMESTAMP"]}
    }
    assert items_of(runtime, arn, userId=user)

    # Stop: STOP PENDING > STOP IN_PROGRESS > INACTIVE, and an INACTIVE one serves nothing.
    with pytest.raises(ClientError) as not_stopped:
        personalize.start_recommender(recommenderArn=arn)
    assert error_code(not_stopped.value) == "ResourceInUseException"
    personalize.stop_recommender(recommenderArn=arn)
    assert described()["status"] in ("STOP PENDING", "STOP IN_PROGRESS", "INACTIVE")
    assert wait_recommender(personalize, arn, "INACTIVE")["status"] == "INACTIVE"
    inactive = refusal(lambda: runtime.get_recommendations(recommenderArn=arn, userId=user))
    assert error_code(inactive) == "InvalidInputException"
    assert "INACTIVE" in str(inactive)
    with pytest.raises(ClientError) as already:
        personalize.stop_recommender(recommenderArn=arn)
    assert error_code(already.value) == "ResourceInUseException"
    with pytest.raises(ClientError) as no_update:
        personalize.update_recommender(
            recommenderArn=arn, recommenderConfig={"minRecommendationRequestsPerSecond": 2}
        )
    assert error_code(no_update.value) == "ResourceInUseException"
    personalize.start_recommender(recommenderArn=arn)
    assert described()["status"] in ("START PENDING", "START IN_PROGRESS", "ACTIVE")
    assert wait_recommender(personalize, arn, "ACTIVE")["status"] == "ACTIVE"
    deadline = time.monotonic() + 10
    while True:  # the hot path caches a recommender's record for a second
        try:
            assert items_of(runtime, arn, userId=user)
            break
        except ClientError:
            assert time.monotonic() < deadline
            time.sleep(0.2)

    # The dataset group cannot go while it holds recommenders.
    with pytest.raises(ClientError) as in_use:
        personalize.delete_dataset_group(datasetGroupArn=vod["group"])
    assert error_code(in_use.value) == "ResourceInUseException"
    personalize.delete_recommender(recommenderArn=arn)
    deadline = time.monotonic() + 60
    while True:
        try:
            state = described()["status"]
        except ClientError as gone:
            assert error_code(gone) == "ResourceNotFoundException"
            break
        assert state in ("DELETE PENDING", "DELETE IN_PROGRESS") and time.monotonic() < deadline
        time.sleep(0.1)
    deleted = refusal(lambda: runtime.get_recommendations(recommenderArn=arn, userId=user))
    assert error_code(deleted) == "ResourceNotFoundException"


# -- retraining on the service's schedule -------------------------------------------------------


def test_recommenders_retrain_on_schedule(tmp_path: Path, videos) -> None:  # type: ignore[no-untyped-def]
    """Most popular is retrained weekly and Top picks every 2 hours when new data arrived; the
    clock is moved across restarts (the schedule is in the database)."""
    from openpersonalize.testing.server import ServerProcess

    s3_root = tmp_path / "s3"
    server = ServerProcess(tmp_path / "server", settings={"s3_local_root": str(s3_root)})
    server.start()
    try:
        personalize = server.client("personalize")
        group_arn = domain_group(personalize, s3_root, videos)
        recommenders = create_recommenders(
            personalize, group_arn, ("aws-vod-most-popular", "aws-vod-top-picks")
        )
        # A new hit: a video nobody had, watched by every viewer again and again (an import
        # holds at least 1000 records).
        newest = videos.last_timestamp()
        hit = [
            (user, "brand-new", newest + 60 * n, "Watch")
            for user in videos.preferred
            for n in range(1, 8)
        ]
        bucket = unique("more")
        (s3_root / bucket).mkdir()
        with (s3_root / bucket / "more.csv").open("w") as out:
            out.write("USER_ID,ITEM_ID,TIMESTAMP,EVENT_TYPE\n")
            out.writelines(f"{u},{i},{t},{e}\n" for u, i, t, e in hit)
        interactions = next(
            d["datasetArn"]
            for d in personalize.list_datasets(datasetGroupArn=group_arn)["datasets"]
            if d["datasetType"].lower() == "interactions"
        )
        done = run_import(personalize, interactions, f"s3://{bucket}/more.csv", "INCREMENTAL")
        assert done["status"] == "ACTIVE", done.get("failureReason")
        user = next(iter(videos.preferred))

        def top(use_case: str) -> list[str]:
            return items_of(
                server.client("personalize-runtime"),
                recommenders[use_case],
                userId=user,
                numResults=5,
            )

        def eventually(condition: Any, seconds: float = 120.0) -> bool:
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                if condition():
                    return True
                time.sleep(0.5)
            return False

        assert "brand-new" not in top("aws-vod-most-popular")  # imported, not yet trained on
        # Two hours and a bit later: Top picks learns the new video, Most popular waits.
        server.stop()
        server.settings["clock_offset_seconds"] = str(2 * 3600 + 120)
        server.start()
        personalize = server.client("personalize")

        def top_picks_was_retrained() -> bool:
            described = personalize.describe_recommender(
                recommenderArn=recommenders["aws-vod-top-picks"]
            )["recommender"]
            return described["lastUpdatedDateTime"].timestamp() > time.time() + 3600

        assert eventually(top_picks_was_retrained)
        assert "brand-new" not in top("aws-vod-most-popular")
        # A week on: Most popular is retrained with the new hit at the top.
        server.stop()
        server.settings["clock_offset_seconds"] = str(7 * 86400 + 3 * 3600)
        server.start()
        assert eventually(lambda: top("aws-vod-most-popular")[:1] == ["brand-new"])
    finally:
        server.stop()


def test_domain_schemas_are_checked_at_create_dataset(personalize) -> None:  # type: ignore[no-untyped-def]
    import json

    group = personalize.create_dataset_group(name=unique("shop"), domain="ECOMMERCE")
    assert (
        personalize.describe_dataset_group(datasetGroupArn=group["datasetGroupArn"])[
            "datasetGroup"
        ]["domain"]
        == "ECOMMERCE"
    )

    def dataset(fields: list[dict[str, Any]], schema_domain: str | None = "ECOMMERCE") -> str:
        text = json.dumps(
            {
                "type": "record",
                "name": "Items",
                "namespace": "com.amazonaws.personalize.schema",
                "fields": fields,
                "version": "1.0",
            }
        )
        extra = {"domain": schema_domain} if schema_domain else {}
        schema_arn = personalize.create_schema(name=unique("schema"), schema=text, **extra)[
            "schemaArn"
        ]
        assert personalize.describe_schema(schemaArn=schema_arn)["schema"].get("domain") == (
            schema_domain
        )
        with pytest.raises(ClientError) as refused:
            personalize.create_dataset(
                name=unique("items"),
                datasetGroupArn=group["datasetGroupArn"],
                schemaArn=schema_arn,
                datasetType="Items",
            )
        assert error_code(refused.value) == "InvalidInputException"
        return str(refused.value)

    item_id = {"name": "ITEM_ID", "type": "string"}
    price = {"name": "PRICE", "type": "float"}
    category = {"name": "CATEGORY_L1", "type": "string", "categorical": True}
    assert "CATEGORY_L1" in dataset([item_id, price])  # a required field is missing
    assert "categorical" in dataset([item_id, price, {**category, "categorical": False}])
    assert "domain" in dataset([item_id, price, category], schema_domain=None)
    # Nothing half-made: the group still has no dataset.
    assert personalize.list_datasets(datasetGroupArn=group["datasetGroupArn"])["datasets"] == []
