"""Next best action end to end: Actions and Action_Interactions datasets, PutActions and
PutActionInteractions, aws-next-best-action trained through boto3, GetActionRecommendations.

Seeded data with a planted answer (openpersonalize.testing.actions): users of two taste
groups, each with a best action; the "newsletter" is the most taken action overall but
nobody's best. The server's clock starts one day after the newest interaction, so
expiration and repeat-frequency windows do not depend on the date.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from helpers import avro_schema, error_code, run_import, unique

from openpersonalize.testing.actions import (
    ACTION_INTERACTIONS_SCHEMA_JSON,
    ACTIONS,
    ACTIONS_SCHEMA_JSON,
    DAY,
    ITEM_INTERACTIONS_SCHEMA_JSON,
    ActionScenario,
    generate,
)
from openpersonalize.testing.server import ServerProcess, wait_for_status

RECIPE = "arn:aws:personalize:::recipe/aws-next-best-action"
POPULARITY = "arn:aws:personalize:::recipe/aws-popularity-count"
ROLE = "arn:aws:iam::000000000000:role/PersonalizeRole"
REPEAT_DAYS = 7  # app-install's REPEAT_FREQUENCY

SCENARIO = generate(seed=3, n_users=300, held_out_share=0.2)
NOW = SCENARIO.newest + DAY  # the server's clock at start
# survey expired an hour before "now"; gift-card expires in a month.
SCENARIO.expiration = {"survey": NOW - 3600, "gift-card": NOW + 30 * DAY}
SCENARIO.actions = tuple(
    (a, c, v, REPEAT_DAYS if a == "app-install" else r) for a, c, v, r in ACTIONS
)
VALUE = {action: value for action, _, value, _ in ACTIONS}
LAST_APP_INSTALL: dict[str, int] = {}
for _user, _action, _stamp, _ in SCENARIO.action_interactions:
    if _action == "app-install":
        LAST_APP_INSTALL[_user] = max(LAST_APP_INSTALL.get(_user, 0), _stamp)
RECENT_APP_INSTALLS = {u for u, t in LAST_APP_INSTALL.items() if t > NOW - REPEAT_DAYS * DAY}
CATEGORY = {action: category for action, category, _, _ in ACTIONS}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, s3_root: Path) -> Iterator[ServerProcess]:
    settings = {"s3_local_root": str(s3_root), "clock_start": str(NOW)}
    with ServerProcess(tmp_path_factory.mktemp("actions"), settings=settings) as running:
        yield running


@pytest.fixture(scope="module")
def personalize(server: ServerProcess) -> Any:
    return server.client("personalize")


@pytest.fixture(scope="module")
def events(server: ServerProcess) -> Any:
    return server.client("personalize-events")


@pytest.fixture(scope="module")
def runtime(server: ServerProcess) -> Any:
    return server.client("personalize-runtime")


def build_group(personalize: Any, s3_root: Path, scenario: ActionScenario, **parts: bool) -> dict:
    """A dataset group with the scenario's data imported (parts: actions / interactions=False
    leaves that dataset without data)."""
    bucket = unique("nba")
    folder = s3_root / bucket
    folder.mkdir(parents=True)
    (folder / "interactions.csv").write_text(scenario.interactions_csv())
    (folder / "actions.csv").write_text(scenario.actions_csv())
    (folder / "action_interactions.csv").write_text(scenario.action_interactions_csv())
    group = personalize.create_dataset_group(name=unique("dg"))["datasetGroupArn"]
    out: dict[str, Any] = {"group": group}
    for kind, text, file, wanted in (
        ("Interactions", ITEM_INTERACTIONS_SCHEMA_JSON, "interactions.csv", True),
        ("Actions", ACTIONS_SCHEMA_JSON, "actions.csv", parts.get("actions", True)),
        (
            "Action_Interactions",
            ACTION_INTERACTIONS_SCHEMA_JSON,
            "action_interactions.csv",
            parts.get("interactions", True),
        ),
    ):
        schema = personalize.create_schema(name=unique("schema"), schema=text)["schemaArn"]
        dataset = personalize.create_dataset(
            name=unique("ds"), datasetGroupArn=group, schemaArn=schema, datasetType=kind
        )["datasetArn"]
        out[kind] = dataset
        if wanted:
            done = run_import(personalize, dataset, f"s3://{bucket}/{file}")
            assert done["status"] == "ACTIVE", (kind, done.get("failureReason"))
    return out


def train(personalize: Any, group: str, recipe: str = RECIPE, **extra: Any) -> dict[str, Any]:
    solution = personalize.create_solution(
        name=unique("sol"), datasetGroupArn=group, recipeArn=recipe, **extra
    )["solutionArn"]
    version = personalize.create_solution_version(solutionArn=solution)["solutionVersionArn"]
    return wait_for_status(
        personalize.describe_solution_version,
        "solutionVersion",
        "solutionVersionArn",
        version,
        timeout=300,
    )


def deploy(personalize: Any, version_arn: str) -> str:
    campaign = personalize.create_campaign(name=unique("camp"), solutionVersionArn=version_arn)
    final = wait_for_status(
        personalize.describe_campaign, "campaign", "campaignArn", campaign["campaignArn"]
    )
    assert final["status"] == "ACTIVE", final
    return campaign["campaignArn"]


@pytest.fixture(scope="module")
def nba(personalize: Any, s3_root: Path) -> dict[str, Any]:
    built = build_group(personalize, s3_root, SCENARIO)
    version = train(personalize, built["group"])
    assert version["status"] == "ACTIVE", version.get("failureReason")
    built["version"] = version
    built["campaign"] = deploy(personalize, version["solutionVersionArn"])
    return built


def actions_for(runtime: Any, campaign: str, user: str, **extra: Any) -> list[dict[str, Any]]:
    answer = runtime.get_action_recommendations(campaignArn=campaign, userId=user, **extra)
    assert answer["recommendationId"]
    return answer["actionList"]


# ---- datasets ---------------------------------------------------------------------------------


def test_action_datasets_and_their_tracker(personalize: Any, nba: dict[str, Any]) -> None:
    group = nba["group"]
    actions = personalize.describe_dataset(datasetArn=nba["Actions"])["dataset"]
    assert actions["datasetType"] == "Actions" and nba["Actions"].endswith("/ACTIONS")
    assert "trackingId" not in actions
    interactions = personalize.describe_dataset(datasetArn=nba["Action_Interactions"])["dataset"]
    assert nba["Action_Interactions"].endswith("/ACTION_INTERACTIONS")
    assert interactions["datasetType"] == "Action_Interactions"
    assert interactions["trackingId"]
    # The action-interaction tracker is no event tracker: not listed, and the group may still
    # get its one event tracker.
    assert personalize.list_event_trackers(datasetGroupArn=group)["eventTrackers"] == []
    tracker = personalize.create_event_tracker(name=unique("tracker"), datasetGroupArn=group)
    assert tracker["trackingId"] != interactions["trackingId"]
    listed = personalize.list_datasets(datasetGroupArn=group)["datasets"]
    assert {d["datasetType"] for d in listed} == {"Interactions", "Actions", "Action_Interactions"}


def test_dataset_types_are_case_insensitive_and_refused_in_a_domain_group(
    personalize: Any,
) -> None:
    group = personalize.create_dataset_group(name=unique("dg"))["datasetGroupArn"]
    schema = personalize.create_schema(name=unique("schema"), schema=ACTIONS_SCHEMA_JSON)
    arn = personalize.create_dataset(
        name=unique("ds"),
        datasetGroupArn=group,
        schemaArn=schema["schemaArn"],
        datasetType="actions",
    )["datasetArn"]
    assert personalize.describe_dataset(datasetArn=arn)["dataset"]["datasetType"] == "Actions"
    domain = personalize.create_dataset_group(name=unique("dg"), domain="ECOMMERCE")
    domain_schema = personalize.create_schema(
        name=unique("schema"), schema=ACTIONS_SCHEMA_JSON, domain="ECOMMERCE"
    )
    with pytest.raises(ClientError) as caught:
        personalize.create_dataset(
            name=unique("ds"),
            datasetGroupArn=domain["datasetGroupArn"],
            schemaArn=domain_schema["schemaArn"],
            datasetType="ACTION_INTERACTIONS".title(),
        )
    assert error_code(caught.value) == "InvalidInputException"
    assert "domain" in caught.value.response["Error"]["Message"]
    listed = personalize.list_datasets(datasetGroupArn=domain["datasetGroupArn"])["datasets"]
    assert listed == []


def test_a_failed_actions_import_names_the_row(personalize: Any, s3_root: Path) -> None:
    bucket = unique("bad-actions")
    (s3_root / bucket).mkdir()
    rows = "ACTION_ID,CATEGORY,VALUE,REPEAT_FREQUENCY,ACTION_EXPIRATION_TIMESTAMP\n"
    (s3_root / bucket / "actions.csv").write_text(rows + "a1,x,3,,\na2,y,lots,,\n")
    group = personalize.create_dataset_group(name=unique("dg"))["datasetGroupArn"]
    text = avro_schema(
        "Actions",
        ("ACTION_ID", "string"),
        {"name": "CATEGORY", "type": "string", "categorical": True},
        ("VALUE", ["null", "long"]),
        ("REPEAT_FREQUENCY", ["null", "long"]),
        ("ACTION_EXPIRATION_TIMESTAMP", ["null", "long"]),
    )
    schema = personalize.create_schema(name=unique("schema"), schema=text)["schemaArn"]
    dataset = personalize.create_dataset(
        name=unique("ds"), datasetGroupArn=group, schemaArn=schema, datasetType="Actions"
    )["datasetArn"]
    done = run_import(personalize, dataset, f"s3://{bucket}/actions.csv")
    assert done["status"] == "CREATE FAILED"
    assert "line 3" in done["failureReason"] and "VALUE" in done["failureReason"]
    (s3_root / bucket / "actions.csv").write_text(rows + "a1,x,3,,\na2,y,8,7,1700000000\n")
    done = run_import(personalize, dataset, f"s3://{bucket}/actions.csv")
    assert done["status"] == "ACTIVE", done.get("failureReason")


# ---- personalize-events ------------------------------------------------------------------------


def test_put_actions(events: Any, personalize: Any, nba: dict[str, Any]) -> None:
    dataset = nba["Actions"]
    events.put_actions(
        datasetArn=dataset,
        actions=[
            {"actionId": "referral", "properties": '{"category": "engagement", "value": "3"}'},
            {"actionId": "referral", "properties": json.dumps({"value": 7, "repeatFrequency": 2})},
        ],
    )
    bad = [
        ('{"colour": "red"}', "colour"),
        ('{"value": "lots"}', "value"),
        ("[1, 2]", "JSON object"),
        ("{not json", "not valid JSON"),
    ]
    for properties, fragment in bad:
        with pytest.raises(ClientError) as caught:
            events.put_actions(
                datasetArn=dataset, actions=[{"actionId": "x", "properties": properties}]
            )
        assert error_code(caught.value) == "InvalidInputException", properties
        assert fragment in caught.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as caught:
        events.put_actions(datasetArn=dataset, actions=[{"actionId": f"a{n}"} for n in range(11)])
    assert error_code(caught.value) == "InvalidInputException"
    with pytest.raises(ClientError) as caught:
        events.put_actions(datasetArn=nba["Interactions"], actions=[{"actionId": "x"}])
    assert error_code(caught.value) == "InvalidInputException"
    assert "Interactions dataset" in caught.value.response["Error"]["Message"]
    missing = dataset.replace(nba["group"].rsplit("/", 1)[1], "no-such-group")
    with pytest.raises(ClientError) as caught:
        events.put_actions(datasetArn=missing, actions=[{"actionId": "x"}])
    assert error_code(caught.value) == "ResourceNotFoundException"
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def test_put_action_interactions_input(events: Any, personalize: Any, nba: dict[str, Any]) -> None:
    tracking = personalize.describe_dataset(datasetArn=nba["Action_Interactions"])["dataset"][
        "trackingId"
    ]

    def interaction(event_type: str, **extra: Any) -> dict[str, Any]:
        return {
            "actionId": "newsletter",
            "userId": "visitor-1",  # a user the other tests do not look at
            "sessionId": "s1",
            "timestamp": NOW - 30 * DAY,
            "eventType": event_type,
            **extra,
        }

    spellings = ["Taken", "Not Taken", "Not taken", "Viewed", "TAKEN", "NOT_TAKEN", "VIEWED"]
    spellings += ["not_taken", " viewed "]
    events.put_action_interactions(
        trackingId=tracking,
        actionInteractions=[
            interaction(kind, eventId=f"e-{n}") for n, kind in enumerate(spellings)
        ][:10],
    )
    for bad, fragment in (
        ([interaction("Clicked")], "Clicked"),
        ([interaction("Taken", properties='{"eventType": "x"}')], "eventType"),
        ([interaction("Taken", properties='{"userId": "u"}')], "userId"),
        ([interaction("Taken")] * 11, "actionInteractions"),
    ):
        with pytest.raises(ClientError) as caught:
            events.put_action_interactions(trackingId=tracking, actionInteractions=bad)
        assert error_code(caught.value) == "InvalidInputException", bad
        assert fragment in caught.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as caught:
        events.put_action_interactions(
            trackingId="no-such-tracker", actionInteractions=[interaction("Taken")]
        )
    assert error_code(caught.value) == "ResourceNotFoundException"
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


# ---- training and recommendations --------------------------------------------------------------


def test_the_known_best_action_ranks_first(
    personalize: Any, runtime: Any, nba: dict[str, Any]
) -> None:
    metrics = personalize.get_solution_metrics(
        solutionVersionArn=nba["version"]["solutionVersionArn"]
    )["metrics"]
    assert metrics["area_under_curve"] > 0.7, metrics
    trained = [u for u in SCENARIO.users if u not in set(SCENARIO.held_out)][::7]
    for name, users in (("held out", SCENARIO.held_out), ("trained", trained)):
        hits = 0
        for user in users:
            actions = actions_for(runtime, nba["campaign"], user)
            # The default numResults is 5; survey has expired, and app-install waits for
            # its repeat frequency after a recent interaction.
            assert len(actions) == (4 if user in RECENT_APP_INSTALLS else 5)
            scores = [a["score"] for a in actions]
            assert scores == sorted(scores, reverse=True)
            assert all(0.0 <= s <= 1.0 for s in scores) and scores[0] > 0
            hits += actions[0]["actionId"] == SCENARIO.best_action(user)
        assert hits >= 0.9 * len(users), (name, hits, len(users))


def test_expired_and_recently_taken_actions_are_left_out(
    personalize: Any, runtime: Any, events: Any, nba: dict[str, Any]
) -> None:
    recent = sorted(RECENT_APP_INSTALLS)[:5]
    long_ago = [u for u, t in LAST_APP_INSTALL.items() if t < NOW - (REPEAT_DAYS + 1) * DAY][:5]
    assert recent and long_ago
    for user in SCENARIO.users[:10] + recent + long_ago:
        listed = {
            a["actionId"] for a in actions_for(runtime, nba["campaign"], user, numResults=100)
        }
        assert "survey" not in listed  # expired
        assert "gift-card" in listed  # expires later
        assert ("app-install" in listed) == (user not in RECENT_APP_INSTALLS), user
    # A streamed TAKEN counts at once.
    user = long_ago[0]
    dataset = personalize.describe_dataset(datasetArn=nba["Action_Interactions"])["dataset"]
    events.put_action_interactions(
        trackingId=dataset["trackingId"],
        actionInteractions=[
            {
                "actionId": "app-install",
                "userId": user,
                "sessionId": "s",
                "timestamp": NOW - DAY,
                "eventType": "Taken",
            }
        ],
    )
    listed = {a["actionId"] for a in actions_for(runtime, nba["campaign"], user, numResults=100)}
    assert "app-install" not in listed


def test_put_actions_changes_apply_without_retraining(
    runtime: Any, events: Any, nba: dict[str, Any]
) -> None:
    user = SCENARIO.held_out[0]
    best = SCENARIO.best_action(user)
    assert actions_for(runtime, nba["campaign"], user)[0]["actionId"] == best
    # A put action replaces the whole record: give every attribute.
    record = {"category": CATEGORY[best], "value": VALUE[best]}

    def put(expiration: int | None) -> None:
        properties = json.dumps({**record, "expirationTimestamp": expiration})
        events.put_actions(
            datasetArn=nba["Actions"], actions=[{"actionId": best, "properties": properties}]
        )

    put(NOW - 1)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        listed = [
            a["actionId"] for a in actions_for(runtime, nba["campaign"], user, numResults=100)
        ]
        if best not in listed:
            break
        time.sleep(0.5)
    assert best not in listed
    put(None)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if actions_for(runtime, nba["campaign"], user)[0]["actionId"] == best:
            break
        time.sleep(0.5)
    assert actions_for(runtime, nba["campaign"], user)[0]["actionId"] == best


def test_action_filters(personalize: Any, runtime: Any, nba: dict[str, Any]) -> None:
    def make(expression: str) -> str:
        arn = personalize.create_filter(
            name=unique("filter"), datasetGroupArn=nba["group"], filterExpression=expression
        )["filterArn"]
        wait_for_status(personalize.describe_filter, "filter", "filterArn", arn)
        return arn

    declined = make('EXCLUDE ActionID WHERE Action_Interactions.EVENT_TYPE IN ("NOT_TAKEN")')
    valuable = make("INCLUDE ActionID WHERE Actions.VALUE > ($VALUE)")
    category = make("EXCLUDE ActionID WHERE Actions.CATEGORY IN ($CATEGORY)")
    not_taken: dict[str, set[str]] = {}
    for user, action, _, kind in SCENARIO.action_interactions:
        if kind.replace(" ", "_").upper() == "NOT_TAKEN":
            not_taken.setdefault(user, set()).add(action)
    for user in [u for u in SCENARIO.users if u in not_taken][:8]:
        listed = {
            a["actionId"]
            for a in actions_for(runtime, nba["campaign"], user, numResults=100, filterArn=declined)
        }
        assert listed and not listed & not_taken[user], user
        unfiltered = {a["actionId"] for a in actions_for(runtime, nba["campaign"], user)}
        assert unfiltered & not_taken[user] or len(unfiltered) < 5
    user = SCENARIO.users[0]
    rich = actions_for(
        runtime,
        nba["campaign"],
        user,
        numResults=100,
        filterArn=valuable,
        filterValues={"VALUE": "4"},
    )
    assert rich and all(VALUE[a["actionId"]] > 4 for a in rich if a["actionId"] in VALUE)
    no_engagement = actions_for(
        runtime,
        nba["campaign"],
        user,
        numResults=100,
        filterArn=category,
        filterValues={"CATEGORY": '"engagement"'},
    )
    assert {a["actionId"] for a in no_engagement} == {
        "loyalty-program",
        "premium-upgrade",
        "gift-card",
    }
    with pytest.raises(ClientError) as caught:  # an item filter cannot filter actions
        item_filter = make('EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("*")')
        actions_for(runtime, nba["campaign"], user, filterArn=item_filter)
    assert error_code(caught.value) == "InvalidInputException"


def test_scores_are_zero_until_enough_action_interactions(
    personalize: Any, runtime: Any, s3_root: Path
) -> None:
    few = replace(SCENARIO, action_interactions=SCENARIO.action_interactions[:80])
    built = build_group(personalize, s3_root, few)
    version = train(personalize, built["group"])
    assert version["status"] == "ACTIVE", version.get("failureReason")
    campaign = deploy(personalize, version["solutionVersionArn"])
    listed = actions_for(runtime, campaign, SCENARIO.users[1], numResults=10)
    assert {a["score"] for a in listed} == {0.0}
    # Equal scores: the higher VALUE first (survey has expired).
    ids = [a["actionId"] for a in listed]
    expected = sorted((a for a, *_ in ACTIONS if a != "survey"), key=lambda a: -VALUE[a])
    assert ids == expected


# ---- errors ------------------------------------------------------------------------------------


def test_training_needs_actions(personalize: Any, s3_root: Path) -> None:
    built = build_group(personalize, s3_root, SCENARIO, actions=False, interactions=False)
    version = train(personalize, built["group"])
    assert version["status"] == "CREATE FAILED"
    assert "no Actions data" in version["failureReason"], version["failureReason"]
    group = personalize.create_dataset_group(name=unique("dg"))["datasetGroupArn"]
    bucket = unique("nba-items")
    (s3_root / bucket).mkdir()
    (s3_root / bucket / "interactions.csv").write_text(SCENARIO.interactions_csv())
    schema = personalize.create_schema(name=unique("schema"), schema=ITEM_INTERACTIONS_SCHEMA_JSON)
    dataset = personalize.create_dataset(
        name=unique("ds"),
        datasetGroupArn=group,
        schemaArn=schema["schemaArn"],
        datasetType="Interactions",
    )["datasetArn"]
    assert run_import(personalize, dataset, f"s3://{bucket}/interactions.csv")["status"] == "ACTIVE"
    with pytest.raises(ClientError) as caught:
        personalize.create_solution(name=unique("sol"), datasetGroupArn=group, recipeArn=RECIPE)
    assert error_code(caught.value) == "InvalidInputException"
    assert "Actions dataset" in caught.value.response["Error"]["Message"]


def test_runtime_and_batch_errors(personalize: Any, runtime: Any, nba: dict[str, Any]) -> None:
    campaign = nba["campaign"]
    with pytest.raises(ClientError) as caught:
        actions_for(runtime, campaign, "user-0001", numResults=101)
    assert error_code(caught.value) == "InvalidInputException"
    assert actions_for(runtime, campaign, "user-0001", numResults=0) == []
    with pytest.raises(ClientError) as caught:
        actions_for(runtime, campaign.replace("campaign/", "campaign/missing-"), "user-0001")
    assert error_code(caught.value) == "ResourceNotFoundException"
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    with pytest.raises(ClientError) as caught:
        runtime.get_recommendations(campaignArn=campaign, userId="user-0001")
    assert error_code(caught.value) == "InvalidInputException"
    assert "GetActionRecommendations" in caught.value.response["Error"]["Message"]
    # A user nobody knows gets the actions most users take, with propensities.
    cold = actions_for(runtime, campaign, "someone-new")
    assert cold and cold[0]["score"] > 0
    with pytest.raises(ClientError) as caught:
        personalize.create_batch_inference_job(
            jobName=unique("batch"),
            solutionVersionArn=nba["version"]["solutionVersionArn"],
            jobInput={"s3DataSource": {"path": "s3://bucket/in.json"}},
            jobOutput={"s3DataDestination": {"path": "s3://bucket/out/"}},
            roleArn=ROLE,
        )
    assert error_code(caught.value) == "InvalidInputException"
    assert "aws-next-best-action" in caught.value.response["Error"]["Message"]
    popular = train(personalize, nba["group"], recipe=POPULARITY)
    assert popular["status"] == "ACTIVE", popular.get("failureReason")
    other = deploy(personalize, popular["solutionVersionArn"])
    with pytest.raises(ClientError) as caught:
        actions_for(runtime, other, "user-0001")
    assert error_code(caught.value) == "InvalidInputException"
    assert "aws-next-best-action" in caught.value.response["Error"]["Message"]
