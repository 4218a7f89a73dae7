"""HPO and AutoML: an Optuna study whose trials run in their own processes, a few at a time.

The study (TPE, seeded) lives in the training process and asks for hyperparameters; each
trial trains and scores one candidate in its own process (or Ray task), at most
`maxParallelTrainingJobs` at once and `maxNumberOfTrainingJobs` in all. Trials score on a
validation split carved out of the training users, so the test users that GetSolutionMetrics
reports on stay unseen by the search. The split is written once to a file beside the version's
artifacts, which is how trials on other machines read it.

Every trial is logged with the version's ARN and recorded (hyperparameters, metrics, start,
end) for `openpersonalize trials`. AutoML tunes each candidate recipe the same way and keeps
the one whose best trial scores highest on the AutoML metric.
"""

from __future__ import annotations

import logging
import os
import pickle
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from openpersonalize.config import Settings
from openpersonalize.data.interactions import InteractionData
from openpersonalize.data.splits import EvaluationSplit, evaluation_split, validation_split
from openpersonalize.metrics.ranking import EXTENDED_METRIC_NAMES
from openpersonalize.recipes import catalog
from openpersonalize.recipes.base import cores
from openpersonalize.training import executors
from openpersonalize.training.train import (
    SEED,
    TrainingError,
    _as_strings,
    _evaluate,
    _progress,
)

log = logging.getLogger("openpersonalize.training.hpo")

DEFAULT_HPO_METRIC = "normalized_discounted_cumulative_gain_at_25"
DEFAULT_AUTOML_METRIC = "precision_at_25"
VALIDATION_FILE = "validation.pkl"
# Progress of the whole version (0..1) that the search spans.
SEARCH_PROGRESS = (0.1, 0.4)


@dataclass
class Search:
    """One version's search: where trials run, how many, on what, and what they found."""

    version_arn: str
    executor: executors.Executor
    max_trials: int  # per recipe
    max_parallel: int
    validation_path: Path
    n_items: int
    trials: list[dict[str, Any]] = field(default_factory=list)  # every trial, in finish order
    seconds: float = 0.0  # wall time spent searching (the trials' own time is in `trials`)

    @classmethod
    def start(
        cls,
        settings: Settings,
        version_arn: str,
        config: dict[str, Any],
        data: InteractionData,
        output: Path,
    ) -> Search:
        """Write the validation split where trials can read it; size the search."""
        resources = (config.get("hpoConfig") or {}).get("hpoResourceConfig") or {}
        limits = {**catalog.HPO_RESOURCE_DEFAULTS, **resources}
        max_trials = int(limits["maxNumberOfTrainingJobs"])
        max_parallel = int(limits["maxParallelTrainingJobs"])
        if settings.executor == "local" and "maxParallelTrainingJobs" not in resources:
            max_parallel = min(max_parallel, cores())  # more would only share the same cores
        test = evaluation_split(data, seed=SEED)
        validation = validation_split(test.train, seed=SEED + 1, exclude_users=test.test_users)
        if validation.n_test_users == 0:
            raise TrainingError("No training user has enough interactions to validate HPO trials.")
        path = output / "hpo" / VALIDATION_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as file:
            pickle.dump(validation, file, protocol=pickle.HIGHEST_PROTOCOL)
        return cls(
            version_arn=version_arn,
            executor=executors.for_settings(settings),
            max_trials=max_trials,
            max_parallel=min(max_parallel, max_trials),
            validation_path=path,
            n_items=data.n_items,
        )

    @property
    def trial_seconds(self) -> float:
        return sum(trial["seconds"] for trial in self.trials if trial["kind"] == "hpo")


def tune(
    search: Search,
    recipe: catalog.Recipe,
    config: dict[str, Any],
    fixed: dict[str, Any],
    progress: tuple[float, float] = SEARCH_PROGRESS,
) -> dict[str, Any]:
    """The best hyperparameters: `fixed` with the tunable ones the user did not fix searched."""
    hpo = config.get("hpoConfig") or {}
    given = set((config.get("algorithmHyperParameters") or {}).keys())
    space = catalog.search_space(recipe, hpo.get("algorithmHyperParameterRanges"), fixed=given)
    if not space:
        return fixed
    metric = (hpo.get("hpoObjective") or {}).get("metricName")
    metric = metric if metric in EXTENDED_METRIC_NAMES else DEFAULT_HPO_METRIC
    best = _study(search, recipe, space, fixed, metric, search.max_trials, progress)
    return best["candidate"]


def auto_ml(search: Search, config: dict[str, Any]) -> tuple[catalog.Recipe, dict[str, Any]]:
    """Tune each candidate recipe and keep the best by the AutoML metric on validation users."""
    auto_ml_config = config.get("autoMLConfig") or {}
    metric = auto_ml_config.get("metricName")
    metric = metric if metric in EXTENDED_METRIC_NAMES else DEFAULT_AUTOML_METRIC
    candidates = [catalog.get_recipe(arn) for arn in auto_ml_config.get("recipeList") or []] or [
        recipe
        for recipe in catalog.RECIPES.values()
        if recipe.recipe_type == "USER_PERSONALIZATION" and recipe.model is not None
    ]
    low, high = SEARCH_PROGRESS
    step = (high - low) / len(candidates)
    best: tuple[float, catalog.Recipe, dict[str, Any]] | None = None
    for index, recipe in enumerate(candidates):
        defaults = catalog.resolve_hyperparameters(recipe, None, None)
        space = catalog.search_space(recipe, None)
        started = len(search.trials)
        # A recipe with nothing to tune still trains once, to be compared.
        winner = _study(
            search,
            recipe,
            space,
            defaults,
            DEFAULT_HPO_METRIC,
            search.max_trials if space else 1,
            (low + index * step, low + (index + 1) * step),
        )
        score = winner["metrics"][metric]
        search.trials.append(
            {
                **_record(recipe, winner["candidate"], metric, winner["metrics"], "automl"),
                "seconds": sum(trial["seconds"] for trial in search.trials[started:]),
            }
        )
        message = f"AutoML: {recipe.name} {metric}={score:.4f}"
        _progress(search.version_arn, low + (index + 1) * step, message)
        if best is None or score > best[0]:
            best = (score, recipe, winner["candidate"])
    assert best is not None
    return best[1], best[2]


def _study(
    search: Search,
    recipe: catalog.Recipe,
    space: dict[str, tuple[str, Any, Any]],
    fixed: dict[str, Any],
    metric: str,
    n_trials: int,
    progress: tuple[float, float],
) -> dict[str, Any]:
    """Run `n_trials` trials, `search.max_parallel` at a time; the best trial's outcome."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # constant_liar: a trial still running counts as a poor result, so parallel asks spread out.
    sampler = optuna.samplers.TPESampler(seed=SEED, constant_liar=True)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    running: dict[executors.Task, tuple[Any, dict[str, Any]]] = {}
    outcomes: dict[int, dict[str, Any]] = {}
    asked = 0
    started = time.monotonic()
    try:
        while len(outcomes) < n_trials:
            while asked < n_trials and len(running) < search.max_parallel:
                trial = study.ask()
                candidate = _suggest(trial, recipe, space, fixed)
                task = search.executor.submit(
                    run_trial,
                    str(search.validation_path),
                    recipe.arn,
                    candidate,
                    search.n_items,
                    name=f"hpo-{recipe.name}-{trial.number}",
                )
                running[task] = (trial, candidate)
                asked += 1
                log.info(
                    "%s: HPO trial %d/%d of %s started: %s",
                    search.version_arn,
                    trial.number + 1,
                    n_trials,
                    recipe.name,
                    _as_strings(candidate),
                )
            for task in executors.wait_any(list(running), timeout=1.0):
                trial, candidate = running.pop(task)
                try:
                    outcome = task.result()
                except executors.TaskFailed as error:
                    raise TrainingError(
                        f"HPO trial {trial.number + 1} of {recipe.name} failed: {error}"
                    ) from error
                value = outcome["metrics"][metric]
                study.tell(trial, value)
                outcomes[trial.number] = {"candidate": candidate, **outcome}
                record = _record(recipe, candidate, metric, outcome["metrics"], "hpo")
                record.update(
                    number=trial.number + 1,
                    seconds=outcome["endedAt"] - outcome["startedAt"],
                    startedAt=outcome["startedAt"],
                    endedAt=outcome["endedAt"],
                    pid=outcome["pid"],
                )
                search.trials.append(record)
                low, high = progress
                _progress(
                    search.version_arn,
                    low + (high - low) * len(outcomes) / n_trials,
                    f"HPO trial {trial.number + 1}/{n_trials} of {recipe.name}: "
                    f"{metric}={value:.4f} in {record['seconds']:.1f} s "
                    f"{record['hyperparameters']}",
                )
    finally:
        for task in running:  # a failed trial (or a stop) leaves no other trial running
            task.kill()
        search.seconds += time.monotonic() - started
    return outcomes[study.best_trial.number]


def _suggest(
    trial: Any,
    recipe: catalog.Recipe,
    space: dict[str, tuple[str, Any, Any]],
    fixed: dict[str, Any],
) -> dict[str, Any]:
    """`fixed` with a value for each searched parameter, as the trial suggests it."""
    candidate = dict(fixed)
    for name, (kind, low_or_values, high) in space.items():
        if kind == catalog.INTEGER:
            candidate[name] = trial.suggest_int(name, int(low_or_values), int(high))
        elif kind == catalog.CONTINUOUS:
            candidate[name] = trial.suggest_float(name, float(low_or_values), float(high))
        else:
            choice = trial.suggest_categorical(name, list(low_or_values))
            candidate[name] = catalog.convert(recipe, name, choice)
    return candidate


def run_trial(
    validation_path: str, recipe_arn: str, hyperparameters: dict[str, Any], n_items: int
) -> dict[str, Any]:
    """One trial, in its own process: fit on the validation split's training data and score."""
    started = time.time()
    with open(validation_path, "rb") as file:
        validation: EvaluationSplit = pickle.load(file)
    model_class = catalog.model_class(catalog.get_recipe(recipe_arn))
    metrics = _evaluate(model_class, hyperparameters, validation, n_items, extended=True)
    return {"metrics": metrics, "startedAt": started, "endedAt": time.time(), "pid": os.getpid()}


def _record(
    recipe: catalog.Recipe,
    hyperparameters: dict[str, Any],
    metric: str,
    metrics: dict[str, float],
    kind: str,
) -> dict[str, Any]:
    return {
        "kind": kind,  # "hpo": one HPO trial; "automl": a tuned recipe compared by AutoML
        "recipeArn": recipe.arn,
        "hyperparameters": _as_strings(hyperparameters),
        "metric": metric,
        "value": metrics[metric],
        "metrics": metrics,
    }
