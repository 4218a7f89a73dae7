"""aws-next-best-action: the probability that a user takes each action, a logistic model.

Training examples are the action interactions: each says that a user was offered (or took)
an action at some time. Its label is 1 when the user took the action then or within
``action_optimization_period`` days after (a TAKEN event, or a NOT_TAKEN / VIEWED one
followed by a TAKEN of the same action in that window), else 0: the model answers "will the
user take it within the period".

The log-odds of (user u, action a) are ``x_a . b + x_a . (W e_u) + h_ua . c``:

* ``x_a``: the action's features: a constant, a one-hot of its ID, and its Actions metadata
  as `recipes.features.metadata_features` makes it (categorical columns one-hot, numeric
  ones, VALUE included, standardized);
* ``e_u``: the user's taste, the user's factors of an implicit ALS over the item
  interactions (zero for a user without any), so users who never saw an action still get
  the actions that users with their item history take;
* ``h_ua``: the user's own record: log counts of their earlier TAKEN and declined
  (NOT_TAKEN / VIEWED) events on this action and on all actions.

With ``e_u`` fixed the model is linear in (b, W, c): an L2-regularized logistic regression,
convex, fitted by L-BFGS. History features of a training example count only the events
before it, as serving counts only the events before the request.

The service's rules: every score is 0 until at least `MIN_TAKEN` TAKEN and `MIN_DECLINED`
NOT_TAKEN / VIEWED interactions lie within `SCORING_WINDOW_DAYS` of the newest one; at most
`MAX_ACTIONS` actions are considered (the newest and most recently interacted with); action
codes are ordered by VALUE, highest first, so `top_k`'s tie rule (the lower code) breaks
ties toward higher VALUE.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Self

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import scipy.sparse as sp
from scipy.optimize import minimize

from openpersonalize.data.interactions import InteractionData
from openpersonalize.data.schema import action_event_type
from openpersonalize.recipes.als import ALSModel
from openpersonalize.recipes.base import Model
from openpersonalize.recipes.features import metadata_features

__all__ = [
    "DECLINED",
    "MAX_ACTIONS",
    "TAKEN",
    "ActionData",
    "NextBestActionModel",
    "build_action_data",
]

MAX_ACTIONS = 1000
MIN_TAKEN, MIN_DECLINED = 50, 50
SCORING_WINDOW_DAYS = 42  # six weeks
DAY = 86_400
TAKEN, NOT_TAKEN, VIEWED = 0, 1, 2
DECLINED = (NOT_TAKEN, VIEWED)
_KIND_CODES = {"TAKEN": TAKEN, "NOT_TAKEN": NOT_TAKEN, "VIEWED": VIEWED}
# Actions columns with a meaning of their own (when to offer an action), not features.
_NOT_FEATURES = {
    "ACTION_ID",
    "CREATION_TIMESTAMP",
    "REPEAT_FREQUENCY",
    "EXPIRATION_TIMESTAMP",
    "ACTION_EXPIRATION_TIMESTAMP",
}
_HISTORY_FEATURES = 4  # log1p of: taken / declined on this action, taken / declined on any


@dataclass
class ActionData:
    """What the model trains on: item interactions for users' tastes, the actions, and the
    action interactions as codes. `items.user_ids` is the one user vocabulary."""

    items: InteractionData
    action_ids: np.ndarray  # code -> ACTION_ID (object), highest VALUE first
    action_features: sp.csr_matrix  # actions x metadata features
    users: np.ndarray  # int32 user code per action interaction
    actions: np.ndarray  # int32 action code per action interaction
    timestamps: np.ndarray  # int64 epoch seconds
    kinds: np.ndarray  # int8 TAKEN / NOT_TAKEN / VIEWED

    @property
    def user_ids(self) -> np.ndarray:
        return self.items.user_ids

    @property
    def n_actions(self) -> int:
        return len(self.action_ids)

    def subset(self, mask: np.ndarray) -> ActionData:
        """The same vocabularies and items with only the action interactions where `mask`."""
        return ActionData(
            self.items,
            self.action_ids,
            self.action_features,
            self.users[mask],
            self.actions[mask],
            self.timestamps[mask],
            self.kinds[mask],
        )


def build_action_data(
    items: InteractionData,
    actions: pa.Table,
    categorical: set[str],
    action_interactions: pa.Table | None,
) -> ActionData:
    """Codes for the Actions rows (the newest row of an ID wins) and the action interactions
    (USER_ID, ACTION_ID, TIMESTAMP, EVENT_TYPE). Interactions with an action the Actions data
    lacks, or with an event type other than TAKEN / NOT_TAKEN / VIEWED in any spelling, are
    left out, and so are exact duplicates. Users only the action interactions know are
    added to the user vocabulary."""
    actions = _newest_rows(actions)
    ids = np.asarray(actions.column("ACTION_ID").to_pylist(), dtype=object)
    events = _action_events(action_interactions, ids)
    codes, users, stamps, kinds = events
    newest = int(stamps.max()) if len(stamps) else int(items.timestamps.max(initial=0))
    keep = _considered(actions, codes, stamps, newest)
    # Highest VALUE first (unknown last), then by ID, so ties go to the higher VALUE.
    value = _numbers(actions, "VALUE")[keep]
    order = np.lexsort((ids[keep].astype(str), np.nan_to_num(-value, nan=np.inf)))
    chosen = np.flatnonzero(keep)[order]
    new_code = np.full(len(ids), -1, dtype=np.int64)
    new_code[chosen] = np.arange(len(chosen))
    codes = new_code[codes] if len(codes) else codes
    known = codes >= 0
    codes, users, stamps, kinds = codes[known], users[known], stamps[known], kinds[known]

    vocabulary = {user: code for code, user in enumerate(items.user_ids)}
    extra = [u for u in dict.fromkeys(users.tolist()) if u not in vocabulary]
    for user in extra:
        vocabulary[user] = len(vocabulary)
    user_ids = np.concatenate([items.user_ids, np.asarray(extra, dtype=object)])
    user_codes = np.fromiter((vocabulary[u] for u in users), dtype=np.int32, count=len(users))

    table = actions.take(pa.array(chosen, type=pa.int64()))
    kinds_of = {
        name: "categorical"
        if name in categorical or name == "TYPE"
        else "numeric"
        if pa.types.is_integer(table.schema.field(name).type)
        or pa.types.is_floating(table.schema.field(name).type)
        else "other"
        for name in table.column_names
        if name not in _NOT_FEATURES
    }
    features = metadata_features(table, kinds_of, len(chosen))
    with_users = InteractionData(**{**vars(items), "user_ids": user_ids})
    return ActionData(
        items=with_users,
        action_ids=ids[chosen],
        action_features=features,
        users=user_codes,
        actions=codes.astype(np.int32),
        timestamps=stamps,
        kinds=kinds,
    )


def _newest_rows(actions: pa.Table) -> pa.Table:
    """One row per ACTION_ID, the last one (PutActions records come after imported rows)."""
    ids = actions.column("ACTION_ID").to_pylist()
    last = {action: row for row, action in enumerate(ids) if action is not None}
    return actions.take(pa.array(sorted(last.values()), type=pa.int64()))


def _numbers(table: pa.Table, column: str) -> np.ndarray:
    if column not in table.column_names:
        return np.full(table.num_rows, np.nan)
    values = pc.cast(table.column(column), pa.float64()).to_numpy(zero_copy_only=False)
    return np.asarray(values, dtype=np.float64)


def _action_events(
    table: pa.Table | None, ids: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(action row, USER_ID, TIMESTAMP, kind) of the usable, distinct action interactions."""
    empty = (
        np.empty(0, np.int64),
        np.empty(0, object),
        np.empty(0, np.int64),
        np.empty(0, np.int8),
    )
    if table is None or table.num_rows == 0:
        return empty
    types = pc.dictionary_encode(table.column("EVENT_TYPE").combine_chunks())
    kind_of_type = np.array(
        [_KIND_CODES.get(action_event_type(t) or "", -1) for t in types.dictionary.to_pylist()],
        dtype=np.int8,
    )
    kinds = kind_of_type[types.indices.to_numpy(zero_copy_only=False)]
    rows = pc.index_in(table.column("ACTION_ID"), value_set=pa.array(ids.astype(str)))
    rows_np = np.asarray(rows.fill_null(-1).to_numpy(zero_copy_only=False), dtype=np.int64)
    users = np.asarray(table.column("USER_ID").to_pylist(), dtype=object)
    stamps = np.asarray(table.column("TIMESTAMP").to_numpy(zero_copy_only=False), dtype=np.int64)
    usable = (kinds >= 0) & (rows_np >= 0)
    rows_np, users, stamps, kinds = rows_np[usable], users[usable], stamps[usable], kinds[usable]
    # Two events alike in user, action, type and time are one event stored twice.
    _, first = np.unique(
        np.rec.fromarrays([users.astype(str), rows_np, stamps, kinds]), return_index=True
    )
    first.sort()
    return rows_np[first], users[first], stamps[first], kinds[first]


def _considered(actions: pa.Table, rows: np.ndarray, stamps: np.ndarray, newest: int) -> np.ndarray:
    """The at most MAX_ACTIONS actions a model considers: the newest and the most recently
    interacted with first. An action without CREATION_TIMESTAMP is as old as its oldest
    interaction, or, with none, as new as the newest interaction (the service's rule)."""
    n = actions.num_rows
    if n <= MAX_ACTIONS:
        return np.ones(n, dtype=bool)
    last = np.full(n, -np.inf)
    oldest = np.full(n, np.inf)
    np.maximum.at(last, rows, stamps.astype(np.float64))
    np.minimum.at(oldest, rows, stamps.astype(np.float64))
    created = _numbers(actions, "CREATION_TIMESTAMP")
    created = np.where(np.isnan(created), np.where(np.isfinite(oldest), oldest, newest), created)
    recency = np.maximum(created, last)
    keep = np.zeros(n, dtype=bool)
    keep[np.argsort(-recency, kind="stable")[:MAX_ACTIONS]] = True
    return keep


class NextBestActionModel(Model):
    """Propensity of each (user, action); see the module docstring.

    ``embedding_dimension`` (ALS factors of the user's item history), ``regularization``
    (L2, per example) and ``max_iterations`` (L-BFGS) are internal settings, not recipe
    hyperparameters. The model's "items" are the actions: ``n_items_`` is their number.
    """

    def __init__(
        self,
        action_optimization_period: int = 14,
        embedding_dimension: int = 16,
        regularization: float = 1.0,
        max_iterations: int = 300,
        random_state: int = 0,
    ) -> None:
        self.action_optimization_period = action_optimization_period
        self.embedding_dimension = embedding_dimension
        self.regularization = regularization
        self.max_iterations = max_iterations
        self.random_state = random_state

    def fit(self, data: ActionData) -> Self:  # type: ignore[override]
        n_users, n_actions = len(data.user_ids), data.n_actions
        self.n_users_, self.n_items_ = n_users, n_actions
        self.user_factors_ = self._user_factors(data.items)
        taken = data.kinds == TAKEN
        window = data.timestamps >= data.timestamps.max(initial=0) - SCORING_WINDOW_DAYS * DAY
        self.scored_ = bool(
            np.count_nonzero(taken & window) >= MIN_TAKEN
            and np.count_nonzero(~taken & window) >= MIN_DECLINED
        )
        # The users' records as CSR arrays (a model saves arrays only).
        for name, where in (("taken", taken), ("declined", ~taken)):
            counts = _counts(data.users, data.actions, where, n_users, n_actions)
            setattr(self, f"{name}_indptr_", counts.indptr.astype(np.int64))
            setattr(self, f"{name}_actions_", counts.indices.astype(np.int32))
            setattr(self, f"{name}_counts_", counts.data.astype(np.float32))
        dimension = self.user_factors_.shape[1]
        features = sp.hstack(
            [
                np.ones((n_actions, 1), dtype=np.float32),
                sp.identity(n_actions, dtype=np.float32, format="csr"),
                data.action_features,
            ],
            format="csr",
            dtype=np.float64,
        )
        self.action_bias_ = np.zeros(n_actions, dtype=np.float32)
        self.action_factors_ = np.zeros((n_actions, dimension), dtype=np.float32)
        self.history_weights_ = np.zeros(_HISTORY_FEATURES, dtype=np.float32)
        if not self.scored_:
            return self  # every score is 0 until there are enough action interactions
        labels = self._labels(data)
        history = _history_before(data)
        bias, factors, weights = self._solve(
            features[data.actions], self.user_factors_[data.users], history, labels
        )
        self.action_bias_ = (features @ bias).astype(np.float32)
        self.action_factors_ = np.asarray(features @ factors, dtype=np.float32)
        self.history_weights_ = weights.astype(np.float32)
        return self

    def score(self, users: np.ndarray) -> np.ndarray:
        users = np.asarray(users, dtype=np.int64).reshape(-1)
        return self._propensities(
            users, self._record("taken", users), self._record("declined", users)
        )

    def score_user(
        self, user: int, taken: np.ndarray | None = None, declined: np.ndarray | None = None
    ) -> np.ndarray:
        """(n_items_,) propensities of one user, with `taken` / `declined` counts per action
        of events the training data did not hold (streamed since) added to the user's record."""
        users = np.array([user], dtype=np.int64)
        known_taken = self._record("taken", users)
        known_declined = self._record("declined", users)
        if taken is not None:
            known_taken += taken
        if declined is not None:
            known_declined += declined
        return self._propensities(users, known_taken, known_declined)[0]

    # -- helpers ------------------------------------------------------------------------------

    def _record(self, name: str, users: np.ndarray) -> np.ndarray:
        """Dense (len(users), n_items_) counts of the users' TAKEN or declined events."""
        indptr = getattr(self, f"{name}_indptr_")
        out = np.zeros((len(users), self.n_items_), dtype=np.float64)
        for row, user in enumerate(users.tolist()):
            if 0 <= user < len(indptr) - 1:
                start, end = int(indptr[user]), int(indptr[user + 1])
                out[row, getattr(self, f"{name}_actions_")[start:end]] = getattr(
                    self, f"{name}_counts_"
                )[start:end]
        return out

    def _propensities(
        self, users: np.ndarray, taken: np.ndarray, declined: np.ndarray
    ) -> np.ndarray:
        if not self.scored_:
            return np.zeros((len(users), self.n_items_), dtype=np.float32)
        warm = (users >= 0) & (users < self.n_users_)
        factors = np.zeros((len(users), self.user_factors_.shape[1]), dtype=np.float32)
        factors[warm] = self.user_factors_[users[warm]]
        logits = self.action_bias_[None, :] + factors @ self.action_factors_.T
        weights = self.history_weights_
        logits += weights[0] * np.log1p(taken) + weights[1] * np.log1p(declined)
        logits += weights[2] * np.log1p(taken.sum(axis=1, keepdims=True))
        logits += weights[3] * np.log1p(declined.sum(axis=1, keepdims=True))
        return _sigmoid(logits).astype(np.float32)

    def _user_factors(self, items: InteractionData) -> np.ndarray:
        """ALS user factors of the item interactions, scaled to unit RMS over users with
        events (so one regularization suits every catalog)."""
        if items.n_events == 0:
            return np.zeros((items.n_users, 0), dtype=np.float32)
        als = ALSModel(
            hidden_dimension=int(self.embedding_dimension),
            recency_mask=False,
            max_user_history_length_percentile=1.0,
            random_state=int(self.random_state),
        ).fit(items)
        factors = np.asarray(als.user_factors_, dtype=np.float64)
        warm = np.asarray(als.warm_users_)
        scale = np.sqrt(np.mean(np.sum(factors[warm] ** 2, axis=1))) if warm.any() else 0.0
        return (factors / scale if scale > 0 else factors).astype(np.float32)

    def _labels(self, data: ActionData) -> np.ndarray:
        """1 for a TAKEN event, or an offer whose action the user took within the period."""
        period = int(self.action_optimization_period) * DAY
        taken = data.kinds == TAKEN
        pair = data.users.astype(np.int64) * max(data.n_actions, 1) + data.actions
        stamps = data.timestamps - data.timestamps.min(initial=0)
        span = int(stamps.max(initial=0)) + 1
        key = pair * span + stamps
        taken_keys = np.sort(key[taken])
        # The first TAKEN of the same user and action at or after each event.
        position = np.searchsorted(taken_keys, key)
        following = np.where(
            position < len(taken_keys), taken_keys[np.minimum(position, len(taken_keys) - 1)], -1
        )
        soon = (following // span == pair) & (following % span - stamps <= period)
        return (taken | soon).astype(np.float64)

    def _solve(
        self, x: sp.csr_matrix, factors: np.ndarray, history: np.ndarray, labels: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        n, width = x.shape
        dimension = factors.shape[1]
        factors = factors.astype(np.float64)
        xt = x.T.tocsr()
        penalty = float(self.regularization) / n

        def split(theta: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            bias = theta[:width]
            matrix = theta[width : width * (1 + dimension)].reshape(width, dimension)
            return bias, matrix, theta[width * (1 + dimension) :]

        def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
            bias, matrix, weights = split(theta)
            logits = x @ bias + np.einsum("ij,ij->i", x @ matrix, factors) + history @ weights
            # log(1 + e^z) - y z, stably
            value = float(np.mean(np.logaddexp(0.0, logits) - labels * logits))
            residual = (_sigmoid(logits) - labels) / n
            grad_bias = xt @ residual + penalty * bias
            grad_bias[0] -= penalty * bias[0]  # the intercept is not shrunk
            grad_matrix = xt @ (residual[:, None] * factors) + penalty * matrix
            grad_weights = history.T @ residual
            value += 0.5 * penalty * (float(bias[1:] @ bias[1:]) + float(np.sum(matrix**2)))
            gradient = np.concatenate([grad_bias, grad_matrix.ravel(), grad_weights])
            return value, gradient

        start = np.zeros(width * (1 + dimension) + history.shape[1])
        result = minimize(
            loss,
            start,
            jac=True,
            method="L-BFGS-B",
            options={"maxiter": int(self.max_iterations)},
        )
        return split(result.x)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def _counts(
    users: np.ndarray, actions: np.ndarray, where: np.ndarray, n_users: int, n_actions: int
) -> sp.csr_matrix:
    matrix = sp.csr_matrix(
        (np.ones(int(np.count_nonzero(where)), dtype=np.float32), (users[where], actions[where])),
        shape=(n_users, n_actions),
    )
    matrix.sum_duplicates()
    return matrix


def _history_before(data: ActionData) -> np.ndarray:
    """Each action interaction's history features, from the same user's earlier events."""
    taken = (data.kinds == TAKEN).astype(np.float64)
    declined = 1.0 - taken
    pair = data.users.astype(np.int64) * max(data.n_actions, 1) + data.actions
    user = data.users.astype(np.int64)
    columns = [
        _earlier(pair, data.timestamps, taken),
        _earlier(pair, data.timestamps, declined),
        _earlier(user, data.timestamps, taken),
        _earlier(user, data.timestamps, declined),
    ]
    return np.log1p(np.column_stack(columns))


def _earlier(group: np.ndarray, stamps: np.ndarray, flags: np.ndarray) -> np.ndarray:
    """Per event: the sum of `flags` over events of its group strictly before it in time."""
    order = np.lexsort((stamps, group))
    g, t, f = group[order], stamps[order], flags[order]
    before = np.cumsum(f) - f  # everything earlier in sorted order
    new_group = np.ones(len(g), dtype=bool)
    new_group[1:] = g[1:] != g[:-1]
    group_start = np.maximum.accumulate(np.where(new_group, np.arange(len(g)), 0))
    before -= (np.cumsum(f) - f)[group_start]
    # Events at the same time see none of each other: use the value at the run's first event.
    new_run = new_group.copy()
    new_run[1:] |= t[1:] != t[:-1]
    run_start = np.maximum.accumulate(np.where(new_run, np.arange(len(g)), 0))
    out = np.empty(len(g), dtype=np.float64)
    out[order] = before[run_start]
    return out
