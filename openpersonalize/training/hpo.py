"""HPO and AutoML: an Optuna study whose trials run in their own processes, a few at a time.

The study (TPE, seeded) lives in the training process and asks for hyperparameters; each
trial trains and scores one candidate in its own process (or Ray task), at most
`maxParallelTrainingJobs` at once and `maxNumberOfTrainingJobs` in all. Trials score on a
validation split carved out of the training users, so the test users that GetSolutionMetrics
reports on stay unseen by the search. The split is written once to a file beside the version's
artifacts in the blob store, which is how trials on other machines read it.

Every trial is logged with the version's ARN and recorded (hyperparameters, metrics, start,
end) for `openpersonalize trials`. AutoML tunes each candidate recipe the same way and keeps
the one whose best trial scores highest on the AutoML metric.
"""

from __future__ import annotations

import logging
import os
import pickle
import shutil
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from openpersonalize.context import Context
from openpersonalize.data.interactions import InteractionData
from openpersonalize.data.splits import EvaluationSplit, evaluation_split, validation_split
from openpersonalize.metrics.ranking import EXTENDED_METRIC_NAMES
from openpersonalize.recipes import catalog
from openpersonalize.recipes.base import cores
from openpersonalize.store.blobs import BlobStore
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
    max_trials: int  # maxNumberOfTrainingJobs
    max_parallel: int
    # The validation split, pickled: written locally, read by trials through the blob store.
    validation_path: Path
    blobs: BlobStore
    validation_key: str
    n_items: int
    # Local trials running at once each get their own share of the cores (slot i: cpu_sets[i]),
    # so their thread pools do not fight; empty where the executor places trials itself.
    cpu_sets: list[list[int]] = field(default_factory=list)
    trials: list[dict[str, Any]] = field(default_factory=list)  # every trial, in finish order
    seconds: float = 0.0  # wall time spent searching (the trials' own time is in `trials`)

    @classmethod
    def start(
        cls,
        context: Context,
        version_arn: str,
        config: dict[str, Any],
        data: InteractionData,
        recipes: list[catalog.Recipe],
        *,
        output: Path,
        output_key: str,
    ) -> Search:
        """Put the validation split where trials can read it (the training output, local
        directory `output`, at `output_key` in the blob store); size the search over `recipes`.
        """
        settings = context.settings
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
        validation_key = f"{output_key}/hpo/{VALIDATION_FILE}"
        context.blobs.put_file(path, validation_key)
        max_parallel = min(max_parallel, max_trials)
        cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
        share = len(cpus) // max_parallel
        local = settings.executor == "local" and share >= 1
        return cls(
            version_arn=version_arn,
            # Local trial processes fork with the recipes' model code imported already.
            executor=executors.for_settings(
                settings, preload=[recipe.model.split(":")[0] for recipe in recipes if recipe.model]
            ),
            max_trials=max_trials,
            max_parallel=max_parallel,
            validation_path=path,
            blobs=context.blobs,
            validation_key=validation_key,
            n_items=data.n_items,
            cpu_sets=[cpus[i * share : (i + 1) * share] for i in range(max_parallel)]
            if local
            else [],
        )

    def remove_inputs(self) -> None:
        shutil.rmtree(self.validation_path.parent, ignore_errors=True)
        self.blobs.delete(self.validation_key)

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
    candidates = auto_ml_candidates(config)
    spaces = [catalog.search_space(recipe, None) for recipe in candidates]
    # maxNumberOfTrainingJobs is for the whole search: a recipe with nothing to tune trains
    # once (to be compared), the recipes with something to tune share the rest.
    n_tunable = sum(1 for space in spaces if space)
    per_tunable = max(1, (search.max_trials - (len(candidates) - n_tunable)) // max(n_tunable, 1))
    low, high = SEARCH_PROGRESS
    step = (high - low) / len(candidates)
    best: tuple[float, catalog.Recipe, dict[str, Any]] | None = None
    for index, (recipe, space) in enumerate(zip(candidates, spaces, strict=True)):
        started = len(search.trials)
        winner = _study(
            search,
            recipe,
            space,
            catalog.resolve_hyperparameters(recipe, None, None),
            DEFAULT_HPO_METRIC,
            per_tunable if space else 1,
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


def auto_ml_candidates(config: dict[str, Any]) -> list[catalog.Recipe]:
    """autoMLConfig.recipeList, or else every USER_PERSONALIZATION recipe we can train."""
    listed = (config.get("autoMLConfig") or {}).get("recipeList") or []
    return [catalog.get_recipe(arn) for arn in listed] or [
        recipe
        for recipe in catalog.RECIPES.values()
        if recipe.recipe_type == "USER_PERSONALIZATION" and recipe.model is not None
    ]


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
    # The first trial tries the recipe's defaults (where the ranges hold them), so the tuned
    # hyperparameters are never worse than the defaults on the validation users.
    study.enqueue_trial(_defaults_in(recipe, space, fixed), skip_if_exists=True)
    running: dict[executors.Task, tuple[Any, dict[str, Any], int]] = {}
    free_slots = list(range(search.max_parallel))
    outcomes: dict[int, dict[str, Any]] = {}
    asked = 0
    started = time.monotonic()
    try:
        while len(outcomes) < n_trials:
            while asked < n_trials and len(running) < search.max_parallel:
                trial = study.ask()
                candidate = _suggest(trial, recipe, space, fixed)
                slot = free_slots.pop()
                task = search.executor.submit(
                    run_trial,
                    search.blobs,
                    search.validation_key,
                    recipe.arn,
                    candidate,
                    search.n_items,
                    search.cpu_sets[slot] if search.cpu_sets else None,
                    name=f"hpo-{recipe.name}-{trial.number}",
                )
                running[task] = (trial, candidate, slot)
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
                trial, candidate, slot = running.pop(task)
                free_slots.append(slot)
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


def _defaults_in(
    recipe: catalog.Recipe, space: dict[str, tuple[str, Any, Any]], fixed: dict[str, Any]
) -> dict[str, Any]:
    """The searched parameters' default values that lie inside their search ranges."""
    inside = {}
    for name, (kind, low_or_values, high) in space.items():
        value = fixed[name]
        if kind == catalog.CATEGORICAL:
            choice = recipe.parameter(name).canonical(value)  # type: ignore[union-attr]
            if choice in low_or_values:
                inside[name] = choice
        elif low_or_values <= value <= high:
            inside[name] = value
    return inside


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
    blobs: BlobStore,
    validation_key: str,
    recipe_arn: str,
    hyperparameters: dict[str, Any],
    n_items: int,
    cpus: list[int] | None = None,
) -> dict[str, Any]:
    """One trial, in its own process: fit on the validation split's training data and score."""
    started = time.time()
    if cpus:
        os.sched_setaffinity(0, cpus)  # models size their thread pools by the cores they may use
    with tempfile.TemporaryDirectory(prefix="openpersonalize-trial-") as cache:
        path = replace(blobs, cache_dir=Path(cache)).local_path(validation_key)
        with open(path, "rb") as file:
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
