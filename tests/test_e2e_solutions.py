"""Solutions and solution versions through real boto3 clients: validation, lifecycle, training."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from botocore.exceptions import ClientError
from helpers import active_dataset, active_group, error_code, run_import, schema, unique

from openpersonalize.metrics.ranking import METRIC_NAMES
from openpersonalize.recipes import catalog
from openpersonalize.testing.server import ServerProcess, wait_for_status
from openpersonalize.training.artifacts import load_vocabularies

UP = "arn:aws:personalize:::recipe/aws-user-personalization"
POPULARITY = "arn:aws:personalize:::recipe/aws-popularity-count"
# Refused in a dataset group without an Actions dataset.
NEXT_BEST_ACTION = "arn:aws:personalize:::recipe/aws-next-best-action"
HEADER = "USER_ID,ITEM_ID,TIMESTAMP,EVENT_TYPE,EVENT_VALUE\n"
ITEMS_SCHEMA = json.dumps(
    {
        "type": "record",
        "name": "Items",
        "namespace": "com.amazonaws.personalize.schema",
        "version": "1.0",
        "fields": [
            {"name": "ITEM_ID", "type": "string"},
            {"name": "PRICE", "type": "float"},
            {"name": "GENRE", "type": "string", "categorical": True},
        ],
    }
)


def interactions_csv(seed: int = 0) -> str:
    """Users in 4 taste groups click items of their group; purchases carry values.

    Planted signals the tests read back: c0 is the most clicked item; p0 the most
    purchased (value 1); p1 purchased less often but always with value 5. The planted
    events are older than the taste-group clicks, so held-out (newest) events follow taste.
    """
    rng = np.random.default_rng(seed)
    rows = []
    for user in range(200):
        group = user % 4
        for step in range(25):
            item = f"c{group * 25 + int(rng.integers(0, 25))}"
            rows.append(f"u{user},{item},{1_700_000_000 + user * 100 + step},click,")
    rows += [f"u{i % 200},c0,{1_600_100_000 + i},click," for i in range(2000)]
    rows += [f"u{i % 200},p0,{1_600_200_000 + i},purchase,1.0" for i in range(1500)]
    rows += [f"u{i % 200},p1,{1_600_300_000 + i},purchase,5.0" for i in range(1100)]
    rows += [f"u{i % 200},p{2 + i % 48},{1_600_400_000 + i},purchase,2.0" for i in range(400)]
    return HEADER + "\n".join(rows) + "\n"


def seen_items(seed: int = 0) -> dict[str, set[str]]:
    """The items each user of interactions_csv(seed) interacted with."""
    seen: dict[str, set[str]] = {}
    for line in interactions_csv(seed).splitlines()[1:]:
        user, item = line.split(",")[:2]
        seen.setdefault(user, set()).add(item)
    return seen


def items_csv() -> str:
    ids = [f"c{i}" for i in range(100)] + [f"p{i}" for i in range(50)] + ["new1", "new2"]
    return "ITEM_ID,PRICE,GENRE\n" + "".join(
        f"{item},{1 + i % 7}.5,{'g' + str(i % 4)}\n" for i, item in enumerate(ids)
    )


@pytest.fixture(scope="module")
def group(personalize, s3_root: Path) -> dict[str, str]:  # type: ignore[no-untyped-def]
    folder = s3_root / "solutions"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "interactions.csv").write_text(interactions_csv())
    (folder / "items.csv").write_text(items_csv())
    group_arn = active_group(personalize)
    interactions = active_dataset(personalize, group_arn, schema(personalize))
    items = active_dataset(personalize, group_arn, schema(personalize, ITEMS_SCHEMA), "Items")
    assert run_import(personalize, interactions, "s3://solutions/interactions.csv")["status"] == (
        "ACTIVE"
    )
    assert run_import(personalize, items, "s3://solutions/items.csv")["status"] == "ACTIVE"
    return {"group": group_arn, "interactions": interactions, "items": items}


def create_solution(personalize, group: dict[str, str], **fields: Any) -> str:  # type: ignore[no-untyped-def]
    fields.setdefault("recipeArn", UP)
    fields.setdefault("performAutoTraining", False)
    arn = personalize.create_solution(
        name=unique("solution"), datasetGroupArn=group["group"], **fields
    )["solutionArn"]
    status = wait_for_status(personalize.describe_solution, "solution", "solutionArn", arn)
    assert status["status"] == "ACTIVE", status
    return arn


def train(personalize, solution_arn: str, **fields: Any) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    arn = personalize.create_solution_version(solutionArn=solution_arn, **fields)[
        "solutionVersionArn"
    ]
    return finished_version(personalize, arn)


def finished_version(personalize, version_arn: str) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """The version once it is ACTIVE, CREATE FAILED or CREATE STOPPED."""
    return wait_for_status(
        personalize.describe_solution_version,
        "solutionVersion",
        "solutionVersionArn",
        version_arn,
        statuses=("ACTIVE", "CREATE FAILED", "CREATE STOPPED"),
        timeout=300,
    )


def trained_model(server: ServerProcess, version_arn: str, recipe_arn: str):  # type: ignore[no-untyped-def]
    """The model the server saved, loaded with the recipe's own class, with its item vocabulary."""
    solution_name, version_id = version_arn.split(":solution/")[1].split("/")
    directory = server.data_dir / "models" / solution_name / version_id
    _, items = load_vocabularies(directory)
    model = catalog.model_class(catalog.get_recipe(recipe_arn)).load(directory / "model")
    return model, items


def top_items(server: ServerProcess, version: dict[str, Any], k: int = 5) -> list[str]:
    model, items = trained_model(server, version["solutionVersionArn"], version["recipeArn"])
    recommended, _ = model.recommend(np.array([0], dtype=np.int32), k)
    return [str(items[code]) for code in recommended[0] if code >= 0]


def test_seed_workflow(personalize, group: dict[str, str]) -> None:  # type: ignore[no-untyped-def]
    solution_arn = personalize.create_solution(
        name=unique("seed"), datasetGroupArn=group["group"], recipeArn=UP
    )["solutionArn"]
    solution = personalize.describe_solution(solutionArn=solution_arn)["solution"]
    assert solution["recipeArn"] == UP and solution["performAutoTraining"] is True
    assert solution["solutionConfig"]["autoTrainingConfig"] == {
        "schedulingExpression": "rate(7 days)"
    }
    wait_for_status(personalize.describe_solution, "solution", "solutionArn", solution_arn)
    version_arn = personalize.create_solution_version(solutionArn=solution_arn)[
        "solutionVersionArn"
    ]
    assert version_arn.startswith(solution_arn + "/") and len(version_arn.rsplit("/", 1)[1]) == 8
    while True:
        version = personalize.describe_solution_version(solutionVersionArn=version_arn)[
            "solutionVersion"
        ]
        if version["status"] in ("ACTIVE", "CREATE FAILED"):
            break
        time.sleep(0.2)
    assert version["status"] == "ACTIVE", version
    assert version["trainingMode"] == "FULL" and version["trainingType"] == "MANUAL"
    assert version["trainingHours"] > 0 and version["recipeArn"] == UP
    metrics = personalize.get_solution_metrics(solutionVersionArn=version_arn)
    assert set(metrics["metrics"]) == set(METRIC_NAMES)
    assert all(0.0 <= value <= 1.0 for value in metrics["metrics"].values())
    latest = personalize.describe_solution(solutionArn=solution_arn)["solution"][
        "latestSolutionVersion"
    ]
    assert latest["solutionVersionArn"] == version_arn and latest["status"] == "ACTIVE"
    listed = personalize.list_solution_versions(solutionArn=solution_arn)["solutionVersions"]
    assert [v["solutionVersionArn"] for v in listed] == [version_arn]
    listed = personalize.list_solutions(datasetGroupArn=group["group"])["solutions"]
    assert solution_arn in [s["solutionArn"] for s in listed]


def test_personalized_model_beats_popularity(personalize, group: dict[str, str]) -> None:  # type: ignore[no-untyped-def]
    metrics = {}
    for recipe in (UP, POPULARITY):
        version = train(personalize, create_solution(personalize, group, recipeArn=recipe))
        assert version["status"] == "ACTIVE", version
        metrics[recipe] = personalize.get_solution_metrics(
            solutionVersionArn=version["solutionVersionArn"]
        )["metrics"]
    for name in ("precision_at_10", "normalized_discounted_cumulative_gain_at_10"):
        assert metrics[UP][name] > metrics[POPULARITY][name], (name, metrics)


REFUSED = [
    ({"recipeArn": None}, "InvalidInputException", "recipeArn"),
    ({"performAutoML": True}, "InvalidInputException", "performAutoML"),
    ({"recipeArn": "arn:aws:personalize:::recipe/aws-nope"}, "ResourceNotFoundException", "nope"),
    ({"recipeArn": NEXT_BEST_ACTION}, "InvalidInputException", "Actions dataset"),
    (
        {"solutionConfig": {"hpoConfig": {"hpoResourceConfig": {"maxNumberOfTrainingJobs": "41"}}}},
        "InvalidInputException",
        "maxNumberOfTrainingJobs",
    ),
    (
        {"solutionConfig": {"hpoConfig": {"hpoResourceConfig": {"maxParallelTrainingJobs": "11"}}}},
        "InvalidInputException",
        "maxParallelTrainingJobs",
    ),
    (
        {"solutionConfig": {"algorithmHyperParameters": {"no_such_knob": "1"}}},
        "InvalidInputException",
        "no_such_knob",
    ),
    (
        {"solutionConfig": {"algorithmHyperParameters": {"hidden_dimension": "4000"}}},
        "InvalidInputException",
        "hidden_dimension",
    ),
    (
        {
            "performHPO": True,
            "solutionConfig": {
                "hpoConfig": {
                    "algorithmHyperParameterRanges": {
                        "continuousHyperParameterRanges": [
                            {
                                "name": "min_user_history_length_percentile",
                                "minValue": 0.0,
                                "maxValue": 0.5,
                            }
                        ]
                    }
                }
            },
        },
        "InvalidInputException",
        "min_user_history_length_percentile",
    ),
    (
        {
            "solutionConfig": {
                "eventsConfig": {
                    "eventParametersList": [{"eventType": "click", "weight": 0.5}] * 11
                }
            }
        },
        "InvalidInputException",
        "eventParametersList",
    ),
    (
        {"solutionConfig": {"trainingDataConfig": {"excludedDatasetColumns": {"ITEMS": ["NOPE"]}}}},
        "InvalidInputException",
        "NOPE",
    ),
    (
        {
            "solutionConfig": {
                "trainingDataConfig": {
                    "includedDatasetColumns": {"ITEMS": [f"C{i}" for i in range(51)]}
                }
            }
        },
        "InvalidInputException",
        "includedDatasetColumns",
    ),
    (
        {
            "solutionConfig": {
                "trainingDataConfig": {
                    "includedDatasetColumns": {
                        "ITEMS": [],
                        "USERS": [],
                        "INTERACTIONS": [],
                        "ACTIONS": [],
                    }
                }
            }
        },
        "InvalidInputException",
        "includedDatasetColumns",
    ),
    (
        {"solutionConfig": {"optimizationObjective": {"itemAttribute": "GENRE"}}},
        "InvalidInputException",
        "GENRE",
    ),
    (
        {"solutionConfig": {"autoTrainingConfig": {"schedulingExpression": "rate(31 days)"}}},
        "InvalidInputException",
        "schedulingExpression",
    ),
    (
        {"solutionConfig": {"autoTrainingConfig": {"schedulingExpression": "every week"}}},
        "InvalidInputException",
        "schedulingExpression",
    ),
    ({"performIncrementalUpdate": True}, "InvalidInputException", "performIncrementalUpdate"),
    ({"eventType": "refund"}, "InvalidInputException", "refund"),
    (
        {"solutionConfig": {"eventValueThreshold": "lots"}},
        "InvalidInputException",
        "eventValueThreshold",
    ),
]


@pytest.mark.parametrize(("fields", "code", "fragment"), REFUSED)
def test_create_solution_refuses(personalize, group, fields, code, fragment) -> None:  # type: ignore[no-untyped-def]
    request = {"name": unique("bad"), "datasetGroupArn": group["group"], "recipeArn": UP, **fields}
    request = {key: value for key, value in request.items() if value is not None}
    with pytest.raises(ClientError) as caught:
        personalize.create_solution(**request)
    assert error_code(caught.value) == code, caught.value.response["Error"]
    assert fragment in caught.value.response["Error"]["Message"]
    names = [s["name"] for s in personalize.list_solutions()["solutions"]]
    assert request["name"] not in names  # nothing half-made


def test_create_solution_refuses_unknown_or_empty_group(personalize) -> None:  # type: ignore[no-untyped-def]
    missing = "arn:aws:personalize:us-east-1:000000000000:dataset-group/nowhere"
    with pytest.raises(ClientError) as caught:
        personalize.create_solution(name=unique("s"), datasetGroupArn=missing, recipeArn=UP)
    assert error_code(caught.value) == "ResourceNotFoundException"
    empty = active_group(personalize)
    with pytest.raises(ClientError) as caught:
        personalize.create_solution(name=unique("s"), datasetGroupArn=empty, recipeArn=UP)
    assert error_code(caught.value) == "InvalidInputException"
    assert "Interactions" in caught.value.response["Error"]["Message"]


def test_every_field_is_accepted_and_described(personalize, group) -> None:  # type: ignore[no-untyped-def]
    config = {
        "eventValueThreshold": "0.5",
        "hpoConfig": {
            "hpoObjective": {"type": "Maximize", "metricName": "precision_at_25"},
            "hpoResourceConfig": {"maxNumberOfTrainingJobs": "2", "maxParallelTrainingJobs": "1"},
            "algorithmHyperParameterRanges": {
                "integerHyperParameterRanges": [
                    {"name": "hidden_dimension", "minValue": 32, "maxValue": 64}
                ],
                "continuousHyperParameterRanges": [],
                "categoricalHyperParameterRanges": [
                    {"name": "recency_mask", "values": ["true", "false"]}
                ],
            },
        },
        "algorithmHyperParameters": {"bptt": "16"},
        "featureTransformationParameters": {"max_user_history_length_percentile": "0.95"},
        "eventsConfig": {
            "eventParametersList": [
                {"eventType": "click", "weight": 0.3},
                {"eventType": "purchase", "eventValueThreshold": 1.0, "weight": 1.0},
            ]
        },
        "optimizationObjective": {"itemAttribute": "PRICE", "objectiveSensitivity": "LOW"},
        "trainingDataConfig": {"excludedDatasetColumns": {"ITEMS": ["GENRE"]}},
        "autoTrainingConfig": {"schedulingExpression": "rate(3 days)"},
    }
    arn = create_solution(
        personalize,
        group,
        performHPO=True,
        performAutoTraining=True,
        eventType="click",
        solutionConfig=config,
        tags=[{"tagKey": "team", "tagValue": "recs"}],
    )
    described = personalize.describe_solution(solutionArn=arn)["solution"]
    assert described["solutionConfig"] == config
    assert described["performHPO"] is True and described["eventType"] == "click"
    assert described["performAutoTraining"] is True
    assert personalize.list_tags_for_resource(resourceArn=arn)["tags"] == [
        {"tagKey": "team", "tagValue": "recs"}
    ]
    with pytest.raises(ClientError) as caught:
        personalize.create_solution(
            name=described["name"], datasetGroupArn=group["group"], recipeArn=UP
        )
    assert error_code(caught.value) == "ResourceAlreadyExistsException"


def test_hpo_reports_tuned_parameters(personalize, group, server) -> None:  # type: ignore[no-untyped-def]
    config = {
        "hpoConfig": {
            "hpoResourceConfig": {"maxNumberOfTrainingJobs": "3"},
            "algorithmHyperParameterRanges": {
                "integerHyperParameterRanges": [
                    {"name": "hidden_dimension", "minValue": 32, "maxValue": 48}
                ]
            },
        },
        "algorithmHyperParameters": {"bptt": "8"},
    }
    version = train(
        personalize, create_solution(personalize, group, performHPO=True, solutionConfig=config)
    )
    assert version["status"] == "ACTIVE", version
    tuned = version["tunedHPOParams"]["algorithmHyperParameters"]
    assert 32 <= int(tuned["hidden_dimension"]) <= 48
    assert tuned["bptt"] == "8"
    trials = _cli(server, "trials", version["solutionVersionArn"]).splitlines()
    assert len(trials) == 1 + 3  # header and one line per trial
    values = [float(line.split()[4]) for line in trials[1:]]
    assert values == sorted(values, reverse=True)  # best first
    assert all("bptt=8" in line for line in trials[1:])
    metrics = _cli(server, "metrics", version["solutionVersionArn"])
    for name in ("recall_at_10", "hit_rate_at_25", "precision_at_10"):
        assert name in metrics


def _cli(server: ServerProcess, *arguments: str) -> str:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "openpersonalize.cli",
            *arguments,
            "--data-dir",
            str(server.data_dir),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout


def test_training_data_selection_changes_the_model(server, personalize, group) -> None:  # type: ignore[no-untyped-def]
    plain = train(personalize, create_solution(personalize, group, recipeArn=POPULARITY))
    assert top_items(server, plain)[0] == "c0"
    purchases = train(
        personalize,
        create_solution(personalize, group, recipeArn=POPULARITY, eventType="purchase"),
    )
    assert all(item.startswith("p") for item in top_items(server, purchases))
    assert top_items(server, purchases)[0] == "p0"
    valuable = train(
        personalize,
        create_solution(
            personalize,
            group,
            recipeArn=POPULARITY,
            eventType="purchase",
            solutionConfig={"eventValueThreshold": "4"},
        ),
    )
    assert top_items(server, valuable, k=1) == ["p1"]
    weighted = train(
        personalize,
        create_solution(
            personalize,
            group,
            recipeArn=POPULARITY,
            solutionConfig={
                "eventsConfig": {
                    "eventParametersList": [
                        {"eventType": "click", "weight": 0.05},
                        {"eventType": "purchase", "weight": 1.0},
                    ]
                }
            },
        ),
    )
    assert top_items(server, weighted, k=1) == ["p0"]


def test_update_mode_rules(personalize, group) -> None:  # type: ignore[no-untyped-def]
    popularity = create_solution(personalize, group, recipeArn=POPULARITY)
    with pytest.raises(ClientError) as caught:
        personalize.create_solution_version(solutionArn=popularity, trainingMode="UPDATE")
    assert error_code(caught.value) == "InvalidInputException"
    assert "aws-user-personalization" in caught.value.response["Error"]["Message"]
    personalized = create_solution(personalize, group)
    with pytest.raises(ClientError) as caught:
        personalize.create_solution_version(solutionArn=personalized, trainingMode="UPDATE")
    assert error_code(caught.value) == "InvalidInputException"
    assert "FULL" in caught.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as caught:
        personalize.create_solution_version(solutionArn=personalized, trainingMode="AUTOTRAIN")
    assert error_code(caught.value) == "InvalidInputException"
    assert train(personalize, personalized)["status"] == "ACTIVE"
    update = train(personalize, personalized, trainingMode="UPDATE")
    assert update["status"] == "ACTIVE", update
    assert update["trainingMode"] == "UPDATE"


def _training_pid(server: ServerProcess, version_arn: str, timeout: float = 60) -> int:
    solution_name, version_id = version_arn.split(":solution/")[1].split("/")
    pid_file = server.data_dir / "models" / solution_name / version_id / "pid"
    deadline = time.monotonic() + timeout
    while not pid_file.exists():
        assert time.monotonic() < deadline, "training never started"
        time.sleep(0.05)
    return int(pid_file.read_text())


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/status")
    return status.exists() and "zombie" not in status.read_text()


def slow_solution(personalize, group) -> str:  # type: ignore[no-untyped-def]
    """HPO with many trials: long enough to stop or kill mid-training."""
    config = {"hpoConfig": {"hpoResourceConfig": {"maxNumberOfTrainingJobs": "40"}}}
    return create_solution(personalize, group, performHPO=True, solutionConfig=config)


def test_stop_really_stops_training(server, personalize, group) -> None:  # type: ignore[no-untyped-def]
    solution = slow_solution(personalize, group)
    version_arn = personalize.create_solution_version(solutionArn=solution)["solutionVersionArn"]
    pid = _training_pid(server, version_arn)
    assert _alive(pid)
    with pytest.raises(ClientError) as caught:
        personalize.delete_solution(solutionArn=solution)
    assert error_code(caught.value) == "ResourceInUseException"
    with pytest.raises(ClientError) as caught:
        personalize.create_solution_version(solutionArn=solution)
    assert error_code(caught.value) == "ResourceInUseException"
    personalize.stop_solution_version_creation(solutionVersionArn=version_arn)
    status = personalize.describe_solution_version(solutionVersionArn=version_arn)[
        "solutionVersion"
    ]["status"]
    assert status in ("CREATE STOPPING", "CREATE STOPPED")
    final = finished_version(personalize, version_arn)
    assert final["status"] == "CREATE STOPPED"
    deadline = time.monotonic() + 10
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(pid)
    with pytest.raises(ClientError) as caught:
        personalize.stop_solution_version_creation(solutionVersionArn=version_arn)
    assert error_code(caught.value) == "ResourceInUseException"
    with pytest.raises(ClientError) as caught:
        personalize.get_solution_metrics(solutionVersionArn=version_arn)
    assert error_code(caught.value) == "ResourceInUseException"
    personalize.delete_solution(solutionArn=solution)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            personalize.describe_solution(solutionArn=solution)
        except ClientError as error:
            assert error_code(error) == "ResourceNotFoundException"
            break
        time.sleep(0.05)
    else:
        pytest.fail("solution was not deleted")
    with pytest.raises(ClientError) as caught:
        personalize.describe_solution_version(solutionVersionArn=version_arn)
    assert error_code(caught.value) == "ResourceNotFoundException"


def test_update_solution(personalize, group) -> None:  # type: ignore[no-untyped-def]
    arn = create_solution(personalize, group)
    personalize.update_solution(
        solutionArn=arn,
        performAutoTraining=True,
        solutionUpdateConfig={
            "autoTrainingConfig": {"schedulingExpression": "rate(2 days)"},
            "eventsConfig": {"eventParametersList": [{"eventType": "purchase", "weight": 1.0}]},
        },
    )
    deadline = time.monotonic() + 30
    while True:
        solution = personalize.describe_solution(solutionArn=arn)["solution"]
        if solution["latestSolutionUpdate"]["status"] == "ACTIVE":
            break
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert solution["performAutoTraining"] is True
    assert solution["solutionConfig"]["autoTrainingConfig"]["schedulingExpression"] == (
        "rate(2 days)"
    )
    assert solution["solutionConfig"]["eventsConfig"]["eventParametersList"][0]["eventType"] == (
        "purchase"
    )
    update = solution["latestSolutionUpdate"]
    assert update["solutionUpdateConfig"]["autoTrainingConfig"]["schedulingExpression"] == (
        "rate(2 days)"
    )
    with pytest.raises(ClientError) as caught:
        personalize.update_solution(solutionArn=arn, performIncrementalUpdate=True)
    assert error_code(caught.value) == "InvalidInputException"
    with pytest.raises(ClientError) as caught:
        personalize.update_solution(
            solutionArn=arn,
            solutionUpdateConfig={"autoTrainingConfig": {"schedulingExpression": "rate(0 days)"}},
        )
    assert error_code(caught.value) == "InvalidInputException"
