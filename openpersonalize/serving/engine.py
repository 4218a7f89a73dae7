"""The hot path: deployed models in memory, and GetRecommendations / GetPersonalizedRanking.

A request costs one short metadata read (the campaign, cached for a second),
one indexed read of the user's streamed events, and numpy: the user's score
row, masks for exclusions and filters, and `argpartition` for the top k.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import select

from openpersonalize.context import Context
from openpersonalize.data import streamed
from openpersonalize.data.schema import Schema, event_type_key
from openpersonalize.errors import (
    InvalidInputException,
    ResourceNotFoundException,
    ServiceError,
)
from openpersonalize.filters.compiled import CompiledFilter, UserContext
from openpersonalize.filters.expression import (
    Filter,
    parse_filter,
    parse_filter_values,
    resolve_fields,
)
from openpersonalize.metrics import attribution
from openpersonalize.recipes import catalog
from openpersonalize.recipes.als import ALSModel
from openpersonalize.recipes.base import Model
from openpersonalize.recipes.objective import Objective
from openpersonalize.recipes.semantic_similarity import SemanticSimilarityModel
from openpersonalize.recipes.trending import TrendingNowModel
from openpersonalize.resources import (
    campaigns,
    data_deletion_jobs,
    filters,
    lifecycle,
    recommenders,
    schemas,
    solutions,
)
from openpersonalize.serving import history
from openpersonalize.serving.candidates import MIN_ITEMS as INDEXED_CATALOG
from openpersonalize.serving.candidates import ClusteredItems
from openpersonalize.serving.event_users import EventUsers
from openpersonalize.store.database import EventRow, ResourceRow
from openpersonalize.training import artifacts

MAX_RESULTS, MAX_RESULTS_WITH_METADATA = 500, 50
RECENT_EVENTS = 100  # the service looks at the 100 most recent interactions per user
CACHE_SECONDS = 1.0  # how stale a campaign's or catalog's metadata may be on the hot path
DEFAULT_EXPLORATION_WEIGHT, DEFAULT_EXPLORATION_AGE_DAYS = 0.3, 30.0


@dataclass
class Deployed:
    """One solution version, loaded: the model, its vocabularies and what users have seen."""

    version_arn: str
    recipe: catalog.Recipe
    model: Model
    artifacts: artifacts.Artifacts
    dataset_group_arn: str
    cold_items: np.ndarray  # item codes nobody interacted with in training (for exploration)
    directory: Path
    trained_at: float  # when the version finished training: later events are "streamed"
    created_at: float  # when it was asked for: data deleted after this may be in the model
    # Large factor models get an IVF index, built in the background after loading.
    clustered_items: ClusteredItems | None = None
    objective: Objective | None = None  # the solution's optimizationObjective, if any


class _Lru:
    """The `capacity` most recently used values by key; `load` builds a missing one (outside
    the lock, so one slow load does not hold up the keys already loaded)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._values: OrderedDict[Any, Any] = OrderedDict()
        self._lock = threading.Lock()

    def holds(self, key: Any) -> bool:
        with self._lock:
            return key in self._values

    def get(self, key: Any, load: Callable[[], Any]) -> Any:
        with self._lock:
            if key in self._values:
                self._values.move_to_end(key)
                return self._values[key]
        value = load()
        with self._lock:
            self._values[key] = value
            while len(self._values) > self.capacity:
                self._values.popitem(last=False)
        return value


class ModelCache:
    """Loaded models by solution version ARN (a few at a time; arrays are memory-mapped)."""

    def __init__(self, capacity: int = 8) -> None:
        self._models = _Lru(capacity)

    @property
    def capacity(self) -> int:
        return self._models.capacity

    def get(self, context: Context, version_arn: str) -> Deployed:
        deployed: Deployed = self._models.get(version_arn, lambda: self._load(context, version_arn))
        return deployed

    def __contains__(self, version_arn: str) -> bool:
        return self._models.holds(version_arn)

    def _load(self, context: Context, version_arn: str) -> Deployed:
        with context.database.snapshot() as session:
            version = lifecycle.find(session, version_arn)
            if version is None or not version.attributes.get("modelKey"):
                raise ResourceNotFoundException(f"No trained model for {version_arn}.")
            attributes = dict(version.attributes)
        directory = context.blobs.local_path(attributes["modelKey"])
        recipe_arn = attributes.get("recipeArn") or _trained_recipe(directory)
        model = Model.load(directory / artifacts.MODEL)
        loaded = artifacts.load(directory)
        interactions_per_item = np.asarray(loaded.seen.getnnz(axis=0)).ravel()
        deployed = Deployed(
            version_arn=version_arn,
            recipe=catalog.get_recipe(recipe_arn),
            model=model,
            artifacts=loaded,
            dataset_group_arn=attributes["datasetGroupArn"],
            cold_items=np.flatnonzero(interactions_per_item == 0).astype(np.int32),
            directory=directory,
            trained_at=float(version.updated_at),
            created_at=float(version.created_at),
            objective=Objective.load(directory),
        )
        if isinstance(model, ALSModel) and model.n_items_ >= INDEXED_CATALOG:
            # Until the index is ready (seconds for 100k items) requests score every item.
            threading.Thread(target=_index_items, args=(deployed,), daemon=True).start()
        return deployed


def _index_items(deployed: Deployed) -> None:
    model = deployed.model
    assert isinstance(model, ALSModel)
    deployed.clustered_items = ClusteredItems(np.asarray(model.item_factors_))


def _trained_recipe(directory: Path) -> str:
    import json

    return json.loads((directory / "result.json").read_text())["recipeArn"]


MODELS = ModelCache()


class _Ttl:
    """A small time-bounded cache for metadata the hot path reads on every request.

    An expired entry is still served while one background thread reloads it, so no request
    waits for a reload (only the very first load of a key is paid by a request)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._entries: dict[Any, tuple[float, Any]] = {}
        self._reloading: set[Any] = set()
        self._lock = threading.Lock()

    def get(self, key: Any, load: Any) -> Any:
        now = time.monotonic()
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and now - entry[0] >= self.seconds and key not in self._reloading:
                self._reloading.add(key)
                threading.Thread(target=self._reload, args=(key, load), daemon=True).start()
        if entry is not None:
            return entry[1]
        value = load()
        with self._lock:
            self._entries[key] = (time.monotonic(), value)
        return value

    def _reload(self, key: Any, load: Any) -> None:
        try:
            value = load()
            with self._lock:
                self._entries[key] = (time.monotonic(), value)
        except Exception:  # e.g. the campaign was deleted: forget it, the next request says so
            with self._lock:
                self._entries.pop(key, None)
        finally:
            with self._lock:
                self._reloading.discard(key)


@dataclass
class ItemCatalog:
    """The Items (and Users) data of a dataset group, aligned to one model's item codes."""

    item_metadata: pa.Table | None
    categorical: set[str] = field(default_factory=set)
    creation: np.ndarray | None = None  # CREATION_TIMESTAMP per item code (nan where unknown)
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    schemas: dict[str, Schema] = field(default_factory=dict)
    interactions_arn: str | None = None
    interactions_files: tuple[str, ...] = ()  # the imported Interactions data


_CAMPAIGNS = _Ttl(CACHE_SECONDS)
_CATALOGS = _Ttl(CACHE_SECONDS * 5)
_FILTERS = _Ttl(CACHE_SECONDS * 5)
_TRENDS = _Ttl(CACHE_SECONDS * 5)
_DELETED_USERS = _Ttl(CACHE_SECONDS)
# Recipes that answer without a user: the same popular or trending list for everyone.
POPULAR_ITEMS_RECIPES = ("aws-popularity-count", "aws-trending-now")
# Campaigns of these return item metadata without enableMetadataWithRecommendations.
METADATA_BY_DEFAULT_RECIPES = ("aws-semantic-similarity",)


def _deployment(
    context: Context, key: Any, read: Callable[[Any], dict[str, Any]]
) -> dict[str, Any]:
    """What a runtime request needs of the campaign or recommender it names (`read` from a
    metadata snapshot), cached for a second; its model is loaded before the record is, so a
    switch never waits on a load."""

    def load() -> dict[str, Any]:
        with context.database.snapshot() as session:
            record = read(session)
        MODELS.get(context, record["servingVersionArn"])
        return record

    deployment: dict[str, Any] = _CAMPAIGNS.get(key, load)
    return deployment


def _campaign(context: Context, arn: str) -> dict[str, Any]:
    return _deployment(
        context, arn, lambda session: dict(campaigns.serving_record(session, arn).attributes)
    )


def _recommender(context: Context, arn: str) -> dict[str, Any]:
    """A recommender, served like a campaign: its current model and its settings."""
    return _deployment(
        context, ("recommender", arn), lambda session: recommenders.serving_record(session, arn)
    )


def warm_deployments(context: Context) -> int:
    """Load the model, catalog and candidate index of each ACTIVE campaign and recommender
    (the most recently changed, as many as the model cache holds) before a request needs
    them: each server process has its own caches, and without this the first request that
    reaches a process waits for the loads. Returns how many were warmed."""
    kinds = {campaigns.KIND.resource_type: _campaign, recommenders.KIND.resource_type: _recommender}
    with context.database.snapshot() as session:
        rows = session.execute(
            select(ResourceRow.resource_type, ResourceRow.arn)
            .where(ResourceRow.resource_type.in_(kinds), ResourceRow.status == lifecycle.ACTIVE)
            .order_by(ResourceRow.updated_at.desc())
            .limit(MODELS.capacity)
        ).all()
    warmed = 0
    for resource_type, arn in rows:
        try:
            deployment = kinds[resource_type](context, arn)
            item_catalog(context, MODELS.get(context, deployment["servingVersionArn"]))
        except ServiceError:  # changed or deleted meanwhile: the next round sees it
            continue
        warmed += 1
    return warmed


def forgotten_users(context: Context, deployed: Deployed) -> frozenset[str]:
    """Users whose data a data deletion job removed after this model read its training data:
    the model may still hold them, so they are answered as users it never met."""

    def load() -> frozenset[str]:
        with context.database.snapshot() as session:
            return frozenset(
                data_deletion_jobs.deleted_users(
                    session, deployed.dataset_group_arn, since=deployed.created_at
                )
            )

    forgotten: frozenset[str] = _DELETED_USERS.get(deployed.version_arn, load)
    return forgotten


def item_catalog(context: Context, deployed: Deployed) -> ItemCatalog:
    """The Items (and Users) data aligned to a deployed model, cached for a few seconds."""
    return _CATALOGS.get(deployed.version_arn, lambda: _load_catalog(context, deployed))


def _load_catalog(context: Context, deployed: Deployed) -> ItemCatalog:
    interactions_files: tuple[str, ...] = ()
    with context.database.snapshot() as session:
        group = solutions.datasets_of(session, deployed.dataset_group_arn)
        found: dict[str, tuple[pa.Table | None, Schema, str]] = {}
        for dataset_type, dataset in group.items():
            schema = schemas.load(
                lifecycle.get(session, schemas.KIND, dataset.attributes["schemaArn"])
            )
            if dataset_type == "Interactions":
                found[dataset_type] = (pa.table({}), schema, dataset.arn)
                interactions_files = tuple(dataset.attributes.get("files", []))
                continue
            files = list(dataset.attributes.get("files", []))
            table = streamed.dataset_table(
                context.blobs, session, dataset.arn, dataset_type, files, schema
            )
            found[dataset_type] = (table, schema, dataset.arn)
    result = ItemCatalog(item_metadata=None)
    result.schemas = {kind: schema for kind, (_, schema, _) in found.items()}
    if "Interactions" in found:
        result.interactions_arn = found["Interactions"][2]
        result.interactions_files = interactions_files
    items = found.get("Items")
    if items and items[0] is not None:
        table, schema, _ = items
        result.item_metadata = _align(table, "ITEM_ID", deployed.artifacts.item_ids)
        result.categorical = {f.name for f in schema.fields if f.categorical}
        if "CREATION_TIMESTAMP" in result.item_metadata.column_names:
            column = result.item_metadata.column("CREATION_TIMESTAMP").to_numpy(
                zero_copy_only=False
            )
            result.creation = np.asarray(column, dtype=np.float64)
    users = found.get("Users")
    if users and users[0] is not None:
        for row in users[0].to_pylist():
            result.users[row["USER_ID"]] = row
    return result


def _align(table: pa.Table, id_column: str, ids: np.ndarray) -> pa.Table:
    """Rows of `table` reordered to match `ids` (the newest row of an ID wins; nulls if absent)."""
    column = table.column(id_column)
    # Reverse first so that index_in finds each ID's last (newest) row.
    reversed_rows = np.arange(table.num_rows - 1, -1, -1)
    positions = pc.index_in(pa.array(ids.astype(str)), value_set=column.take(reversed_rows))
    valid = positions.is_valid().to_numpy(zero_copy_only=False)
    take = np.where(valid, reversed_rows[positions.fill_null(0).to_numpy()], -1)
    return table.take(pa.array(take, mask=~valid, type=pa.int64()))


EVENT_USERS = EventUsers()


def _recent_events(
    context: Context, interactions_arn: str | None, user_id: str | None
) -> list[EventRow]:
    if not interactions_arn or not user_id:
        return []
    if not EVENT_USERS.has_events(context, interactions_arn, user_id):
        return []
    with context.database.snapshot() as session:
        return list(
            session.scalars(
                select(EventRow)
                .where(EventRow.dataset_arn == interactions_arn, EventRow.user_id == user_id)
                .order_by(EventRow.timestamp.desc())
                .limit(RECENT_EVENTS)
            )
        )


_HISTORIES = _Lru(capacity=8)  # models whose users' interaction history is kept in memory


def _history(
    context: Context, deployed: Deployed, catalog_data: ItemCatalog
) -> history.InteractionHistory:
    """The users' imported interactions for this model, built on first use and again after
    an import replaced the data."""

    def load() -> history.InteractionHistory:
        blobs = context.blobs
        wanted = ["USER_ID", "ITEM_ID", "TIMESTAMP", "EVENT_TYPE"]
        tables = []
        for file_key in catalog_data.interactions_files:
            names = blobs.parquet_schema(file_key).names
            tables.append(blobs.read_parquet(file_key, columns=[c for c in wanted if c in names]))
        table = pa.concat_tables(tables, promote_options="default") if tables else pa.table({})
        return history.build(table, deployed.artifacts.item_ids)

    built: history.InteractionHistory = _HISTORIES.get(
        (deployed.version_arn, catalog_data.interactions_files), load
    )
    return built


def _parsed_filter(
    context: Context, filter_arn: str, deployed: Deployed, catalog_data: ItemCatalog, user: str
) -> Filter:
    """The filter's expression, parsed, its field names spelled as the schemas spell them; it
    must belong to the deployed model's dataset group (`user` says whose, for the error)."""
    with context.database.snapshot() as session:
        row: ResourceRow = filters.serving_record(session, filter_arn)
        if row.parent_arn != deployed.dataset_group_arn:
            raise InvalidInputException(
                f"The filter {filter_arn} belongs to another dataset group than {user}."
            )
        expression = row.attributes["filterExpression"]
    return resolve_fields(parse_filter(expression), catalog_data.schemas)


def _compiled_filter(
    context: Context, filter_arn: str, deployed: Deployed, catalog_data: ItemCatalog
) -> CompiledFilter:
    def load() -> CompiledFilter:
        return CompiledFilter(
            _parsed_filter(context, filter_arn, deployed, catalog_data, "the campaign"),
            deployed.artifacts.item_ids,
            catalog_data.item_metadata,
            catalog_data.categorical,
        )

    return _FILTERS.get((filter_arn, deployed.version_arn), load)


def user_segment_filter(
    context: Context, filter_arn: str, deployed: Deployed, catalog_data: ItemCatalog
) -> Callable[[dict[str, str]], np.ndarray]:
    """A user-segment filter (INCLUDE/EXCLUDE UserID ...) as a function of the filter values
    to a mask over the model's user codes."""
    users_schema = catalog_data.schemas.get("Users")
    users_table = (
        pa.Table.from_pylist(list(catalog_data.users.values())) if catalog_data.users else None
    )
    # (model user code, EVENT_TYPE) of every interaction in the history, for Interactions
    # conditions; the history numbers its users in its own order.
    known = _history(context, deployed, catalog_data)
    code_of_row = np.full(len(known.indptr) - 1, -1, dtype=np.int64)
    for user_id, row in known.user_index.items():
        code_of_row[row] = deployed.artifacts.user_index.get(user_id, -1)
    event_users = np.repeat(code_of_row, np.diff(known.indptr))
    event_types = np.array(known.type_names, dtype=object)[known.types]
    compiled = CompiledFilter(
        _parsed_filter(context, filter_arn, deployed, catalog_data, "the solution version"),
        deployed.artifacts.user_ids,
        users_table,
        {f.name for f in users_schema.fields if f.categorical} if users_schema else set(),
        target="UserID",
        user_events=(event_users, event_types),
    )
    return lambda values: compiled.mask(UserContext(), parse_filter_values(values))


@dataclass
class Request:
    """A runtime request, resolved against the campaign it names."""

    context: Context
    deployed: Deployed
    campaign: dict[str, Any]
    catalog: ItemCatalog
    user_id: str | None
    user_code: int
    events: list[EventRow]
    _exact_scores: np.ndarray | None = field(default=None, init=False, repr=False)

    @classmethod
    def resolve(cls, context: Context, body: dict[str, Any]) -> Request:
        """Resolve the campaign a request names; batch jobs name a solution version instead
        (`solutionVersionArn`, which the wire layer never lets through from clients)."""
        if body.get("solutionVersionArn"):
            campaign = {
                "servingVersionArn": body["solutionVersionArn"],
                "campaignConfig": body.get("campaignConfig") or {},
            }
            return cls.for_campaign(context, campaign, body.get("userId"))
        if body.get("recommenderArn"):
            if body.get("campaignArn"):
                raise InvalidInputException("Give either campaignArn or recommenderArn, not both.")
            return cls.for_campaign(
                context, _recommender(context, body["recommenderArn"]), body.get("userId")
            )
        if not body.get("campaignArn"):
            raise InvalidInputException("Give a campaignArn or a recommenderArn.")
        return cls.for_campaign(
            context, _campaign(context, body["campaignArn"]), body.get("userId")
        )

    @classmethod
    def for_campaign(
        cls, context: Context, campaign: dict[str, Any], user_id: str | None
    ) -> Request:
        deployed = MODELS.get(context, campaign["servingVersionArn"])
        catalog_data = item_catalog(context, deployed)
        code = deployed.artifacts.user_index.get(user_id, -1) if user_id else -1
        if code >= 0 and user_id in forgotten_users(context, deployed):
            code = -1
        events = _recent_events(context, catalog_data.interactions_arn, user_id)
        return cls(context, deployed, campaign, catalog_data, user_id, code, events)

    def scores(self) -> np.ndarray:
        """The user's score per item code; streamed events fold into the user's history."""
        if self._exact_scores is None:
            scores = self._score_all()
            if self.deployed.objective is not None:
                scores = self.deployed.objective.adjust(scores[None, :])[0]
            self._exact_scores = scores
        return self._exact_scores

    def candidate_scores(self) -> tuple[np.ndarray, np.ndarray | None]:
        """(scores, candidate codes): scores from the model's candidate index when it has one
        (-inf outside the candidates) and the codes it scored; else every item's score and
        None. Users with streamed events are folded in, so they are always scored in full."""
        model, index = self.deployed.model, self.deployed.clustered_items
        if index is None or self.events or self.deployed.objective is not None:
            return self.scores(), None
        if not isinstance(model, ALSModel):
            return self.scores(), None
        if not (0 <= self.user_code < model.n_users_ and model.warm_users_[self.user_code]):
            return self.scores(), None
        return index.scores(np.asarray(model.user_factors_[self.user_code]), MAX_RESULTS)

    def _score_all(self) -> np.ndarray:
        model = self.deployed.model
        event_items = [
            self.deployed.artifacts.item_index.get(event.item_id, -1)
            for event in self.events
            if event.item_id
        ]
        if event_items:
            seen = self.seen_items()
            folded = model.fold_in(
                np.concatenate([seen, np.array(event_items, dtype=np.int64)]),
                np.ones(len(seen) + len(event_items), dtype=np.float32),
            )
            if folded is not None:
                return np.array(folded, dtype=np.float32)
        if isinstance(model, TrendingNowModel):
            model = _TRENDS.get(self.deployed.version_arn, lambda: _trend(self))
        return model.score(np.array([self.user_code], dtype=np.int32))[0]

    def seen_items(self) -> np.ndarray:
        seen = self.deployed.artifacts.seen
        if 0 <= self.user_code < seen.shape[0]:
            start, end = seen.indptr[self.user_code], seen.indptr[self.user_code + 1]
            return np.asarray(seen.indices[start:end], dtype=np.int64)
        return np.empty(0, dtype=np.int64)

    def filter_mask(self, filter_arn: str | None, values: dict[str, str] | None) -> np.ndarray:
        """Items the filter lets through. Items the user interacted with are recommended like
        any other, as the service does for custom recipes: filters on Interactions.EVENT_TYPE
        ("EXCLUDE ... IN ("*")", "INCLUDE ... IN ("purchase")") are how users leave them out
        or ask for them."""
        if not filter_arn:
            return np.ones(self.deployed.model.n_items_, dtype=bool)
        compiled = _compiled_filter(self.context, filter_arn, self.deployed, self.catalog)
        recent = self.interactions() if compiled.reads_interactions else []
        user = UserContext(
            recent_events=recent, metadata=self.catalog.users.get(self.user_id or "")
        )
        return compiled.mask(user, parse_filter_values(values))

    def interactions(self) -> list[tuple[int, str]]:
        """(item code, EVENT_TYPE) of the user's streamed and imported interactions; code -1
        for an item the model does not know."""
        streamed_events = [
            (self.deployed.artifacts.item_index.get(event.item_id or "", -1), event.event_type)
            for event in self.events
        ]
        return streamed_events + _history(self.context, self.deployed, self.catalog).of(
            self.user_id
        )

    def automatic_exclusions(self) -> list[int]:
        """Item codes a use case leaves out for this user (the videos they watched, the items
        they bought) whatever the request's filter says; none for custom recipes."""
        use_case = self.deployed.recipe.use_case
        if use_case is None or not use_case.excluded_event_type or not self.user_id:
            return []
        wanted = event_type_key(use_case.excluded_event_type)
        return [
            code
            for code, event_type in self.interactions()
            if code >= 0 and event_type_key(event_type or "") == wanted
        ]

    def metadata_for(self, codes: list[int], columns: list[str]) -> list[dict[str, str]]:
        table = self.catalog.item_metadata
        if table is None:
            return [{} for _ in codes]
        missing = [c for c in columns if c not in table.column_names]
        if missing:
            raise InvalidInputException(
                f"metadataColumns names {', '.join(missing)}, not in the Items dataset."
            )
        rows = table.select(columns).take(pa.array(codes, type=pa.int64())).to_pylist()
        return [{k: "" if v is None else str(v) for k, v in row.items()} for row in rows]


def _trend(request: Request) -> Model:
    """Trending-Now refreshed with the events streamed since training, without retraining."""
    deployed = request.deployed
    model = Model.load(deployed.directory / artifacts.MODEL)
    assert isinstance(model, TrendingNowModel)
    with request.context.database.snapshot() as session:
        rows = session.execute(
            select(EventRow.item_id, EventRow.timestamp).where(
                EventRow.dataset_arn == request.catalog.interactions_arn,
                EventRow.received_at > deployed.trained_at,
            )
        ).all()
    index = deployed.artifacts.item_index
    known = [(index[item], stamp) for item, stamp in rows if item in index]
    if known:
        codes, stamps = zip(*known, strict=True)
        model.refresh_counts(np.array(codes), np.array(stamps), request.context.now())
    return model


def codes_of(mask: np.ndarray) -> np.ndarray | None:
    """The item codes a mask lets through; None when that is every item."""
    return None if mask.all() else np.flatnonzero(mask)


def _scored_codes(
    scores: np.ndarray, allowed: np.ndarray, candidates: np.ndarray | None
) -> np.ndarray | None:
    """The allowed items that have a score (of `candidates` when the index chose some);
    None when that is every item."""
    if candidates is not None:
        return candidates[allowed[candidates] & (scores[candidates] > -np.inf)]
    return codes_of(allowed & (scores > -np.inf))  # nan and -inf: not scored


def normalized(scores: np.ndarray, codes: np.ndarray | None) -> tuple[float, float]:
    """Shift and scale making exp((s - shift) / scale) sum to 1 over the items `codes`
    (None: every item)."""
    candidates = scores if codes is None else scores[codes]
    if len(candidates) == 0:
        return 0.0, 1.0
    # One float32 work array for the deviation, the standard deviation and the sum of exps
    # (np.std and the plain expression make several passes and copies).
    mean = float(candidates.sum()) / len(candidates)
    work = np.asarray(candidates, dtype=np.float32) - np.float32(mean)
    scale = math.sqrt(float(work @ work) / len(work)) or 1.0
    shift = float(np.max(candidates))
    work -= np.float32(shift - mean)
    work *= np.float32(1.0 / scale)
    total = float(np.exp(work, out=work).sum(dtype=np.float64))
    return shift + scale * math.log(total), scale


def _metadata_columns(request: Request, body: dict[str, Any], limit: int) -> list[str]:
    wanted = (body.get("metadataColumns") or {}).get("ITEMS") or []
    extra = set(body.get("metadataColumns") or {}) - {"ITEMS"}
    if extra:
        raise InvalidInputException(f"metadataColumns keys must be ITEMS, not {sorted(extra)}.")
    if wanted:
        config = request.campaign.get("campaignConfig") or {}
        by_default = request.deployed.recipe.name in METADATA_BY_DEFAULT_RECIPES
        if not config.get("enableMetadataWithRecommendations") and not by_default:
            which = (
                "a recommender with recommenderConfig"
                if request.campaign.get("recommenderArn")
                else "a campaign with campaignConfig"
            )
            raise InvalidInputException(
                f"metadataColumns needs {which}.enableMetadataWithRecommendations set to true."
            )
        if limit > MAX_RESULTS_WITH_METADATA:
            raise InvalidInputException(
                f"With metadataColumns, at most {MAX_RESULTS_WITH_METADATA} results can be asked."
            )
    return list(wanted)


# Recipe types whose campaigns answer another runtime operation than GetRecommendations.
_OTHER_CALLS = {
    "PERSONALIZED_RANKING": "GetPersonalizedRanking",
    "PERSONALIZED_ACTIONS": "GetActionRecommendations",
}


def get_recommendations(context: Context, body: dict[str, Any]) -> dict[str, Any]:
    request = Request.resolve(context, body)
    recipe_type = request.deployed.recipe.recipe_type
    k = body.get("numResults", 25)
    if k > MAX_RESULTS:
        raise InvalidInputException(f"numResults must be at most {MAX_RESULTS}, not {k}.")
    columns = _metadata_columns(request, body, k)
    other_call = _OTHER_CALLS.get(recipe_type)
    if other_call:
        raise InvalidInputException(f"The campaign uses a {recipe_type} recipe: call {other_call}.")
    _check_ids(request, body)
    if recipe_type == "RELATED_ITEMS":
        return _related(request, body, k, columns)
    scores, candidates = request.candidate_scores()
    allowed = request.filter_mask(body.get("filterArn"), body.get("filterValues"))
    left_out = request.automatic_exclusions()
    allowed[left_out] = False
    scored = _scored_codes(scores, allowed, candidates)
    if scored is not None and len(scored) < min(k, np.count_nonzero(allowed)):
        scores, scored = request.scores(), codes_of(allowed)  # the filter left too few
    shift, scale = normalized(scores, scored)
    promoted, promotion_name = _promotion(request, body, k, left_out)
    explore = _exploration_slots(request, k, allowed, promoted)
    regular_slots = k - len(promoted) - len(explore)
    eligible = scored
    if promoted or explore:
        eligible = np.arange(len(scores)) if scored is None else scored
        eligible = eligible[~np.isin(eligible, promoted + explore)]
    ranked = _top(scores, eligible, regular_slots)
    items = _interleave(
        [(code, None) for code in ranked],
        [(code, "Exploration") for code in explore] + [(code, "Promoted") for code in promoted],
        k,
    )
    chosen = [code for code, _ in items]
    chosen_scores = scores[chosen] if chosen else np.empty(0, dtype=np.float32)
    outside = ~np.isfinite(chosen_scores)
    if outside.any():  # promoted or explored items outside the candidates: score just those
        chosen_scores = chosen_scores.astype(np.float32)
        chosen_scores[outside] = request.deployed.model.rank(
            request.user_code, np.asarray(chosen)[outside]
        )
    item_ids = request.deployed.artifacts.item_id_list
    probabilities = np.exp((chosen_scores.astype(np.float64) - shift) / scale).tolist()
    item_list: list[dict[str, Any]] = [
        {"itemId": item_ids[code], "score": round(probability, 7)}
        for code, probability in zip(chosen, probabilities, strict=True)
    ]
    if promoted or explore:
        for entry, (_, reason) in zip(item_list, items, strict=True):
            if reason == "Promoted":
                entry["promotionName"] = promotion_name
            if reason:
                entry["reason"] = [reason if reason != "Promoted" else "Promoted item"]
    _attach_metadata(request, item_list, [code for code, _ in items], columns)
    return {"itemList": item_list, "recommendationId": _recommendation_id(body)}


def _check_ids(request: Request, body: dict[str, Any]) -> None:
    """The userId / itemId a request must give: by recipe type, and for a recommender by its
    use case (the guide marks userId Required even for Most popular and Best sellers)."""
    recipe = request.deployed.recipe
    related = recipe.recipe_type == "RELATED_ITEMS"
    what = f"the use case {recipe.name}" if recipe.use_case else f"a {recipe.recipe_type} campaign"
    if related and not body.get("itemId"):
        raise InvalidInputException(f"itemId is required for {what}.")
    if recipe.use_case is not None:
        user_required = recipe.use_case.user_required
    else:
        user_required = not related and recipe.name not in POPULAR_ITEMS_RECIPES
    if user_required and not body.get("userId"):
        unused = "" if related else " (itemId is not used)"
        raise InvalidInputException(f"userId is required for {what}{unused}.")


def _top(scores: np.ndarray, codes: np.ndarray | None, k: int) -> list[int]:
    """The k best of the items `codes` (None: every item), best first, equal scores toward
    the lower code; -inf and nan never. Partitioning only the given items keeps this fast
    when a filter leaves few (argpartition slows down on many equal masked values)."""
    if k <= 0:
        return []
    values = scores if codes is None else scores[codes]  # no copy when every item counts
    if len(values) == 0:
        return []
    if np.isnan(values).any():  # nan: not a candidate
        values = np.where(np.isnan(values), np.float32(-np.inf), values)
    if k < len(values):
        # Partition, then settle ties at the cut toward lower codes as top_k does.
        cut = values[np.argpartition(values, len(values) - k)[len(values) - k :]].min()
        above = np.flatnonzero(values > cut)
        at_cut = np.flatnonzero(values == cut)
        if codes is not None:
            at_cut = at_cut[np.argsort(codes[at_cut], kind="stable")]
        chosen = np.concatenate([above, at_cut[: k - len(above)]])
    else:
        chosen = np.arange(len(values))
    chosen_codes = chosen if codes is None else codes[chosen]
    order = np.lexsort((chosen_codes, -values[chosen]))
    chosen, chosen_codes = chosen[order], chosen_codes[order]
    return chosen_codes[values[chosen] > -np.inf].tolist()


def _interleave(
    regular: list[tuple[int, str | None]], special: list[tuple[int, str | None]], k: int
) -> list[tuple[int, str | None]]:
    """Spread special entries (promotions, exploration) evenly through the regular list."""
    if not special:
        return regular[:k]
    result: list[tuple[int, str | None]] = []
    every = max(1, (len(regular) + len(special)) // len(special))
    regular_iter, special_iter = iter(regular), iter(special)
    for position in range(len(regular) + len(special)):
        source = special_iter if (position + 1) % every == 0 else regular_iter
        entry = next(source, None) or next(regular_iter, None) or next(special_iter, None)
        if entry is not None:
            result.append(entry)
    return result[:k]


def _promotion(
    request: Request, body: dict[str, Any], k: int, left_out: list[int]
) -> tuple[list[int], str | None]:
    """The promoted items: the promotion's filter alone decides them (the request's filter
    applies to the other items only, as the service documents), after automatic exclusions."""
    promotions = body.get("promotions") or []
    if not promotions:
        return [], None
    promotion = promotions[0]
    if not promotion.get("filterArn"):
        raise InvalidInputException("promotions[].filterArn is required.")
    percent = promotion.get("percentPromotedItems", 0)
    if not 1 <= percent <= 100:
        raise InvalidInputException("promotions[].percentPromotedItems must be from 1 to 100.")
    count = math.ceil(k * percent / 100)
    mask = request.filter_mask(promotion["filterArn"], promotion.get("filterValues"))
    mask[left_out] = False
    return _top(request.scores(), codes_of(mask), count), promotion.get("name")


def _exploration_slots(
    request: Request, k: int, allowed: np.ndarray, promoted: list[int]
) -> list[int]:
    """Cold items mixed in for User-Personalization campaigns (itemExplorationConfig)."""
    if not request.deployed.recipe.explores:
        return []
    config = (request.campaign.get("campaignConfig") or {}).get("itemExplorationConfig") or {}
    weight = float(config.get("explorationWeight", DEFAULT_EXPLORATION_WEIGHT))
    age_days = float(config.get("explorationItemAgeCutOff", DEFAULT_EXPLORATION_AGE_DAYS))
    slots = int(k * weight / 2)
    cold = request.deployed.cold_items
    if slots <= 0 or len(cold) == 0:
        return []
    candidates = cold[allowed[cold]]
    candidates = candidates[~np.isin(candidates, promoted)]
    creation = request.catalog.creation
    if creation is not None and len(candidates):
        created = creation[candidates]
        recent = np.isnan(created) | (created >= request.context.now() - age_days * 86400)
        candidates = candidates[recent]
        order = np.argsort(-np.nan_to_num(created[recent], nan=-np.inf), kind="stable")
        candidates = candidates[order]
    return [int(code) for code in candidates[:slots]]


def _attach_metadata(
    request: Request, item_list: list[dict[str, Any]], codes: list[int], columns: list[str]
) -> None:
    if not columns:
        return
    for entry, metadata in zip(item_list, request.metadata_for(codes, columns), strict=True):
        entry["metadata"] = metadata


def _related(request: Request, body: dict[str, Any], k: int, columns: list[str]) -> dict[str, Any]:
    code = request.deployed.artifacts.item_index.get(body["itemId"], -1)
    allowed = request.filter_mask(body.get("filterArn"), body.get("filterValues"))
    allowed[request.automatic_exclusions()] = False
    if code >= 0:
        allowed[code] = False
    model = request.deployed.model
    if isinstance(model, SemanticSimilarityModel):  # its ranking factors weigh in per campaign
        influence = (request.campaign.get("campaignConfig") or {}).get("rankingInfluence")
        similar, scores = model.similar_items(code, model.n_items_, ranking_influence=influence)
    else:
        similar, scores = model.similar_items(code, model.n_items_)
    keep = [
        (int(c), float(s)) for c, s in zip(similar, scores, strict=True) if c >= 0 and allowed[c]
    ]
    item_list = [
        {"itemId": request.deployed.artifacts.item_id_list[c], "score": round(s, 7)}
        for c, s in keep[:k]
    ]
    _attach_metadata(request, item_list, [c for c, _ in keep[:k]], columns)
    return {"itemList": item_list, "recommendationId": _recommendation_id(body)}


def get_personalized_ranking(context: Context, body: dict[str, Any]) -> dict[str, Any]:
    request = Request.resolve(context, body)
    if request.deployed.recipe.recipe_type not in ("PERSONALIZED_RANKING", "USER_PERSONALIZATION"):
        raise InvalidInputException(
            f"The campaign uses a {request.deployed.recipe.recipe_type} recipe, which cannot rank "
            "items for a user."
        )
    input_list: list[str] = body["inputList"]
    limit = MAX_RESULTS_WITH_METADATA if body.get("metadataColumns") else MAX_RESULTS
    if len(input_list) > limit:
        raise InvalidInputException(f"inputList may hold at most {limit} items.")
    columns = _metadata_columns(request, body, len(input_list))
    scores = request.scores()
    allowed = request.filter_mask(body.get("filterArn"), body.get("filterValues"))
    index = request.deployed.artifacts.item_index
    known = [(item, index[item]) for item in dict.fromkeys(input_list) if item in index]
    unknown = [item for item in dict.fromkeys(input_list) if item not in index]
    known = [(item, code) for item, code in known if allowed[code]]
    shift, scale = normalized(scores, np.array([code for _, code in known], dtype=np.int64))
    known.sort(key=lambda pair: (-float(scores[pair[1]]), pair[1]))
    ranking: list[dict[str, Any]] = [
        {"itemId": item, "score": round(float(math.exp((scores[code] - shift) / scale)), 7)}
        for item, code in known
    ]
    _attach_metadata(request, ranking, [code for _, code in known], columns)
    # Items the model has never seen keep their place at the end, unscored, as the service does.
    ranking += [{"itemId": item} for item in unknown]
    return {"personalizedRanking": ranking, "recommendationId": _recommendation_id(body)}


def _recommendation_id(body: dict[str, Any]) -> str:
    """A new ID that names the campaign or recommender answering (metric attribution reads
    it back from the events that quote it)."""
    deployment = body.get("campaignArn") or body.get("recommenderArn")
    return attribution.recommendation_id(deployment or body.get("solutionVersionArn") or "")
