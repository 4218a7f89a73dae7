"""Train a next-best-action solution version (recipe type PERSONALIZED_ACTIONS).

Reads the dataset group's Actions and Action_Interactions data beside the item interactions,
evaluates on the newest action interactions (held out by time), fits the deployed model on
everything, and writes beside it what serving needs: the vocabularies (the model's "items"
are the actions) and each user's action history.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from openpersonalize.data.interactions import InteractionData
from openpersonalize.recipes import catalog
from openpersonalize.recipes.next_best_action import (
    TAKEN,
    ActionData,
    NextBestActionModel,
    build_action_data,
)
from openpersonalize.training import artifacts
from openpersonalize.training.train import TrainingError, TrainingInput

#: The service needs this many item interactions to train aws-next-best-action.
MIN_ITEM_INTERACTIONS = 1000
#: Newest share of the action interactions evaluation holds out.
HOLDOUT_SHARE = 0.1
#: users x (actions * 3): the newest TIMESTAMP of each (action, event kind) per user.
ACTION_HISTORY = "action_history.npz"
KINDS = 3


def train_actions(training: TrainingInput, recipe: catalog.Recipe, output: Path) -> dict[str, Any]:
    """Fit and save into `output`; TrainingError says why when the data cannot do."""
    version = training.version.attributes
    group = version["datasetGroupArn"]
    config = version.get("solutionConfig") or {}
    hyperparameters = catalog.resolve_hyperparameters(
        recipe,
        config.get("algorithmHyperParameters"),
        config.get("featureTransformationParameters"),
    )
    actions, actions_schema = training.tables.get("Actions", (None, None))
    if actions is None or actions_schema is None:
        raise TrainingError(
            f"The recipe {recipe.name} needs actions: the dataset group {group} has no Actions "
            "data (import it, or add actions with PutActions)."
        )
    if training.data.n_events < MIN_ITEM_INTERACTIONS:
        raise TrainingError(
            f"The recipe {recipe.name} needs at least {MIN_ITEM_INTERACTIONS} item "
            f"interactions; the Interactions data of {group} has {training.data.n_events}."
        )
    events, _ = training.tables.get("Action_Interactions", (None, None))
    categorical = {f.name for f in actions_schema.fields if f.categorical}
    data = build_action_data(training.data, actions, categorical, events)
    if data.n_actions == 0:
        raise TrainingError(f"The Actions data of {group} holds no action with an ACTION_ID.")

    model = NextBestActionModel(**hyperparameters).fit(data)
    metrics = evaluate(data, hyperparameters) if model.scored_ else {}
    model.save(output / artifacts.MODEL)
    artifacts.save(_as_interactions(data), output)
    save_history(data, output)
    return {
        "metrics": metrics,
        "extendedMetrics": {
            **metrics,
            "actions": float(data.n_actions),
            "action_interactions": float(len(data.users)),
            "scored": float(model.scored_),
        },
        "recipeArn": recipe.arn,
        "hyperparameters": {name: str(value) for name, value in hyperparameters.items()},
    }


def evaluate(data: ActionData, hyperparameters: dict[str, Any]) -> dict[str, float]:
    """AUC and log loss of TAKEN on the newest action interactions, by a model fitted on the
    older ones (empty when the older ones are too few for scores, or one class is missing)."""
    if len(data.timestamps) < 2:
        return {}
    cut = np.quantile(data.timestamps, 1.0 - HOLDOUT_SHARE)
    test = data.timestamps > cut
    model = NextBestActionModel(**hyperparameters).fit(data.subset(~test))
    truth = data.kinds[test] == TAKEN
    if not model.scored_ or truth.all() or not truth.any():
        return {}
    # Each held-out event is scored with the user's record before the cut, as serving would.
    users, actions = data.users[test], data.actions[test]
    predicted = np.empty(len(users), dtype=np.float64)
    for user in np.unique(users):
        rows = users == user
        predicted[rows] = model.score(np.array([user]))[0, actions[rows]]
    return {"area_under_curve": _auc(predicted, truth), "log_loss": _log_loss(predicted, truth)}


def _auc(scores: np.ndarray, truth: np.ndarray) -> float:
    """The probability that a TAKEN event outscores a declined one (ties count half)."""
    order = np.argsort(scores, kind="stable")
    ranks = np.empty(len(scores), dtype=np.float64)
    sorted_scores = scores[order]
    # Average ranks over ties.
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    average = first + (counts - 1) / 2.0 + 1.0
    ranks[order] = np.repeat(average, counts)
    positives = int(truth.sum())
    negatives = len(truth) - positives
    return float((ranks[truth].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def _log_loss(scores: np.ndarray, truth: np.ndarray) -> float:
    p = np.clip(scores, 1e-7, 1 - 1e-7)
    return float(-np.mean(np.where(truth, np.log(p), np.log(1 - p))))


def _as_interactions(data: ActionData) -> InteractionData:
    """The action interactions in the shape `artifacts.save` writes: users x actions."""
    return InteractionData(
        user_ids=data.user_ids,
        item_ids=data.action_ids,
        users=data.users,
        items=data.actions,
        timestamps=data.timestamps,
        weights=np.ones(len(data.users), dtype=np.float32),
    )


def save_history(data: ActionData, output: Path) -> None:
    """The newest timestamp of each user's (action, kind): filters on
    Action_Interactions.EVENT_TYPE and REPEAT_FREQUENCY read it."""
    columns = data.actions.astype(np.int64) * KINDS + data.kinds
    shape = (len(data.user_ids), data.n_actions * KINDS)
    # A sparse matrix would sum duplicates: keep only the newest event of each cell.
    order = np.lexsort((-data.timestamps, columns, data.users))
    first = np.ones(len(order), dtype=bool)
    keys = data.users[order].astype(np.int64) * shape[1] + columns[order]
    first[1:] = keys[1:] != keys[:-1]
    chosen = order[first]
    newest = sp.csr_matrix(
        (data.timestamps[chosen].astype(np.float64), (data.users[chosen], columns[chosen])),
        shape=shape,
    )
    sp.save_npz(output / ACTION_HISTORY, newest, compressed=False)


def load_history(directory: Path) -> sp.csr_matrix:
    return sp.load_npz(directory / ACTION_HISTORY).tocsr()


__all__ = ["ACTION_HISTORY", "KINDS", "load_history", "save_history", "train_actions"]
