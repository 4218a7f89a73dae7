"""Train one solution version: select the data, evaluate on held-out users, fit on all data.

Runs in its own process (see resources/solution_versions.py). It reads the
version's configuration and the dataset group's data, and writes into its
output directory: the model, the ID vocabularies and `result.json` (metrics,
tuned hyperparameters, AutoML result) — or `failure.txt` with the reason.
"""

from __future__ import annotations

import inspect
import json
import logging
import os
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
from sqlalchemy import select

from openpersonalize.config import Settings
from openpersonalize.context import Context
from openpersonalize.data import streamed as streamed_data
from openpersonalize.data.importer import read_dataset
from openpersonalize.data.interactions import InteractionData
from openpersonalize.data.schema import Schema
from openpersonalize.data.splits import EvaluationSplit, evaluation_split, validation_split
from openpersonalize.data.training_data import TrainingDataError, load_training_data
from openpersonalize.metrics.ranking import METRIC_NAMES, extended_metrics, ranking_metrics
from openpersonalize.recipes import catalog
from openpersonalize.recipes.base import Model
from openpersonalize.resources import lifecycle, schemas
from openpersonalize.store.database import ResourceRow
from openpersonalize.training import artifacts

log = logging.getLogger("openpersonalize.training")

TOP_K = 25
SEED = 0
DEFAULT_AUTOML_METRIC = "precision_at_25"
DEFAULT_HPO_METRIC = "normalized_discounted_cumulative_gain_at_25"
DEFAULT_MAX_TRAINING_JOBS = 8


class TrainingError(Exception):
    """A reason training cannot go on, worded for the version's failureReason."""


@dataclass
class TrainingInput:
    """Everything training needs, read from the database in one go."""

    version: ResourceRow
    data: InteractionData
    previous: ResourceRow | None  # the solution's latest ACTIVE version (what UPDATE refreshes)


def train_process_main(settings: Settings, version_arn: str, output_dir: str) -> None:
    """Entry point of the training process: exit 0 with result.json, or 1 with failure.txt."""
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s [train] %(message)s",
    )
    output = Path(output_dir)
    (output / "pid").write_text(str(os.getpid()))
    _exit_with_parent()
    try:
        context = Context.open(settings)
        result = train_solution_version(context, version_arn, output)
        (output / "result.json").write_text(json.dumps(result))
    except (TrainingError, TrainingDataError) as error:
        (output / "failure.txt").write_text(str(error))
        log.error("%s: training failed: %s", version_arn, error)
        sys.exit(1)
    except Exception as error:  # an unexpected failure still gets a reason, never a hang
        (output / "failure.txt").write_text(f"Training failed: {type(error).__name__}: {error}")
        log.error("%s: training failed\n%s", version_arn, traceback.format_exc())
        sys.exit(1)


def _exit_with_parent() -> None:
    """Die with the worker: an orphaned training run would only waste the machine."""
    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(0.5)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def train_solution_version(context: Context, version_arn: str, output: Path) -> dict[str, Any]:
    training = load_input(context, version_arn)
    version = training.version.attributes
    config = version.get("solutionConfig") or {}
    data = training.data
    _progress(
        version_arn, 0.1, f"{data.n_events} events, {data.n_users} users, {data.n_items} items"
    )
    if version.get("trainingMode") == "UPDATE":
        return _refresh(version_arn, training, output)
    result: dict[str, Any] = {}
    trials: list[dict[str, Any]] = []  # every HPO trial and AutoML candidate, for `trials`
    if version.get("performAutoML"):
        recipe, hyperparameters = _auto_ml(version_arn, config, data, trials)
        result["autoMLResult"] = {"bestRecipeArn": recipe.arn}
        result["tunedHPOParams"] = {"algorithmHyperParameters": _as_strings(hyperparameters)}
    else:
        recipe = catalog.get_recipe(version["recipeArn"])
        hyperparameters = catalog.resolve_hyperparameters(
            recipe,
            config.get("algorithmHyperParameters"),
            config.get("featureTransformationParameters"),
        )
        if version.get("performHPO"):
            hyperparameters = _tune(version_arn, recipe, config, data, hyperparameters, trials)
            result["tunedHPOParams"] = {"algorithmHyperParameters": _as_strings(hyperparameters)}
    model_class = catalog.model_class(recipe)
    split = evaluation_split(data, seed=SEED)
    _progress(version_arn, 0.4, f"evaluating {recipe.name} on {len(split.test_users)} test users")
    evaluation = _evaluate(model_class, hyperparameters, split, data.n_items, extended=True)
    # GetSolutionMetrics reports exactly the service's metrics; ours stay for `openpersonalize
    # metrics`.
    result["metrics"] = {name: evaluation[name] for name in METRIC_NAMES}
    result["extendedMetrics"] = evaluation
    result["trials"] = trials
    _progress(version_arn, 0.7, "fitting the deployed model on all data")
    model = build(model_class, hyperparameters).fit(data)
    model.save(output / "model")
    artifacts.save(data, output)
    result["recipeArn"] = recipe.arn
    result["hyperparameters"] = _as_strings(hyperparameters)
    _progress(version_arn, 1.0, f"done: {json.dumps(result['metrics'])}")
    return result


def load_input(context: Context, version_arn: str) -> TrainingInput:
    """The version's record, and the dataset group's data: imported files plus streamed records."""
    from openpersonalize.resources.solutions import datasets_of

    with context.database.transaction() as session:
        version = lifecycle.find(session, version_arn)
        if version is None:
            raise TrainingError(f"The solution version {version_arn} no longer exists.")
        group_arn = version.attributes["datasetGroupArn"]
        tables: dict[str, tuple[pa.Table | None, Schema | None]] = {}
        for dataset_type, dataset in datasets_of(session, group_arn).items():
            schema_row = lifecycle.get(session, schemas.KIND, dataset.attributes["schemaArn"])
            schema = schemas.load(schema_row)
            imported = read_dataset(list(dataset.attributes.get("files", [])))
            if dataset_type == "Interactions":
                streamed = streamed_data.events_table(session, dataset.arn, schema)
            else:
                id_field = "ITEM_ID" if dataset_type == "Items" else "USER_ID"
                streamed = streamed_data.records_table(session, dataset.arn, schema, id_field)
            parts = [t for t in (imported, streamed) if t.num_columns and t.num_rows]
            table = pa.concat_tables([p.select(schema.names) for p in parts]) if parts else None
            tables[dataset_type] = (table, schema)
        previous = session.scalars(
            select(ResourceRow)
            .where(
                ResourceRow.resource_type == version.resource_type,
                ResourceRow.parent_arn == version.parent_arn,
                ResourceRow.status == lifecycle.ACTIVE,
            )
            .order_by(ResourceRow.created_at.desc())
            .limit(1)
        ).first()
    interactions, interactions_schema = tables.get("Interactions", (None, None))
    if interactions is None:
        raise TrainingError(f"The dataset group {group_arn} has no Interactions data to train on.")
    items, items_schema = tables.get("Items", (None, None))
    users, users_schema = tables.get("Users", (None, None))
    config = version.attributes.get("solutionConfig") or {}
    training_config = config.get("trainingDataConfig") or {}
    threshold = config.get("eventValueThreshold")
    data = load_training_data(
        interactions,
        interactions_schema=interactions_schema,
        items=items,
        items_schema=items_schema if items is not None else None,
        users=users,
        users_schema=users_schema if users is not None else None,
        event_type=version.attributes.get("eventType"),
        event_value_threshold=float(threshold) if threshold is not None else None,
        events_config=(config.get("eventsConfig") or {}).get("eventParametersList"),
        included_columns=training_config.get("includedDatasetColumns"),
        excluded_columns=training_config.get("excludedDatasetColumns"),
    )
    return TrainingInput(version=version, data=data, previous=previous)


def _refresh(version_arn: str, training: TrainingInput, output: Path) -> dict[str, Any]:
    """Training mode UPDATE: refresh the latest ACTIVE model with new users, items and events."""
    previous = training.previous
    if previous is None or not previous.attributes.get("modelPath"):
        raise TrainingError("trainingMode UPDATE needs an ACTIVE solution version to refresh.")
    source = Path(previous.attributes["modelPath"])
    model = Model.load(source / "model")
    user_ids, item_ids = artifacts.load_vocabularies(source)
    data = training.data
    new_items = len(set(data.item_ids) - set(item_ids))
    _progress(version_arn, 0.3, f"refreshing {previous.arn} with {new_items} new items")
    try:
        model = model.refresh(data, user_ids, item_ids)
    except NotImplementedError as error:
        raise TrainingError(str(error)) from error
    model.save(output / "model")
    artifacts.save(data, output)
    _progress(version_arn, 1.0, f"refreshed {previous.arn}")
    # The service computes no new metrics for an update; the refreshed model reports the
    # evaluation of the version it refreshes.
    return {
        "metrics": previous.attributes.get("metrics", {}),
        "recipeArn": training.version.attributes.get("recipeArn"),
        "refreshedFrom": previous.arn,
    }


def build(model_class: type[Model], hyperparameters: dict[str, Any]) -> Model:
    """A model from the hyperparameters its constructor takes (plus the seed, where it has one)."""
    accepted = inspect.signature(model_class).parameters
    arguments = {name: value for name, value in hyperparameters.items() if name in accepted}
    if "random_state" in accepted:
        arguments["random_state"] = SEED
    return model_class(**arguments)


def _evaluate(
    model_class: type[Model],
    hyperparameters: dict[str, Any],
    split: EvaluationSplit,
    n_items: int,
    *,
    extended: bool = False,
) -> dict[str, float]:
    """The service's metrics (or, `extended`, with our recall and hit rate) on held-out users."""
    if len(split.test_users) == 0:
        raise TrainingError("No user has enough interactions to hold out for evaluation.")
    model = build(model_class, hyperparameters).fit(split.train)
    recommended, _ = model.recommend(split.test_users, TOP_K, exclude=split.train.matrix())
    measure = extended_metrics if extended else ranking_metrics
    return measure(recommended, split.truth, n_items)


def _tune(
    version_arn: str,
    recipe: catalog.Recipe,
    config: dict[str, Any],
    data: InteractionData,
    fixed: dict[str, Any],
    trials: list[dict[str, Any]],
) -> dict[str, Any]:
    """Search the tunable hyperparameters on a validation split carved out of training users."""
    import optuna

    hpo = config.get("hpoConfig") or {}
    ranges = hpo.get("algorithmHyperParameterRanges") or {}
    given = set((config.get("algorithmHyperParameters") or {}).keys())
    budget = int((hpo.get("hpoResourceConfig") or {}).get("maxNumberOfTrainingJobs") or 0)
    budget = budget or DEFAULT_MAX_TRAINING_JOBS
    metric = (hpo.get("hpoObjective") or {}).get("metricName") or DEFAULT_HPO_METRIC
    space = catalog.search_space(recipe, ranges, fixed=given)
    if not space:
        return fixed
    model_class = catalog.model_class(recipe)
    test = evaluation_split(data, seed=SEED)
    validation = validation_split(test.train, seed=SEED + 1, exclude_users=test.test_users)

    def objective(trial: Any) -> float:
        candidate = dict(fixed)
        for name, (kind, low_or_values, high) in space.items():
            if kind == "integer":
                candidate[name] = trial.suggest_int(name, int(low_or_values), int(high))
            elif kind == "continuous":
                candidate[name] = trial.suggest_float(name, float(low_or_values), float(high))
            else:
                candidate[name] = catalog.convert(
                    recipe, name, trial.suggest_categorical(name, list(low_or_values))
                )
        started = time.monotonic()
        score = _evaluate(model_class, candidate, validation, data.n_items).get(metric, 0.0)
        trials.append(_trial(recipe, candidate, metric, score, started, "hpo"))
        _progress(
            version_arn,
            0.1 + 0.3 * (trial.number + 1) / budget,
            f"HPO trial {trial.number + 1}/{budget}: {metric}={score:.4f} {candidate}",
        )
        return score

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=SEED))
    study.optimize(objective, n_trials=budget)
    best = dict(fixed)
    for name, value in study.best_params.items():
        best[name] = catalog.convert(recipe, name, value) if isinstance(value, str) else value
    return best


def _auto_ml(
    version_arn: str, config: dict[str, Any], data: InteractionData, trials: list[dict[str, Any]]
) -> tuple[catalog.Recipe, dict[str, Any]]:
    """Train each candidate recipe (tuned) and keep the best by the AutoML metric."""
    auto_ml = config.get("autoMLConfig") or {}
    metric = auto_ml.get("metricName") or DEFAULT_AUTOML_METRIC
    candidates = [catalog.get_recipe(arn) for arn in auto_ml.get("recipeList") or []] or [
        recipe
        for recipe in catalog.RECIPES.values()
        if recipe.recipe_type == "USER_PERSONALIZATION" and recipe.model is not None
    ]
    test = evaluation_split(data, seed=SEED)
    validation = validation_split(test.train, seed=SEED + 1, exclude_users=test.test_users)
    best: tuple[float, catalog.Recipe, dict[str, Any]] | None = None
    for recipe in candidates:
        hyperparameters = catalog.resolve_hyperparameters(recipe, None, None)
        hyperparameters = _tune(version_arn, recipe, {}, data, hyperparameters, trials)
        started = time.monotonic()
        score = _evaluate(catalog.model_class(recipe), hyperparameters, validation, data.n_items)[
            metric
        ]
        trials.append(_trial(recipe, hyperparameters, metric, score, started, "automl"))
        _progress(version_arn, 0.35, f"AutoML: {recipe.name} {metric}={score:.4f}")
        if best is None or score > best[0]:
            best = (score, recipe, hyperparameters)
    assert best is not None
    return best[1], best[2]


def _trial(
    recipe: catalog.Recipe,
    hyperparameters: dict[str, Any],
    metric: str,
    value: float,
    started: float,
    kind: str,
) -> dict[str, Any]:
    return {
        "kind": kind,  # "hpo": one HPO trial; "automl": a tuned recipe compared by AutoML
        "recipeArn": recipe.arn,
        "hyperparameters": _as_strings(hyperparameters),
        "metric": metric,
        "value": value,
        "seconds": time.monotonic() - started,
    }


def _as_strings(hyperparameters: dict[str, Any]) -> dict[str, str]:
    return {
        name: (str(value).lower() if isinstance(value, bool) else str(value))
        for name, value in hyperparameters.items()
    }


def _progress(version_arn: str, fraction: float, message: str) -> None:
    log.info("%s: %3.0f%% %s", version_arn, 100 * fraction, message)
