"""aws-hrnn, aws-hrnn-metadata, aws-hrnn-coldstart: a GRU over each user's recent items.

Session-based recommendation with recurrent networks, as in GRU4Rec (Hidasi et al., "Session-
based Recommendations with Recurrent Neural Networks", ICLR 2016): each user's events in time
order are a sequence of items; the item embeddings go through a GRU, and the GRU's output at a
position, projected back into the embedding space, scores the next item by its dot product
with each item's embedding (input and output embeddings are shared). A user's scores come
from the output after their newest event. The service's HRNN adds a user-level layer over
sessions (Quadrana et al., RecSys 2017); here the user level is the GRU's initial state,
computed from the user's metadata (aws-hrnn-metadata, aws-hrnn-coldstart) or zero.

The recipes' hyperparameters:

* ``hidden_dimension``: the size of the item embeddings and of the GRU state.
* ``bptt``: how many steps back the gradient flows (truncated back-propagation through time):
  histories are cut into windows of ``bptt`` events, each trained from the initial state, and
  a user is scored from their newest ``bptt`` events.
* ``recency_mask``: when true, the loss of an event halves every further ``bptt`` events back
  from the user's newest ``bptt`` (never below 0.1), so recent taste dominates.
* ``min/max_user_history_length_percentile``: users whose event count lies outside those
  percentiles (of users with events) are not trained on; they are still scored from their
  history like anyone else.

Training is next-item prediction with the full softmax over the catalog (a sampled softmax
above ``full_softmax_max_items`` items), with the SASRec recipe's sequence helpers.

aws-hrnn-metadata adds the Items and Users metadata (``recipes.features``: categorical one-
hot, numeric standardized, textual TF-IDF, reduced to ``metadata_dimension`` columns): an
item's embedding is its ID embedding plus a learned projection of its metadata features, and
the user's metadata sets the GRU's initial state. aws-hrnn-coldstart also treats *cold*
items, those with at most ``cold_start_max_interactions`` events of which the first lies at
most ``cold_start_max_duration`` days before ``cold_start_relative_from`` (the newest event,
``latestItem``, or the training time, ``currentTime``), and items without events: their
embedding is their metadata projection alone, so a new item is recommended to users whose
taste matches its metadata. During training the ID part of each warm item is dropped with
probability ``id_dropout`` per batch, which teaches the metadata projection to stand alone.

Learned state is numpy only: the final item embeddings (``item_vectors_``), the GRU and
projections as ``weight_<name>_``, the user metadata features, each user's newest ``bptt``
item codes and item popularity for users without events.
"""

from __future__ import annotations

import math
import time
from typing import Any, ClassVar, Self

import numpy as np
import torch
from torch import nn

from openpersonalize.data.interactions import InteractionData
from openpersonalize.recipes.base import Model
from openpersonalize.recipes.features import (
    dense_metadata_features,
    users_within_history_percentiles,
)
from openpersonalize.recipes.sasrec import (
    UserSequences,
    next_item_loss,
    score_sequences,
    store_weights,
    stored_weights,
    torch_device,
    torch_training,
)

__all__ = ["HRNNColdstartModel", "HRNNMetadataModel", "HRNNModel"]

_SECONDS_PER_DAY = 86_400.0


class HRNNModel(Model):
    """aws-hrnn: a GRU next-item model; see the module docstring for the hyperparameters.

    ``epochs``, ``min_steps``, ``min_targets_per_item``, ``batch_size``, ``learning_rate``,
    ``dropout``, ``negatives``, ``full_softmax_max_items``, ``metadata_dimension`` and
    ``id_dropout`` are internal settings, not recipe hyperparameters. Training runs ``epochs``
    passes over the data, more where that would be fewer than ``min_steps`` optimizer steps
    (small data sets) or would show the average item fewer than ``min_targets_per_item`` times
    as the next item to predict (large sparse catalogs, whose rare items otherwise keep
    near-random embeddings: on ml-latest-small 3 epochs score below popularity, 10 well above).
    The defaults train in seconds on ML-100K on two cores (NDCG@10 about 0.2 there against
    popularity's 0.075).
    """

    #: Whether the model reads Items / Users metadata (aws-hrnn-metadata and -coldstart do).
    uses_metadata: ClassVar[bool] = False

    def __init__(
        self,
        hidden_dimension: int = 43,
        bptt: int = 32,
        recency_mask: bool = True,
        min_user_history_length_percentile: float = 0.0,
        max_user_history_length_percentile: float = 0.99,
        epochs: int = 3,
        min_steps: int = 60,
        min_targets_per_item: float = 100.0,
        batch_size: int = 64,
        learning_rate: float = 1e-2,
        dropout: float = 0.2,
        negatives: int = 100,
        full_softmax_max_items: int = 50_000,
        metadata_dimension: int = 32,
        id_dropout: float = 0.0,
        random_state: int = 0,
    ) -> None:
        self.hidden_dimension = hidden_dimension
        self.bptt = bptt
        self.recency_mask = recency_mask
        self.min_user_history_length_percentile = min_user_history_length_percentile
        self.max_user_history_length_percentile = max_user_history_length_percentile
        self.epochs = epochs
        self.min_steps = min_steps
        self.min_targets_per_item = min_targets_per_item
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.dropout = dropout
        self.negatives = negatives
        self.full_softmax_max_items = full_softmax_max_items
        self.metadata_dimension = metadata_dimension
        self.id_dropout = id_dropout
        self.random_state = random_state

    # -- training ---------------------------------------------------------------------------

    def fit(self, data: InteractionData) -> Self:
        n_users, n_items = data.n_users, data.n_items
        length = max(int(self.bptt), 1)
        dim = int(self.hidden_dimension)
        seed = int(self.random_state)
        item_features, user_features = self._metadata(data)
        events = UserSequences.of(data)
        trained = users_within_history_percentiles(
            events.counts,
            self.min_user_history_length_percentile,
            self.max_user_history_length_percentile,
        )
        device = torch_device()
        # A GRU step over a small catalog is too small to split across threads (more threads
        # only add waiting); the softmax over a large one is not: two cores halve an epoch of
        # ML-100K (1.7k items) or ml-latest-small (9.7k).
        with torch_training(seed, threads=1 if n_items < 1000 else None) as rng:
            table = _ItemTable(n_items, dim, item_features, self._id_mask(data)).to(device)
            network = _Network(dim, user_features.shape[1], self.dropout).to(device)
            inputs, targets, loss_weights, users = events.windows(
                length, self.recency_mask, users=trained
            )
            if len(inputs) and n_items > 0 and int(self.epochs) > 0:
                self._train(
                    table, network, (inputs, targets, loss_weights, users), user_features, rng
                )
            table.eval()
            network.eval()
            with torch.no_grad():
                self.item_vectors_ = table().cpu().numpy().astype(np.float32)
            store_weights(self, network)
        self.user_features_ = user_features
        self.sequences_ = events.newest(length)
        self.popularity_ = np.bincount(
            data.items, weights=data.weights.astype(np.float64), minlength=n_items
        ).astype(np.float32)
        self.n_users_ = n_users
        self.n_items_ = n_items
        self.__dict__.pop("_net", None)
        return self

    def _metadata(self, data: InteractionData) -> tuple[np.ndarray, np.ndarray]:
        """Dense item and user metadata features (no columns without metadata or its use)."""
        if not self.uses_metadata:
            return np.zeros((data.n_items, 0), np.float32), np.zeros((data.n_users, 0), np.float32)
        dim, seed = int(self.metadata_dimension), int(self.random_state)
        items = dense_metadata_features(
            data.item_metadata, data.item_column_kinds, data.n_items, dim, seed
        )
        users = dense_metadata_features(
            data.user_metadata, data.user_column_kinds, data.n_users, dim, seed
        )
        return items, users

    def _id_mask(self, data: InteractionData) -> np.ndarray:
        """1.0 for items that keep their ID embedding, 0.0 for items known by metadata alone."""
        return np.ones(data.n_items, dtype=np.float32)

    def _train(
        self,
        table: _ItemTable,
        network: _Network,
        windows: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
        user_features: np.ndarray,
        rng: np.random.Generator,
    ) -> None:
        inputs, targets, loss_weights, users = windows
        device = table.embedding.weight.device
        n_items = table.n_items
        n_negatives = max(1, min(int(self.negatives), n_items))
        full = n_items <= int(self.full_softmax_max_items)
        batch_size = max(int(self.batch_size), 1)
        n_batches = max(1, math.ceil(len(inputs) / batch_size))
        targets_per_epoch = max(1, int(np.count_nonzero(loss_weights)))
        epochs = max(
            int(self.epochs),
            math.ceil(int(self.min_steps) / n_batches),
            math.ceil(float(self.min_targets_per_item) * n_items / targets_per_epoch),
        )
        profiles = torch.from_numpy(user_features).to(device)
        parameters = list(table.parameters()) + list(network.parameters())
        optimizer = torch.optim.Adam(parameters, lr=float(self.learning_rate))
        table.train()
        network.train()
        for _ in range(epochs):
            for batch in np.array_split(rng.permutation(len(inputs)), n_batches):
                x = torch.from_numpy(inputs[batch]).to(device)
                y = torch.from_numpy(targets[batch]).to(device)
                w = torch.from_numpy(loss_weights[batch]).to(device)
                keep_ids = None
                if self.id_dropout > 0 and table.has_metadata:
                    keep_ids = torch.from_numpy(rng.random(n_items) >= self.id_dropout).to(device)
                vectors = table(keep_ids)
                hidden = network(x, vectors, profiles[torch.from_numpy(users[batch]).to(device)])
                valid = w > 0
                loss = next_item_loss(
                    hidden[valid], vectors, y[valid], w[valid], n_negatives, full, rng
                )
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()

    # -- serving ----------------------------------------------------------------------------

    def score(self, users: np.ndarray) -> np.ndarray:
        def forward(block: np.ndarray) -> np.ndarray:
            profiles = np.asarray(self.user_features_[block], dtype=np.float32)
            return self._forward(np.asarray(self.sequences_[block]), profiles)

        return score_sequences(self, users, forward)

    def fold_in(self, items: np.ndarray, weights: np.ndarray) -> np.ndarray | None:
        """The GRU run over `items` in the given (chronological) order; weights are unused."""
        self._check_fitted()
        items = np.asarray(items, dtype=np.int64).reshape(-1)
        items = items[(items >= 0) & (items < self.n_items_)]
        if len(items) == 0:
            return None
        length = self.sequences_.shape[1]
        sequence = np.full((1, length), -1, dtype=np.int64)
        tail = items[-length:]
        sequence[0, length - len(tail) :] = tail
        profile = np.zeros((1, self.user_features_.shape[1]), dtype=np.float32)
        return self._forward(sequence, profile)[0]

    def _forward(self, sequences: np.ndarray, profiles: np.ndarray) -> np.ndarray:
        """(n, n_items) float32 scores for (n, L) item codes left-padded with -1."""
        net = self._network()
        device = net["vectors"].device
        with torch.no_grad():
            tokens = torch.from_numpy(np.asarray(sequences, dtype=np.int64) + 1).to(device)
            hidden = net["network"](tokens, net["vectors"], torch.from_numpy(profiles).to(device))[
                :, -1
            ]
            return (hidden @ net["vectors"].T).cpu().numpy().astype(np.float32)

    def _network(self) -> dict[str, Any]:
        """The GRU and item vectors as torch objects, built once per model object."""
        net = self.__dict__.get("_net")
        if net is None:
            device = torch_device()
            network = _Network(self.item_vectors_.shape[1], self.user_features_.shape[1], 0.0)
            network.load_state_dict(stored_weights(self, network))
            network.to(device).eval()
            vectors = torch.from_numpy(np.array(self.item_vectors_, dtype=np.float32)).to(device)
            net = self._net = {"network": network, "vectors": vectors}
        return net


class HRNNMetadataModel(HRNNModel):
    """aws-hrnn-metadata: `HRNNModel` with item and user metadata features."""

    uses_metadata = True


class HRNNColdstartModel(HRNNModel):
    """aws-hrnn-coldstart: metadata features, and cold items embedded by their metadata alone."""

    uses_metadata = True

    def __init__(
        self,
        hidden_dimension: int = 149,
        bptt: int = 32,
        recency_mask: bool = True,
        cold_start_max_interactions: int = 15,
        cold_start_max_duration: float = 5.0,
        cold_start_relative_from: str = "latestItem",
        min_user_history_length_percentile: float = 0.0,
        max_user_history_length_percentile: float = 0.99,
        epochs: int = 3,
        min_steps: int = 60,
        min_targets_per_item: float = 100.0,
        batch_size: int = 64,
        learning_rate: float = 1e-2,
        dropout: float = 0.2,
        negatives: int = 100,
        full_softmax_max_items: int = 50_000,
        metadata_dimension: int = 32,
        id_dropout: float = 0.2,
        random_state: int = 0,
    ) -> None:
        super().__init__(
            hidden_dimension=hidden_dimension,
            bptt=bptt,
            recency_mask=recency_mask,
            min_user_history_length_percentile=min_user_history_length_percentile,
            max_user_history_length_percentile=max_user_history_length_percentile,
            epochs=epochs,
            min_steps=min_steps,
            min_targets_per_item=min_targets_per_item,
            batch_size=batch_size,
            learning_rate=learning_rate,
            dropout=dropout,
            negatives=negatives,
            full_softmax_max_items=full_softmax_max_items,
            metadata_dimension=metadata_dimension,
            id_dropout=id_dropout,
            random_state=random_state,
        )
        self.cold_start_max_interactions = cold_start_max_interactions
        self.cold_start_max_duration = cold_start_max_duration
        self.cold_start_relative_from = cold_start_relative_from

    def _id_mask(self, data: InteractionData) -> np.ndarray:
        return (~self.cold_items(data)).astype(np.float32)

    def cold_items(self, data: InteractionData) -> np.ndarray:
        """Boolean per item code: no events, or few events that started recently."""
        counts = np.bincount(data.items, minlength=data.n_items)
        first = np.full(data.n_items, np.iinfo(np.int64).max, dtype=np.int64)
        np.minimum.at(first, data.items, data.timestamps.astype(np.int64))
        if self.cold_start_relative_from == "currentTime":
            reference = time.time()
        else:
            reference = float(data.timestamps.max()) if data.n_events else 0.0
        recent = reference - first <= float(self.cold_start_max_duration) * _SECONDS_PER_DAY
        return (counts == 0) | ((counts <= int(self.cold_start_max_interactions)) & recent)


class _ItemTable(nn.Module):
    """Item embeddings: the ID embedding (where the mask keeps it) plus projected metadata."""

    def __init__(self, n_items: int, dim: int, features: np.ndarray, id_mask: np.ndarray) -> None:
        super().__init__()
        self.n_items = n_items
        self.embedding = nn.Embedding(max(n_items, 1), dim)
        nn.init.normal_(self.embedding.weight, std=dim**-0.5)
        self.register_buffer("id_mask", torch.from_numpy(id_mask.astype(np.float32)))
        self.has_metadata = features.shape[1] > 0
        if self.has_metadata:
            self.register_buffer("features", torch.from_numpy(features.astype(np.float32)))
            self.projection = nn.Linear(features.shape[1], dim)

    def forward(self, keep_ids: torch.Tensor | None = None) -> torch.Tensor:
        mask = self.id_mask if keep_ids is None else self.id_mask * keep_ids
        vectors = self.embedding.weight[: self.n_items] * mask[:, None]
        if self.has_metadata:
            vectors = vectors + self.projection(self.features)
        return vectors


class _Network(nn.Module):
    """Embedded item sequence -> GRU (initial state from user metadata) -> embedding space."""

    def __init__(self, dim: int, user_features: int, dropout: float) -> None:
        super().__init__()
        self.dropout = nn.Dropout(float(dropout))
        self.gru = nn.GRU(dim, dim, batch_first=True)
        self.output = nn.Linear(dim, dim)
        self.user = nn.Linear(user_features, dim) if user_features else None

    def forward(
        self, tokens: torch.Tensor, vectors: torch.Tensor, profiles: torch.Tensor
    ) -> torch.Tensor:
        """(B, L) tokens (item code + 1, 0 = padding) -> (B, L, d) next-item query vectors."""
        padded = torch.cat([vectors.new_zeros(1, vectors.shape[1]), vectors])
        x = self.dropout(padded[tokens])
        initial = None
        if self.user is not None:
            initial = torch.tanh(self.user(profiles)).unsqueeze(0).contiguous()
        hidden, _ = self.gru(x, initial)
        return self.output(self.dropout(hidden))
