"""GetActionRecommendations: the actions a user is most likely to take, from a campaign that
deploys an aws-next-best-action solution version.

A request costs the campaign's cached record, the Actions data aligned to the model (cached
for a few seconds, so PutActions changes such as a new expiration apply within seconds), one
indexed read of the user's streamed action interactions, and numpy over at most 1000
actions. Left out before ranking: expired actions (expiration timestamp before now), actions
the user interacted with within their REPEAT_FREQUENCY days, and what the filter excludes.
Ties go to the higher VALUE (the model's action codes are in VALUE order).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import scipy.sparse as sp
from sqlalchemy import select

from openpersonalize.context import Context
from openpersonalize.data import streamed
from openpersonalize.data.schema import ACTION_EVENT_TYPES, action_event_type
from openpersonalize.errors import InvalidInputException
from openpersonalize.filters.compiled import CompiledFilter, UserContext
from openpersonalize.filters.expression import parse_filter_values
from openpersonalize.recipes.next_best_action import NextBestActionModel
from openpersonalize.resources import lifecycle, schemas, solutions
from openpersonalize.serving import engine
from openpersonalize.store.database import EventRow
from openpersonalize.training.actions import KINDS, load_history

RECIPE_TYPE = "PERSONALIZED_ACTIONS"
DEFAULT_RESULTS, MAX_RESULTS = 5, 100
FILTER_EVENTS_PER_TYPE = 300  # the service's quota of action interactions a filter considers
STREAMED_EVENTS = FILTER_EVENTS_PER_TYPE * KINDS  # the user's newest streamed ones read
EXPIRATION_COLUMNS = ("EXPIRATION_TIMESTAMP", "ACTION_EXPIRATION_TIMESTAMP")
_KIND = {name: code for code, name in enumerate(ACTION_EVENT_TYPES)}  # as training codes them


@dataclass
class ActionCatalog:
    """The Actions data of a deployed model's dataset group, aligned to its action codes."""

    filter_data: engine.ItemCatalog  # actions as the "items", the schemas and Users rows
    expiration: np.ndarray  # float64 epoch seconds per action code (nan: never expires)
    repeat_seconds: np.ndarray  # float64 REPEAT_FREQUENCY in seconds (nan: no limit)
    interactions_arn: str | None  # the Action_Interactions dataset


_CATALOGS = engine._Ttl(engine.CACHE_SECONDS * 5)
_FILTERS = engine._Ttl(engine.CACHE_SECONDS * 5)
_HISTORIES = engine._Lru(capacity=8)  # each model's users' action history (training data)


def get_action_recommendations(context: Context, body: dict[str, Any]) -> dict[str, Any]:
    if not body.get("campaignArn"):
        raise InvalidInputException("campaignArn is required.")
    campaign = engine._campaign(context, body["campaignArn"])
    deployed = engine.MODELS.get(context, campaign["servingVersionArn"])
    if deployed.recipe.recipe_type != RECIPE_TYPE:
        raise InvalidInputException(
            f"The campaign {body['campaignArn']} deploys a {deployed.recipe.recipe_type} "
            f"solution version ({deployed.recipe.name}); GetActionRecommendations needs one of "
            "the aws-next-best-action recipe (call GetRecommendations for this campaign)."
        )
    k = body.get("numResults", DEFAULT_RESULTS)
    if k > MAX_RESULTS:
        raise InvalidInputException(f"numResults must be at most {MAX_RESULTS}, not {k}.")
    model = deployed.model
    assert isinstance(model, NextBestActionModel)
    actions = _catalog(context, deployed)
    user_id = body.get("userId")
    user = deployed.artifacts.user_index.get(user_id, -1) if user_id else -1
    history = _user_history(context, deployed, actions, user, user_id)

    now = context.now()
    allowed = ~(actions.expiration < now)  # nan (no expiration) compares false
    allowed &= ~(now - history.newest() < actions.repeat_seconds)
    if body.get("filterArn"):
        compiled = _compiled_filter(context, body["filterArn"], deployed, actions)
        user_context = UserContext(
            recent_events=history.recent_events(),
            metadata=actions.filter_data.users.get(user_id or ""),
        )
        allowed &= compiled.mask(user_context, parse_filter_values(body.get("filterValues")))
    scores = model.score_user(user, history.streamed_taken, history.streamed_declined)
    chosen = engine._top(scores, engine.codes_of(allowed), k)
    action_ids = deployed.artifacts.item_ids
    return {
        "actionList": [
            {"actionId": str(action_ids[code]), "score": round(float(scores[code]), 7)}
            for code in chosen
        ],
        "recommendationId": engine._recommendation_id(body),
    }


@dataclass
class _History:
    """One user's action interactions: training-time ones and those streamed since."""

    newest_by_kind: np.ndarray  # (n_actions, KINDS) newest timestamp, -inf where none
    streamed_taken: np.ndarray  # counts per action of TAKEN events streamed since training
    streamed_declined: np.ndarray

    def newest(self) -> np.ndarray:
        """The user's last interaction with each action (-inf where none)."""
        return self.newest_by_kind.max(axis=1)

    def recent_events(self) -> list[tuple[int, str]]:
        """(action code, event type) of the newest FILTER_EVENTS_PER_TYPE of each type."""
        out: list[tuple[int, str]] = []
        for kind, name in enumerate(ACTION_EVENT_TYPES):
            stamps = self.newest_by_kind[:, kind]
            codes = np.flatnonzero(stamps > -np.inf)
            codes = codes[np.argsort(-stamps[codes], kind="stable")][:FILTER_EVENTS_PER_TYPE]
            out.extend((int(code), name) for code in codes)
        return out


def _user_history(
    context: Context,
    deployed: engine.Deployed,
    actions: ActionCatalog,
    user: int,
    user_id: str | None,
) -> _History:
    n_actions = deployed.model.n_items_
    newest = np.full((n_actions, KINDS), -np.inf)
    known = _histories(deployed)
    if 0 <= user < known.shape[0]:
        start, end = known.indptr[user], known.indptr[user + 1]
        columns = known.indices[start:end]
        newest[columns // KINDS, columns % KINDS] = known.data[start:end]
    taken = np.zeros(n_actions)
    declined = np.zeros(n_actions)
    if user_id and actions.interactions_arn:
        index = deployed.artifacts.item_index
        with context.database.snapshot() as session:
            rows = session.execute(
                select(
                    EventRow.item_id, EventRow.event_type, EventRow.timestamp, EventRow.received_at
                )
                .where(
                    EventRow.dataset_arn == actions.interactions_arn,
                    EventRow.user_id == user_id,
                )
                .order_by(EventRow.timestamp.desc())
                .limit(STREAMED_EVENTS)
            ).all()
        for action_id, event_type, stamp, received in rows:
            code = index.get(action_id or "", -1)
            kind = _KIND.get(action_event_type(event_type) or "", -1)
            if code < 0 or kind < 0:
                continue  # an action the model does not consider
            newest[code, kind] = max(newest[code, kind], stamp)
            if received > deployed.trained_at:  # training counted the others already
                (taken if kind == _KIND["TAKEN"] else declined)[code] += 1
    return _History(newest, taken, declined)


def _histories(deployed: engine.Deployed) -> sp.csr_matrix:
    directory: Path = deployed.directory
    history: sp.csr_matrix = _HISTORIES.get(deployed.version_arn, lambda: load_history(directory))
    return history


def _catalog(context: Context, deployed: engine.Deployed) -> ActionCatalog:
    catalog: ActionCatalog = _CATALOGS.get(
        ("actions", deployed.version_arn), lambda: _load_catalog(context, deployed)
    )
    return catalog


def _load_catalog(context: Context, deployed: engine.Deployed) -> ActionCatalog:
    found: dict[str, pa.Table | None] = {}
    filter_data = engine.ItemCatalog(item_metadata=None)
    interactions_arn = None
    with context.database.snapshot() as session:
        for dataset_type, dataset in solutions.datasets_of(
            session, deployed.dataset_group_arn
        ).items():
            schema = schemas.load(
                lifecycle.get(session, schemas.KIND, dataset.attributes["schemaArn"])
            )
            filter_data.schemas[dataset_type] = schema
            if dataset_type == "Action_Interactions":
                interactions_arn = dataset.arn
            if dataset_type in ("Actions", "Users"):
                found[dataset_type] = streamed.dataset_table(
                    context.blobs,
                    session,
                    dataset.arn,
                    dataset_type,
                    list(dataset.attributes.get("files", [])),
                    schema,
                )
                if dataset_type == "Actions":
                    filter_data.categorical = {f.name for f in schema.fields if f.categorical}
    n_actions = len(deployed.artifacts.item_ids)
    expiration = np.full(n_actions, np.nan)
    repeat = np.full(n_actions, np.nan)
    table = found.get("Actions")
    if table is not None:
        aligned = engine._align(table, "ACTION_ID", deployed.artifacts.item_ids)
        filter_data.item_metadata = aligned
        for column in EXPIRATION_COLUMNS:
            if column in aligned.column_names:
                expiration = np.fmin(expiration, _floats(aligned, column))
        if "REPEAT_FREQUENCY" in aligned.column_names:
            repeat = _floats(aligned, "REPEAT_FREQUENCY") * 86_400
    users = found.get("Users")
    if users is not None:
        filter_data.users = {row["USER_ID"]: row for row in users.to_pylist()}
    return ActionCatalog(filter_data, expiration, repeat, interactions_arn)


def _floats(table: pa.Table, column: str) -> np.ndarray:
    values = pc.cast(table.column(column), pa.float64()).to_numpy(zero_copy_only=False)
    return np.asarray(values, dtype=np.float64)


def _compiled_filter(
    context: Context, filter_arn: str, deployed: engine.Deployed, actions: ActionCatalog
) -> CompiledFilter:
    def load() -> CompiledFilter:
        parsed = engine._parsed_filter(
            context, filter_arn, deployed, actions.filter_data, "the campaign"
        )
        return CompiledFilter(
            parsed,
            deployed.artifacts.item_ids,
            actions.filter_data.item_metadata,
            actions.filter_data.categorical,
            target="ActionID",
        )

    compiled: CompiledFilter = _FILTERS.get((filter_arn, deployed.version_arn), load)
    return compiled
