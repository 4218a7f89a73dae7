"""`openpersonalize quickstart --domain ECOMMERCE | VIDEO_ON_DEMAND`: the domain workflow.

No solution to manage: a Domain dataset group, the domain's schemas, one recommender per
use case (each trains itself), their modelMetrics, then GetRecommendations with a
recommenderArn for a user, for an item, and after a few streamed events. The data is the
seeded synthetic shop or streaming service of `openpersonalize.testing.domain`, or for
VIDEO_ON_DEMAND a local MovieLens copy (``--movielens DIR``, every rating read as a Watch).
"""

from __future__ import annotations

import sys
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from openpersonalize.quickstart import (
    BUCKET,
    Console,
    QuickstartError,
    check_data_dir,
    guarded,
    load_movielens,
    run_embedded,
    wait,
    wait_imports,
)
from openpersonalize.testing import domain

RECIPE = "arn:aws:personalize:::recipe/"
USE_CASES = {
    domain.ECOMMERCE: (
        "aws-ecomm-recommended-for-you",
        "aws-ecomm-customers-who-viewed-x-also-viewed",
        "aws-ecomm-frequently-bought-together",
        "aws-ecomm-popular-items-by-views",
        "aws-ecomm-popular-items-by-purchases",
    ),
    domain.VIDEO_ON_DEMAND: (
        "aws-vod-top-picks",
        "aws-vod-because-you-watched-x",
        "aws-vod-more-like-x",
        "aws-vod-most-popular",
        "aws-vod-trending-now",
    ),
}
# What each domain's demo streams and what its personalized use case leaves out.
VERBS = {domain.ECOMMERCE: ("View", "Purchase"), domain.VIDEO_ON_DEMAND: ("Click", "Watch")}
STEPS = 9
NUM_RESULTS = 10


def movielens_videos(directory: Path) -> domain.DomainData:
    """A MovieLens copy as VIDEO_ON_DEMAND data: each rating a Watch, an item's first rating
    its CREATION_TIMESTAMP (MovieLens has no release dates to the second)."""
    ratings = load_movielens(directory)
    data = domain.DomainData(domain.VIDEO_ON_DEMAND, [], [])
    first_seen: dict[str, int] = {}
    for user, item, timestamp, _, _ in ratings.interactions:
        data.interactions.append((user, item, timestamp, "Watch"))
        first_seen[item] = min(timestamp, first_seen.get(item, timestamp))
    for item, created in first_seen.items():
        genres = ratings.items.get(item)
        names = genres.categories if genres and genres.categories else ("(no genres listed)",)
        data.group_of[item] = names[0]
        data.items.append(
            {"ITEM_ID": item, "GENRES": "|".join(names), "CREATION_TIMESTAMP": created}
        )
    return data


def _favourites(data: domain.DomainData) -> dict[str, Counter[str]]:
    per_user: dict[str, Counter[str]] = {}
    for user, item, _, _ in data.interactions:
        per_user.setdefault(user, Counter())[data.group_of.get(item, "?")] += 1
    return per_user


def _demo_user(data: domain.DomainData) -> tuple[str, str, str]:
    """A user with a short, focused history; their favourite group and one they ignore."""
    per_user = _favourites(data)
    lengths = sorted(sum(c.values()) for c in per_user.values())
    cutoff = max(lengths[len(lengths) // 3], 8)
    candidates = sorted(u for u, c in per_user.items() if 8 <= sum(c.values()) <= cutoff)
    user = max(
        candidates or sorted(per_user),
        key=lambda u: per_user[u].most_common(1)[0][1] / sum(per_user[u].values()),
    )
    favourite = per_user[user].most_common(1)[0][0]
    everywhere = Counter(data.group_of.get(item, "?") for _, item, _, _ in data.interactions)
    other = next(g for g, _ in everywhere.most_common() if g not in per_user[user])
    return user, favourite, other


def run(data: domain.DomainData, *, data_dir: Path | None = None, out: TextIO | None = None) -> int:
    console = Console(out or sys.stdout, STEPS)
    began = time.monotonic()
    users = len({row[0] for row in data.interactions})
    console.say(
        f"openpersonalize quickstart --domain {data.domain}: {len(data.interactions):,} "
        f"interactions, {users:,} users, {len(data.items):,} items"
    )
    run_embedded(
        console, data_dir, lambda server, s3_root: _workflow(console, server, data, s3_root), began
    )
    return 0


def _workflow(console: Console, server: Any, data: domain.DomainData, s3_root: Path) -> None:
    personalize = server.client("personalize")
    runtime = server.client("personalize-runtime")
    events = server.client("personalize-events")
    suffix = uuid.uuid4().hex[:6]
    name = f"quickstart-{suffix}"

    console.heading(f"Domain dataset group ({data.domain})")
    group = personalize.create_dataset_group(name=name, domain=data.domain)["datasetGroupArn"]
    console.say(f"  CreateDatasetGroup(domain={data.domain}) -> {group}")

    console.heading("Domain schemas, datasets and import jobs")
    data.write(s3_root / BUCKET / suffix)
    jobs = []
    for kind in ("Interactions", "Items"):
        schema = personalize.create_schema(
            name=f"{name}-{kind.lower()}", schema=domain.schema_json(kind, data), domain=data.domain
        )["schemaArn"]
        dataset = personalize.create_dataset(
            name=f"{name}-{kind.lower()}", datasetGroupArn=group, schemaArn=schema, datasetType=kind
        )["datasetArn"]
        jobs.append(
            (
                kind,
                personalize.create_dataset_import_job(
                    jobName=f"{name}-{kind.lower()}",
                    datasetArn=dataset,
                    dataSource={"dataLocation": f"s3://{BUCKET}/{suffix}/{kind.lower()}.csv"},
                )["datasetImportJobArn"],
            )
        )
    wait_imports(console, personalize, jobs)

    console.heading("One recommender per use case (each trains itself)")
    recommenders = {}
    for use_case in USE_CASES[data.domain]:
        config: dict[str, Any] = {}
        if use_case in ("aws-vod-top-picks", "aws-ecomm-recommended-for-you"):
            # No exploration, so the lists below change only through the events.
            config = {"itemExplorationConfig": {"explorationWeight": "0"}}
        recommenders[use_case] = personalize.create_recommender(
            name=f"{use_case.removeprefix('aws-')[:40]}-{suffix}",
            datasetGroupArn=group,
            recipeArn=RECIPE + use_case,
            recommenderConfig=config,
        )["recommenderArn"]
    described = {
        use_case: wait(
            console,
            use_case.removeprefix("aws-")[:24],
            lambda arn=arn: personalize.describe_recommender(recommenderArn=arn)["recommender"],
            expected=10.0,
        )
        for use_case, arn in recommenders.items()
    }

    console.heading("modelMetrics (newest events of held-out users)")
    console.say(f"  {'use case':<46} {'NDCG@10':>8} {'P@10':>8} {'coverage':>9}")
    for use_case, description in described.items():
        metrics = description.get("modelMetrics") or {}
        console.say(
            f"  {use_case:<46} {metrics.get('normalized_discounted_cumulative_gain_at_10', 0):8.4f}"
            f" {metrics.get('precision_at_10', 0):8.4f} {metrics.get('coverage', 0):9.4f}"
        )

    user, favourite, other = _demo_user(data)
    personalized, related, *_ = USE_CASES[data.domain]
    stream_type, excluded_type = VERBS[data.domain]

    def show(use_case: str, **request: Any) -> list[str]:
        items = [
            entry["itemId"]
            for entry in runtime.get_recommendations(
                recommenderArn=recommenders[use_case], numResults=NUM_RESULTS, **request
            )["itemList"]
        ]
        for rank, item in enumerate(items, start=1):
            console.say(f"  {rank:>3}. {item:<24} [{data.group_of.get(item, '?')}]")
        return items

    console.heading(f"{personalized} for {user} (leans to {favourite!r})")
    before = show(personalized, userId=user)
    console.say(
        f"  {sum(data.group_of.get(i) == favourite for i in before)}/{len(before)} "
        f"are {favourite!r}"
    )

    seed_item = next(item for u, item, _, _ in data.interactions if u == user)
    console.heading(f"{related} for {seed_item} [{data.group_of.get(seed_item, '?')}]")
    show(related, itemId=seed_item, userId=user)
    if data.domain == domain.ECOMMERCE:
        console.say(f"  aws-ecomm-frequently-bought-together for {seed_item}:")
        show("aws-ecomm-frequently-bought-together", itemId=seed_item)

    popular = USE_CASES[data.domain][3]
    console.heading(f"{popular}")
    show(popular, userId=user)

    console.heading(f"PutEvents: {user} streams {stream_type} events on {other!r} items")
    tracker = personalize.create_event_tracker(name=name, datasetGroupArn=group)["trackingId"]
    others = [item for item, g in data.group_of.items() if g == other][:6]
    now = datetime.now(UTC)
    events.put_events(
        trackingId=tracker,
        userId=user,
        sessionId=name,
        eventList=[{"eventType": stream_type, "itemId": i, "sentAt": now} for i in others]
        + [{"eventType": excluded_type, "itemId": others[0], "sentAt": now}],
    )
    after = show(personalized, userId=user)
    console.say(
        f"  {other!r}: {sum(data.group_of.get(i) == other for i in before)} -> "
        f"{sum(data.group_of.get(i) == other for i in after)} of {len(after)}; "
        f"{others[0]} ({excluded_type} just now) is "
        + ("left out" if others[0] not in after else "still listed")
    )


def main(domain_name: str, movielens: Path | None = None, data_dir: Path | None = None) -> int:
    """`openpersonalize quickstart --domain D`: exit 0 on success, 1 on a failed step, 2 on
    bad input."""

    def steps() -> int:
        if domain_name not in USE_CASES:
            raise QuickstartError(
                f"--domain must be ECOMMERCE or VIDEO_ON_DEMAND, not {domain_name!r}", status=2
            )
        if movielens is not None and domain_name != domain.VIDEO_ON_DEMAND:
            raise QuickstartError("--movielens goes with --domain VIDEO_ON_DEMAND", status=2)
        check_data_dir(data_dir)
        if movielens is not None:
            data = movielens_videos(movielens)
        elif domain_name == domain.ECOMMERCE:
            data = domain.ecommerce()
        else:
            data = domain.video_on_demand()
        return run(data, data_dir=data_dir)

    return guarded(steps)
