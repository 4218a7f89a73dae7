"""HPO and AutoML through real boto3 clients: trials in their own processes, locally or on Ray."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers import active_dataset, active_group, require_service, run_import, schema, unique
from test_e2e_blob_store import CREDENTIALS, PREFIX, STORE, keys_under, s3_client
from test_e2e_campaigns import deploy
from test_e2e_imports import moto_s3  # noqa: F401 - a fixture
from test_e2e_solutions import (
    POPULARITY,
    UP,
    _alive,
    _training_pid,
    create_solution,
    finished_version,
    train,
)

from openpersonalize.recipes import catalog
from openpersonalize.testing.server import ServerProcess, free_port, wait_for_status

SIMS = "arn:aws:personalize:::recipe/aws-sims"
# AutoML's default candidates: every USER_PERSONALIZATION recipe we can train.
TRAINABLE_USER_PERSONALIZATION = {
    recipe.arn
    for recipe in catalog.RECIPES.values()
    if recipe.recipe_type == "USER_PERSONALIZATION" and recipe.model is not None
}


def taste_groups_csv(n_users: int, events_per_user: int, n_items: int, seed: int = 0) -> str:
    """Users in 4 taste groups, each clicking mostly the items of its group (a signal to tune)."""
    rng = np.random.default_rng(seed)
    users = np.repeat(np.arange(n_users), events_per_user)
    group_size = n_items // 4
    own = (users % 4) * group_size + rng.integers(0, group_size, len(users))
    anything = rng.integers(0, n_items, len(users))
    items = np.where(rng.random(len(users)) < 0.8, own, anything)
    times = 1_700_000_000 + users * 1000 + np.tile(np.arange(events_per_user), n_users)
    rows = "".join(f"u{u},i{i},{t},click,\n" for u, i, t in zip(users, items, times, strict=True))
    return "USER_ID,ITEM_ID,TIMESTAMP,EVENT_TYPE,EVENT_VALUE\n" + rows


def make_group(personalize, s3_root: Path, name: str, csv: str) -> dict[str, str]:  # type: ignore[no-untyped-def]
    folder = s3_root / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "interactions.csv").write_text(csv)
    group_arn = active_group(personalize)
    interactions = active_dataset(personalize, group_arn, schema(personalize))
    job = run_import(personalize, interactions, f"s3://{name}/interactions.csv")
    assert job["status"] == "ACTIVE", job
    return {"group": group_arn}


@pytest.fixture(scope="module")
def group(personalize, s3_root: Path) -> dict[str, str]:  # type: ignore[no-untyped-def]
    # Big enough that an ALS trial takes a moment, so two at once visibly overlap.
    return make_group(personalize, s3_root, "hpo", taste_groups_csv(1500, 30, 400))


def recorded_trials(data_dir: Path, version_arn: str) -> list[dict[str, Any]]:
    result = subprocess.run(
        [sys.executable, "-m", "openpersonalize.cli", "trials", version_arn, "--json"]
        + ["--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(result.stdout)


def most_at_once(trials: list[dict[str, Any]]) -> int:
    """The most trials running at the same moment, from their recorded start and end."""
    edges = sorted(
        [(trial["startedAt"], 1) for trial in trials] + [(trial["endedAt"], -1) for trial in trials]
    )
    running = peak = 0
    for _, step in edges:  # at equal times an end (-1) sorts first: touching is not overlapping
        running += step
        peak = max(peak, running)
    return peak


def hpo_config(jobs: int, parallel: int, **ranges: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "hpoResourceConfig": {
            "maxNumberOfTrainingJobs": str(jobs),
            "maxParallelTrainingJobs": str(parallel),
        },
        "algorithmHyperParameterRanges": ranges,
    }


def check_search(
    version: dict[str, Any], trials: list[dict[str, Any]], jobs: int, parallel: int
) -> list[dict[str, Any]]:
    """What every HPO version must show: the limits kept, the winner reported, time counted."""
    assert version["status"] == "ACTIVE", version
    hpo = [trial for trial in trials if trial["kind"] == "hpo"]
    assert len(hpo) == jobs
    assert most_at_once(hpo) <= parallel
    best = max(hpo, key=lambda trial: trial["value"])
    assert version["tunedHPOParams"]["algorithmHyperParameters"] == best["hyperparameters"]
    assert version["trainingHours"] * 3600 >= sum(trial["seconds"] for trial in hpo)
    return hpo


def test_integer_and_categorical_ranges_with_fixed_values_in_parallel(
    server, personalize, group
) -> None:  # type: ignore[no-untyped-def]
    config = {
        "hpoConfig": hpo_config(
            4,
            2,
            integerHyperParameterRanges=[
                {"name": "hidden_dimension", "minValue": 32, "maxValue": 200}
            ],
            categoricalHyperParameterRanges=[{"name": "recency_mask", "values": ["true", "false"]}],
        ),
        "algorithmHyperParameters": {"bptt": "8"},
    }
    solution = create_solution(personalize, group, performHPO=True, solutionConfig=config)
    version = train(personalize, solution)
    trials = recorded_trials(server.data_dir, version["solutionVersionArn"])
    hpo = check_search(version, trials, jobs=4, parallel=2)
    for trial in hpo:
        parameters = trial["hyperparameters"]
        assert 32 <= int(parameters["hidden_dimension"]) <= 200
        assert parameters["recency_mask"] in ("true", "false")
        assert parameters["bptt"] == "8"  # fixed stays fixed
        assert trial["metric"] == "normalized_discounted_cumulative_gain_at_25"
        assert trial["value"] == trial["metrics"][trial["metric"]]
        assert trial["endedAt"] > trial["startedAt"]
    assert most_at_once(hpo) == 2  # two trials really ran at the same time
    assert len({trial["pid"] for trial in hpo}) == 4  # each in its own process
    log = server.log()
    assert f"{version['solutionVersionArn']}: HPO trial 4/4" in log


def test_continuous_range_and_objective(server, personalize, group) -> None:  # type: ignore[no-untyped-def]
    config = {
        "hpoConfig": {
            **hpo_config(
                2,
                1,
                continuousHyperParameterRanges=[
                    {"name": "popularity_discount_factor", "minValue": 0.2, "maxValue": 0.4}
                ],
            ),
            "hpoObjective": {"type": "Maximize", "metricName": "precision_at_10"},
        },
        "algorithmHyperParameters": {"min_cointeraction_count": "1"},
    }
    solution = create_solution(
        personalize, group, recipeArn=SIMS, performHPO=True, solutionConfig=config
    )
    version = train(personalize, solution)
    trials = recorded_trials(server.data_dir, version["solutionVersionArn"])
    hpo = check_search(version, trials, jobs=2, parallel=1)
    for trial in hpo:
        assert 0.2 <= float(trial["hyperparameters"]["popularity_discount_factor"]) <= 0.4
        assert trial["hyperparameters"]["min_cointeraction_count"] == "1"
        assert trial["metric"] == "precision_at_10"


def test_auto_ml_keeps_the_recipe_the_trial_metrics_say(server, personalize, group) -> None:  # type: ignore[no-untyped-def]
    config = {
        "autoMLConfig": {"metricName": "precision_at_25", "recipeList": [POPULARITY, UP]},
        "hpoConfig": {"hpoResourceConfig": {"maxNumberOfTrainingJobs": "3"}},
    }
    solution = personalize.create_solution(
        name=unique("automl"),
        datasetGroupArn=group["group"],
        performAutoML=True,
        solutionConfig=config,
    )["solutionArn"]
    wait_for_status(personalize.describe_solution, "solution", "solutionArn", solution)
    version = train(personalize, solution)
    assert version["status"] == "ACTIVE", version
    trials = recorded_trials(server.data_dir, version["solutionVersionArn"])
    best = check_auto_ml(personalize, solution, version, trials, "precision_at_25")
    assert best in (POPULARITY, UP)
    assert {trial["recipeArn"] for trial in trials} == {POPULARITY, UP}
    up_trials = [t for t in trials if t["kind"] == "hpo" and t["recipeArn"] == UP]
    # maxNumberOfTrainingJobs in all: popularity, with nothing to tune, trains once.
    assert len(up_trials) == 2


def check_auto_ml(
    personalize, solution: str, version: dict[str, Any], trials: list[dict[str, Any]], metric: str
) -> str:  # type: ignore[no-untyped-def]
    """Each recipe's candidate is its best HPO trial; the winner has the best candidate metric."""
    candidates = [trial for trial in trials if trial["kind"] == "automl"]
    for candidate in candidates:
        own = [t for t in trials if t["kind"] == "hpo" and t["recipeArn"] == candidate["recipeArn"]]
        tuned = max(own, key=lambda trial: trial["value"])
        assert candidate["hyperparameters"] == tuned["hyperparameters"]
        assert candidate["metric"] == metric
        assert candidate["value"] == tuned["metrics"][metric]
    winner = max(candidates, key=lambda trial: trial["value"])
    described = personalize.describe_solution(solutionArn=solution)["solution"]
    assert described["autoMLResult"]["bestRecipeArn"] == winner["recipeArn"]
    assert version["tunedHPOParams"]["algorithmHyperParameters"] == winner["hyperparameters"]
    return winner["recipeArn"]


def test_seed_example_auto_ml(server, personalize, s3_root) -> None:  # type: ignore[no-untyped-def]
    # Small data: the default search tries every trainable USER_PERSONALIZATION recipe.
    small = make_group(personalize, s3_root, "automl-seed", taste_groups_csv(100, 12, 40))
    solution_arn = personalize.create_solution(
        name="seed-automl", datasetGroupArn=small["group"], performAutoML=True
    )["solutionArn"]
    wait_for_status(personalize.describe_solution, "solution", "solutionArn", solution_arn)
    version_arn = personalize.create_solution_version(solutionArn=solution_arn)[
        "solutionVersionArn"
    ]
    version = wait_for_status(
        personalize.describe_solution_version,
        "solutionVersion",
        "solutionVersionArn",
        version_arn,
        statuses=("ACTIVE", "CREATE FAILED"),
        timeout=600,
    )
    assert version["status"] == "ACTIVE", version
    trials = recorded_trials(server.data_dir, version_arn)
    assert {trial["recipeArn"] for trial in trials} == TRAINABLE_USER_PERSONALIZATION
    check_auto_ml(personalize, solution_arn, version, trials, "precision_at_25")
    assert personalize.get_solution_metrics(solutionVersionArn=version_arn)["metrics"]


def _process_group(group_id: int) -> set[int]:
    """The live processes of a process group (a training process leads one with its trials)."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == group_id and fields[0] != "Z":
            found.add(int(stat.parent.name))
    return found


def test_stop_during_hpo_leaves_no_trial_process(server, personalize, group) -> None:  # type: ignore[no-untyped-def]
    config = {"hpoConfig": hpo_config(40, 2)}
    solution = create_solution(personalize, group, performHPO=True, solutionConfig=config)
    version_arn = personalize.create_solution_version(solutionArn=solution)["solutionVersionArn"]
    training = _training_pid(server, version_arn)
    deadline = time.monotonic() + 120
    while f"{version_arn}: HPO trial 2/40" not in server.log():
        assert time.monotonic() < deadline, "the trials never started"
        time.sleep(0.05)
    # The training process, the process that forks the trials, and the running trials.
    processes = _process_group(training)
    assert len(processes) >= 4, processes
    personalize.stop_solution_version_creation(solutionVersionArn=version_arn)
    final = finished_version(personalize, version_arn)
    assert final["status"] == "CREATE STOPPED"
    # Killed processes take a moment to exit on a loaded machine: they must go, not linger.
    deadline = time.monotonic() + 15
    while (left := [pid for pid in processes if _alive(pid)]) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not left, f"still running after the stop: {left}"
    assert not _process_group(training)


# -- the same search on a Ray cluster -----------------------------------------------------------


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    require_service(
        importlib.util.find_spec("ray") is not None,
        "ray is not installed (pip install -e '.[ray]')",
    )
    temp_dir = tmp_path_factory.mktemp("ray")
    port = free_port()
    command = [
        str(Path(sys.executable).parent / "ray"),
        "start",
        "--head",
        "--block",
        f"--port={port}",
        "--node-ip-address=127.0.0.1",
        "--num-cpus=3",  # the training task holds one while two trials run
        "--include-dashboard=false",
        "--disable-usage-stats",
        f"--temp-dir={temp_dir}",
        "--object-store-memory=100000000",
    ]
    log = open(temp_dir / "ray-start.log", "wb")  # closed at teardown
    # Its own process group: every process of the cluster goes with it at the end.
    # Its workers reach the S3-compatible blob store with these credentials.
    environment = {**os.environ, **CREDENTIALS}
    head = subprocess.Popen(
        command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=environment
    )
    address = f"127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while not any(temp_dir.glob("session_*/logs/raylet.out")):
        assert head.poll() is None, (temp_dir / "ray-start.log").read_text()
        assert time.monotonic() < deadline, "the Ray cluster did not start"
        time.sleep(0.2)
    try:
        yield {"address": address, "temp_dir": temp_dir}
    finally:
        os.killpg(head.pid, signal.SIGTERM)
        try:
            head.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(head.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        log.close()


def ray_settings(
    ray_cluster: dict[str, Any], s3_root: Path, s3_endpoint: str, blob_store: str
) -> dict[str, str]:
    """A server that trains on the Ray cluster, reading CSVs from s3_root and keeping its data
    and models in `blob_store`, a bucket on the S3-compatible endpoint."""
    return {
        "s3_local_root": str(s3_root),
        "s3_endpoint_url": s3_endpoint,
        "blob_store": blob_store,
        "executor": "ray",
        "ray_address": ray_cluster["address"],
        "workers": "1",
    }


def test_hpo_on_a_ray_cluster(ray_cluster, tmp_path, s3_root, moto_s3) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    """Data and models travel through the blob store (a bucket), as they must to reach workers
    on other machines: the server's data directory holds neither."""
    s3 = s3_client(moto_s3)
    s3.create_bucket(Bucket=STORE)
    settings = ray_settings(ray_cluster, s3_root, moto_s3, f"s3://{STORE}/{PREFIX}")
    with ServerProcess(
        tmp_path / "server", settings=settings, environment=CREDENTIALS
    ) as ray_server:
        personalize = ray_server.client("personalize")
        ray_group = make_group(personalize, s3_root, "hpo-ray", taste_groups_csv(1500, 30, 400))
        config = {
            "hpoConfig": hpo_config(
                3,
                2,
                integerHyperParameterRanges=[
                    {"name": "hidden_dimension", "minValue": 32, "maxValue": 200}
                ],
            )
        }
        solution = create_solution(personalize, ray_group, performHPO=True, solutionConfig=config)
        version = train(personalize, solution)
        trials = recorded_trials(ray_server.data_dir, version["solutionVersionArn"])
        campaign = deploy(personalize, version["solutionVersionArn"])
        runtime = ray_server.client("personalize-runtime")
        answer = runtime.get_recommendations(campaignArn=campaign, userId="u1", numResults=5)
        assert len(answer["itemList"]) == 5
    hpo = check_search(version, trials, jobs=3, parallel=2)
    # Each trial ran in a Ray worker process: Ray names every worker's log after its pid.
    logs = ray_cluster["temp_dir"].glob("session_*/logs/worker-*.out")
    worker_pids = {int(path.stem.rsplit("-", 1)[1]) for path in logs}
    assert {trial["pid"] for trial in hpo} <= worker_pids
    assert most_at_once(hpo) == 2
    version_id = version["solutionVersionArn"].rsplit("/", 1)[1]
    assert any(f"/{version_id}/model/" in key for key in keys_under(s3, "models/"))
    assert keys_under(s3, "datasets/")
    assert not (ray_server.data_dir / "models").exists()
    assert not (ray_server.data_dir / "datasets").exists()


def ray_tasks_running(prefixes: tuple[str, ...]) -> list[int]:
    """Pids of Ray workers running a task whose name starts with one of `prefixes` (Ray titles
    a busy worker `ray::<task name>`, an idle one `ray::IDLE`)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            title = (proc / "cmdline").read_bytes().split(b"\0")[0].decode()
        except (OSError, ValueError):
            continue
        if title.startswith("ray::") and title[5:].startswith(prefixes):
            found.append(int(proc.name))
    return found


def test_stop_during_hpo_on_a_ray_cluster(ray_cluster, tmp_path, s3_root, moto_s3) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    s3_client(moto_s3).create_bucket(Bucket="stop-store")
    settings = ray_settings(ray_cluster, s3_root, moto_s3, "s3://stop-store/root")
    with ServerProcess(
        tmp_path / "server", settings=settings, environment=CREDENTIALS
    ) as ray_server:
        personalize = ray_server.client("personalize")
        ray_group = make_group(
            personalize, s3_root, "hpo-ray-stop", taste_groups_csv(1500, 30, 400)
        )
        config = {"hpoConfig": hpo_config(40, 2)}
        solution = create_solution(personalize, ray_group, performHPO=True, solutionConfig=config)
        version_arn = personalize.create_solution_version(solutionArn=solution)[
            "solutionVersionArn"
        ]
        deadline = time.monotonic() + 120
        while not ray_tasks_running(("hpo-",)):
            assert time.monotonic() < deadline, "no trial started on the cluster"
            time.sleep(0.05)
        busy = ray_tasks_running(("hpo-", "train-"))
        personalize.stop_solution_version_creation(solutionVersionArn=version_arn)
        final = finished_version(personalize, version_arn)
    assert final["status"] == "CREATE STOPPED"
    assert len(busy) >= 2, busy  # the training task and at least one trial
    deadline = time.monotonic() + 30
    while ray_tasks_running(("hpo-", "train-")):
        assert time.monotonic() < deadline, "Ray tasks still running after the stop"
        time.sleep(0.1)
