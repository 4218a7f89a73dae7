"""Training that survives crashes, automatic training on a moved clock, and AutoML — each on
its own server, since these tests kill and restart it."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from helpers import active_dataset, active_group, run_import, schema, unique
from test_e2e_solutions import (
    POPULARITY,
    UP,
    _alive,
    _training_pid,
    create_solution,
    interactions_csv,
    slow_solution,
    train,
)

from openpersonalize.testing.server import ServerProcess, wait_for_status

DAY = 86400.0


def _server(tmp_path: Path, **settings: str) -> ServerProcess:
    s3_root = tmp_path / "s3"
    (s3_root / "data").mkdir(parents=True, exist_ok=True)
    (s3_root / "data" / "interactions.csv").write_text(interactions_csv())
    (s3_root / "data" / "more.csv").write_text(interactions_csv(seed=1))
    return ServerProcess(
        tmp_path / "server",
        settings={"s3_local_root": str(s3_root), "workers": "1", **settings},
    )


def _group_with_data(personalize) -> dict[str, str]:  # type: ignore[no-untyped-def]
    group = active_group(personalize)
    interactions = active_dataset(personalize, group, schema(personalize))
    assert run_import(personalize, interactions, "s3://data/interactions.csv")["status"] == "ACTIVE"
    return {"group": group, "interactions": interactions}


def _wait_until_in_progress(personalize, version_arn: str) -> None:  # type: ignore[no-untyped-def]
    status = wait_for_status(
        personalize.describe_solution_version,
        "solutionVersion",
        "solutionVersionArn",
        version_arn,
        statuses=("CREATE IN_PROGRESS", "ACTIVE", "CREATE FAILED"),
    )
    assert status["status"] == "CREATE IN_PROGRESS"


def _final(personalize, version_arn: str) -> dict:  # type: ignore[no-untyped-def]
    return wait_for_status(
        personalize.describe_solution_version,
        "solutionVersion",
        "solutionVersionArn",
        version_arn,
        statuses=("ACTIVE", "CREATE FAILED", "CREATE STOPPED"),
        timeout=300,
    )


def _parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()[1])


def test_kill_server_mid_training_then_restart(tmp_path: Path) -> None:
    server = _server(tmp_path, job_lease_seconds="3").start()
    try:
        personalize = server.client()
        group = _group_with_data(personalize)
        version_arn = personalize.create_solution_version(
            solutionArn=slow_solution(personalize, group)
        )["solutionVersionArn"]
        pid = _training_pid(server, version_arn)
        _wait_until_in_progress(personalize, version_arn)
        server.kill()  # kill -9: the workers and the training process must not linger
        deadline = time.monotonic() + 15
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(pid), "the orphaned training process kept running"
        server.start()
        personalize = server.client()
        final = _final(personalize, version_arn)
        assert final["status"] == "ACTIVE", final  # trained again by the restarted server
    finally:
        server.stop()


def test_kill_worker_mid_training(tmp_path: Path) -> None:
    server = _server(tmp_path, job_lease_seconds="3").start()
    try:
        personalize = server.client()
        group = _group_with_data(personalize)
        version_arn = personalize.create_solution_version(
            solutionArn=create_solution(
                personalize,
                group,
                performHPO=True,
                solutionConfig={
                    "hpoConfig": {"hpoResourceConfig": {"maxNumberOfTrainingJobs": "12"}}
                },
            )
        )["solutionVersionArn"]
        # The worker is the training process's ancestor that the server started (a forkserver
        # may stand between them).
        worker_pid = _training_pid(server, version_arn)
        while (parent := _parent(worker_pid)) != server.process.pid:  # type: ignore[union-attr]
            worker_pid = parent
        os.kill(worker_pid, signal.SIGKILL)
        final = _final(personalize, version_arn)
        assert final["status"] == "ACTIVE", final.get("failureReason")
    finally:
        server.stop()


def test_automatic_training_follows_the_clock(tmp_path: Path) -> None:
    server = _server(tmp_path).start()
    try:
        personalize = server.client()
        group = _group_with_data(personalize)
        automatic = create_solution(personalize, group, performAutoTraining=True)
        manual_first = create_solution(personalize, group, performAutoTraining=True)
        assert train(personalize, manual_first)["status"] == "ACTIVE"
        assert personalize.list_solution_versions(solutionArn=automatic)["solutionVersions"] == []

        def versions(solution: str) -> list[dict]:
            return personalize.list_solution_versions(solutionArn=solution)["solutionVersions"]

        # An hour and a bit later (across a restart: the schedule is in the database).
        server.stop()
        server.settings["clock_offset_seconds"] = str(3700)
        server.start()
        personalize = server.client()
        deadline = time.monotonic() + 30
        while not versions(automatic) and time.monotonic() < deadline:
            time.sleep(0.2)
        (first,) = versions(automatic)
        assert first["trainingMode"] == "AUTOTRAIN" and first["trainingType"] == "AUTOMATIC"
        assert _final(personalize, first["solutionVersionArn"])["status"] == "ACTIVE"
        # the solution that got a manual version in its first hour skips the first automatic one
        assert [v["trainingType"] for v in versions(manual_first)] == ["MANUAL"]

        # A week on with no new data: no new version.
        server.stop()
        server.settings["clock_offset_seconds"] = str(3700 + 7 * DAY + 60)
        server.start()
        personalize = server.client()
        time.sleep(8)  # the scheduler runs at worker start and every 5 s
        assert len(versions(automatic)) == 1
        # New data, and another week: a second automatic version.
        job = run_import(personalize, group["interactions"], "s3://data/more.csv", "INCREMENTAL")
        assert job["status"] == "ACTIVE"
        server.stop()
        server.settings["clock_offset_seconds"] = str(3700 + 14 * DAY + 120)
        server.start()
        personalize = server.client()
        deadline = time.monotonic() + 30
        while len(versions(automatic)) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert [v["trainingType"] for v in versions(automatic)] == ["AUTOMATIC", "AUTOMATIC"]
    finally:
        server.stop()


def test_auto_ml_picks_the_best_recipe(tmp_path: Path) -> None:
    with _server(tmp_path) as server:
        personalize = server.client()
        group = _group_with_data(personalize)
        arn = personalize.create_solution(
            name=unique("automl"),
            datasetGroupArn=group["group"],
            performAutoML=True,
            performAutoTraining=False,
            solutionConfig={
                "autoMLConfig": {
                    "metricName": "precision_at_25",
                    "recipeList": [UP, POPULARITY],
                }
            },
        )["solutionArn"]
        wait_for_status(personalize.describe_solution, "solution", "solutionArn", arn)
        version = train(personalize, arn)
        assert version["status"] == "ACTIVE", version
        solution = personalize.describe_solution(solutionArn=arn)["solution"]
        assert solution["autoMLResult"]["bestRecipeArn"] == UP
        assert solution["performHPO"] is True
        with pytest.raises(Exception):  # noqa: B017 - any refusal; the type is tested elsewhere
            personalize.create_solution(
                name=unique("automl"),
                datasetGroupArn=group["group"],
                performAutoML=True,
                recipeArn=UP,
            )


def test_update_refreshes_with_new_items_without_retraining(tmp_path: Path) -> None:
    import numpy as np
    from test_e2e_solutions import trained_model

    new_items = "USER_ID,ITEM_ID,TIMESTAMP,EVENT_TYPE,EVENT_VALUE\n" + "".join(
        f"u{i % 200},z{i % 10},{1_800_000_000 + i},click,\n" for i in range(1200)
    )
    with _server(tmp_path) as server:
        (tmp_path / "s3" / "data" / "new-items.csv").write_text(new_items)
        personalize = server.client()
        group = _group_with_data(personalize)
        solution = create_solution(personalize, group)
        full = train(personalize, solution)
        assert full["status"] == "ACTIVE", full
        job = run_import(
            personalize, group["interactions"], "s3://data/new-items.csv", "INCREMENTAL"
        )
        assert job["status"] == "ACTIVE", job
        update = train(personalize, solution, trainingMode="UPDATE")
        assert update["status"] == "ACTIVE", update
        old_model, old_items = trained_model(server, full["solutionVersionArn"], UP)
        new_model, new_items_vocabulary = trained_model(server, update["solutionVersionArn"], UP)
        vocabulary = list(new_items_vocabulary)
        assert {f"z{i}" for i in range(10)} <= set(vocabulary)
        # learned item factors are kept as they were (no full retrain) ...
        kept = [vocabulary.index(item) for item in old_items]
        assert np.array_equal(new_model.item_factors_[kept], old_model.item_factors_)
        # ... and the new items got factors of their own from the users who took them
        fresh = [vocabulary.index(f"z{i}") for i in range(10)]
        assert np.all(np.linalg.norm(new_model.item_factors_[fresh], axis=1) > 0)
        assert (
            personalize.get_solution_metrics(solutionVersionArn=update["solutionVersionArn"])[
                "metrics"
            ]
            == personalize.get_solution_metrics(solutionVersionArn=full["solutionVersionArn"])[
                "metrics"
            ]
        )
