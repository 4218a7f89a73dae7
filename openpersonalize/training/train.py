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
import tempfile
import traceback
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pyarrow as pa
from sqlalchemy import select

from openpersonalize.config import Settings
from openpersonalize.context import Context
from openpersonalize.data import streamed as streamed_data
from openpersonalize.data.interactions import InteractionData
from openpersonalize.data.schema import Schema
from openpersonalize.data.splits import EvaluationSplit, evaluation_split
from openpersonalize.data.training_data import TrainingDataError, load_training_data
from openpersonalize.metrics import segments
from openpersonalize.metrics.ranking import (
    METRIC_NAMES,
    average_rewards,
    extended_metrics,
    ranking_metrics,
)
from openpersonalize.recipes import catalog
from openpersonalize.recipes.base import Model
from openpersonalize.recipes.objective import Objective
from openpersonalize.resources import lifecycle, schemas
from openpersonalize.store.blobs import BlobStore
from openpersonalize.store.database import ResourceRow
from openpersonalize.training import artifacts

log = logging.getLogger("openpersonalize.training")

TOP_K = 25
SEED = 0
# What a recipe that trains on the Items alone gets when the group has no interactions.
_NO_INTERACTIONS = pa.table(
    {
        "USER_ID": pa.array([], pa.string()),
        "ITEM_ID": pa.array([], pa.string()),
        "TIMESTAMP": pa.array([], pa.int64()),
    }
)


class TrainingError(Exception):
    """A reason training cannot go on, worded for the version's failureReason."""


@dataclass
class TrainingInput:
    """Everything training needs, read from the database in one go."""

    version: ResourceRow
    data: InteractionData
    previous: ResourceRow | None  # the solution's latest ACTIVE version (what UPDATE refreshes)
    # Every dataset's data and schema by dataset type (next best action reads Actions ones).
    tables: dict[str, tuple[pa.Table | None, Schema | None]] = field(default_factory=dict)


def train_process_main(settings: Settings, version_arn: str, model_key: str) -> None:
    """Entry point of the training task (a process or a Ray task): writes the model, and
    result.json or failure.txt, at `model_key` in the blob store."""
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s [train] %(message)s",
    )
    with tempfile.TemporaryDirectory(prefix="openpersonalize-train-") as cache:
        blobs = BlobStore.for_settings(settings, cache_dir=Path(cache))
        with blobs.writing(model_key) as output:
            (output / "pid").write_text(str(os.getpid()))
            try:
                context = replace(Context.open(settings), blobs=blobs)
                result = train_solution_version(context, version_arn, output, model_key)
                (output / "result.json").write_text(json.dumps(result))
            except (TrainingError, TrainingDataError) as error:
                (output / "failure.txt").write_text(str(error))
                log.error("%s: training failed: %s", version_arn, error)
            except Exception as error:  # an unexpected failure still gets a reason, never a hang
                (output / "failure.txt").write_text(
                    f"Training failed: {type(error).__name__}: {error}"
                )
                log.error("%s: training failed\n%s", version_arn, traceback.format_exc())


def train_solution_version(
    context: Context, version_arn: str, output: Path, model_key: str
) -> dict[str, Any]:
    """Train into the local directory `output`, which ends up at `model_key` in the blob store."""
    training = load_input(context, version_arn)
    version = training.version.attributes
    config = version.get("solutionConfig") or {}
    data = training.data
    recipe_arn = version.get("recipeArn")
    use_case = catalog.get_recipe(recipe_arn).use_case if recipe_arn else None
    if use_case is not None and use_case.needs_items and data.item_metadata is None:
        raise TrainingError(
            f"The use case {recipe_arn} trains on item metadata too, but the dataset "
            f"group {version['datasetGroupArn']} has no Items data: import it first."
        )
    _progress(
        version_arn, 0.1, f"{data.n_events} events, {data.n_users} users, {data.n_items} items"
    )
    if version.get("trainingMode") == "UPDATE":
        return _refresh(context, version_arn, training, output)
    if recipe_arn and catalog.get_recipe(recipe_arn).recipe_type == "PERSONALIZED_ACTIONS":
        from openpersonalize.training.actions import train_actions

        return train_actions(training, catalog.get_recipe(recipe_arn), output)
    from openpersonalize.training import hpo  # builds on this module

    result: dict[str, Any] = {}
    search = None
    if version.get("performAutoML") or version.get("performHPO"):
        recipes = (
            hpo.auto_ml_candidates(config)
            if version.get("performAutoML")
            else [catalog.get_recipe(version["recipeArn"])]
        )
        search = hpo.Search.start(
            context, version_arn, config, data, recipes, output=output, output_key=model_key
        )
    if version.get("performAutoML"):
        assert search is not None
        recipe, hyperparameters = hpo.auto_ml(search, config)
        result["autoMLResult"] = {"bestRecipeArn": recipe.arn}
        result["tunedHPOParams"] = {"algorithmHyperParameters": _as_strings(hyperparameters)}
    else:
        recipe = catalog.get_recipe(version["recipeArn"])
        hyperparameters = catalog.resolve_hyperparameters(
            recipe,
            config.get("algorithmHyperParameters"),
            config.get("featureTransformationParameters"),
        )
        if search is not None:
            hyperparameters = hpo.tune(search, recipe, config, hyperparameters)
            result["tunedHPOParams"] = {"algorithmHyperParameters": _as_strings(hyperparameters)}
    if search is not None:
        # Every HPO trial and AutoML candidate, for `openpersonalize trials`; their compute
        # counts in trainingHours however many ran at once.
        result["trials"] = search.trials
        result["trialSeconds"] = search.trial_seconds
        result["searchSeconds"] = search.seconds
        search.remove_inputs()
    model_class = catalog.model_class(recipe)
    objective = _objective(data, config)
    if recipe.recipe_type == "USER_SEGMENTATION":
        train, test_users, test_items = segments.held_out_newest(data)
        _progress(
            version_arn, 0.4, f"evaluating {recipe.name} on {len(test_items)} held-out events"
        )
        evaluation = segments.segment_metrics(
            build(model_class, hyperparameters).fit(train), train, test_users, test_items
        )
        result["metrics"] = dict(evaluation)
    else:
        split = evaluation_split(data, seed=SEED)
        _progress(
            version_arn, 0.4, f"evaluating {recipe.name} on {len(split.test_users)} test users"
        )
        from openpersonalize.resources.solutions import ITEMS_ONLY_RECIPES

        if len(split.test_users) == 0 and recipe.name in ITEMS_ONLY_RECIPES:
            evaluation = {}  # trained on Items alone: no interactions to measure against
        else:
            evaluation = _evaluate(
                model_class,
                hyperparameters,
                split,
                data.n_items,
                extended=True,
                objective=objective,
            )
        # GetSolutionMetrics reports exactly the service's metrics; ours stay for
        # `openpersonalize metrics`.
        result["metrics"] = {
            name: evaluation[name]
            for name in (*METRIC_NAMES, "average_rewards_at_k")
            if name in evaluation
        }
    result["extendedMetrics"] = evaluation
    _progress(version_arn, 0.7, "fitting the deployed model on all data")
    model = build(model_class, hyperparameters).fit(data)
    model.save(output / "model")
    if objective is not None:
        objective.save(output)  # serving re-ranks with it
    artifacts.save(data, output)
    result["recipeArn"] = recipe.arn
    result["hyperparameters"] = _as_strings(hyperparameters)
    _progress(version_arn, 1.0, f"done: {json.dumps(result['metrics'])}")
    return result


def load_input(context: Context, version_arn: str) -> TrainingInput:
    """The version's record, and the dataset group's data: imported files plus streamed records."""
    from openpersonalize.resources.solutions import ITEMS_ONLY_RECIPES, datasets_of

    with context.database.transaction() as session:
        version = lifecycle.find(session, version_arn)
        if version is None:
            raise TrainingError(f"The solution version {version_arn} no longer exists.")
        group_arn = version.attributes["datasetGroupArn"]
        tables: dict[str, tuple[pa.Table | None, Schema | None]] = {}
        for dataset_type, dataset in datasets_of(session, group_arn).items():
            schema_row = lifecycle.get(session, schemas.KIND, dataset.attributes["schemaArn"])
            schema = schemas.load(schema_row)
            files = list(dataset.attributes.get("files", []))
            table = streamed_data.dataset_table(
                context.blobs, session, dataset.arn, dataset_type, files, schema
            )
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
    recipe_arn = version.attributes.get("recipeArn")
    items_only = bool(recipe_arn) and catalog.get_recipe(recipe_arn).name in ITEMS_ONLY_RECIPES
    if items_only and (interactions is None or interactions.num_rows == 0):
        interactions, interactions_schema = _NO_INTERACTIONS, None
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
        # The Items are the training data there; events only feed the popularity factor.
        **({"min_interactions": 0, "min_users_with_two": 0} if items_only else {}),
    )
    return TrainingInput(version=version, data=data, previous=previous, tables=tables)


def _refresh(
    context: Context, version_arn: str, training: TrainingInput, output: Path
) -> dict[str, Any]:
    """Training mode UPDATE: refresh the latest ACTIVE model with new users, items and events."""
    previous = training.previous
    if previous is None or not previous.attributes.get("modelKey"):
        raise TrainingError("trainingMode UPDATE needs an ACTIVE solution version to refresh.")
    source = context.blobs.local_path(previous.attributes["modelKey"])
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
    objective: Objective | None = None,
) -> dict[str, float]:
    """The service's metrics (or, `extended`, with our recall and hit rate) on held-out users;
    with an optimization objective, recommendations are re-ranked by it and
    average_rewards_at_k is added."""
    if len(split.test_users) == 0:
        raise TrainingError("No user has enough interactions to hold out for evaluation.")
    model = build(model_class, hyperparameters).fit(split.train)
    recommended, _ = model.recommend(
        split.test_users,
        TOP_K,
        exclude=split.train.matrix(),
        adjust=objective.adjust if objective is not None else None,
    )
    measure = extended_metrics if extended else ranking_metrics
    metrics = measure(recommended, split.truth, n_items)
    if objective is not None:
        metrics["average_rewards_at_k"] = average_rewards(
            recommended, split.truth, objective.rewards
        )
    return metrics


def _objective(data: InteractionData, config: dict[str, Any]) -> Objective | None:
    """The solution's optimizationObjective over the item vocabulary, if it has one."""
    wanted = config.get("optimizationObjective") or {}
    column = wanted.get("itemAttribute")
    if not column:
        return None
    if data.item_metadata is None or column not in data.item_metadata.column_names:
        raise TrainingError(
            f"optimizationObjective.itemAttribute {column!r} is not among the Items columns "
            "used for training (is it excluded by trainingDataConfig?)."
        )
    return Objective.from_metadata(
        data.item_metadata, column, wanted.get("objectiveSensitivity") or "LOW"
    )


def _as_strings(hyperparameters: dict[str, Any]) -> dict[str, str]:
    return {
        name: (str(value).lower() if isinstance(value, bool) else str(value))
        for name, value in hyperparameters.items()
    }


def _progress(version_arn: str, fraction: float, message: str) -> None:
    log.info("%s: %3.0f%% %s", version_arn, 100 * fraction, message)
