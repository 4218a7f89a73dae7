"""aws-user-personalization-v2: SASRec, self-attentive sequential recommendation.

Kang and McAuley, "Self-Attentive Sequential Recommendation" (ICDM 2018). Each user's events,
in time order, are a sequence of items; item embeddings plus learned positional embeddings
go through ``num_blocks`` causal self-attention blocks, and the hidden state at a position
scores the next item as its dot product with that item's embedding (input and output
embeddings are shared). The score of a user is the hidden state after their newest event.

Training predicts the next item at every position with a softmax. When the catalog has at
most ``full_softmax_max_items`` items it is the full softmax over every item (cheap for such
catalogs, and markedly more accurate). Otherwise it is a sampled softmax: the true next item
against ``negatives`` items drawn uniformly from the catalog, one draw shared by the whole
batch (a negative that equals the position's true item is masked out). Uniform sampling makes
the logQ correction a constant, so none is applied. The cost of a sampled step grows with
``negatives``, not with the catalog, so large catalogs fit. A user's history longer than
``max_sequence_length`` is cut into consecutive windows from the newest event back, each a
training sequence of its own.

``apply_recency_bias``: when true, the loss of each predicted event is weighted by how recent
it is in its user's history: full weight for the ``max_sequence_length`` newest events, then
halving every further ``max_sequence_length`` events back, never below 0.1 (the same fade
as the ALS recipe's ``recency_mask``). When false every event counts in full. Either way the
loss is also weighted by the event's own weight (eventsConfig).

Item-item blend: a sequence model learns well what follows what, but on small data sets it
learns the broad co-occurrence structure of the catalog less well than a closed-form item-item
model does. So when the catalog has at most ``item_item_max_items`` items with two or more
events, the recipe also fits EASE (``recipes.ease``, ``item_item_l2``, each item's
``item_item_neighbours`` strongest weights kept) and a user's score is the transformer's
score plus ``item_item_weight`` times EASE's score for the user's history, each standardized
per user over the catalog. EASE reads the history with the same recency fade as the training
loss (and the events' weights), so both parts favour the user's recent taste. Measured on
ML-100K and ml-latest-small with the service's evaluation split (docs/benchmarks.md), the
blend beat either part alone on both. Larger catalogs (or ``item_item_weight`` 0) use the
transformer alone.

Item metadata: every categorical column of the Items data contributes a learned embedding
per value (``|``-separated values of one item are averaged), added to the item's own
embedding; items without events still get their metadata's embedding.

Learned state is numpy only: the combined item embeddings (``item_vectors_``), each encoder
tensor as ``weight_<name>_``, each user's newest ``max_sequence_length`` item codes
(``sequences_``, left-padded with -1), item popularity for users without events, and for the
blend each item's EASE neighbours (``neighbour_items_``, ``neighbour_weights_``) and each
user's recency-weighted history (``history_*_``). The torch module is rebuilt from those
arrays the first time a loaded model scores.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Self

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from openpersonalize.data.interactions import InteractionData
from openpersonalize.recipes.base import Model, cores, top_k
from openpersonalize.recipes.ease import item_weights, n_modelled_items

__all__ = [
    "SASRecModel",
    "UserSequences",
    "next_item_loss",
    "store_weights",
    "stored_weights",
    "torch_device",
    "torch_training",
]

_WEIGHT_PREFIX = "weight_"
_RECENCY_FLOOR = 0.1
_SCORE_BATCH = 512
#: Items with fewer events get no EASE weights (one event is one co-occurring user).
_ITEM_ITEM_MIN_EVENTS = 2


class SASRecModel(Model):
    """SASRec with full or sampled softmax training; see the module docstring."""

    def __init__(
        self,
        apply_recency_bias: bool = True,
        hidden_dimension: int = 64,
        max_sequence_length: int = 50,
        num_blocks: int = 1,
        num_heads: int = 1,
        dropout: float = 0.2,
        epochs: int = 10,
        batch_size: int = 128,
        learning_rate: float = 5e-3,
        negatives: int = 100,
        random_state: int = 0,
        full_softmax_max_items: int = 50_000,
        item_item_weight: float = 1.0,
        item_item_max_items: int = 10_000,
        item_item_l2: float = 500.0,
        item_item_neighbours: int = 200,
    ) -> None:
        self.apply_recency_bias = apply_recency_bias
        self.hidden_dimension = hidden_dimension
        self.max_sequence_length = max_sequence_length
        self.num_blocks = num_blocks
        self.num_heads = num_heads
        self.dropout = dropout
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.negatives = negatives
        self.random_state = random_state
        self.full_softmax_max_items = full_softmax_max_items
        self.item_item_weight = item_item_weight
        self.item_item_max_items = item_item_max_items
        self.item_item_l2 = item_item_l2
        self.item_item_neighbours = item_item_neighbours

    # -- training ---------------------------------------------------------------------------

    def fit(self, data: InteractionData) -> Self:
        n_users, n_items = data.n_users, data.n_items
        length = max(int(self.max_sequence_length), 1)
        dim = int(self.hidden_dimension)
        device = torch_device()
        events = UserSequences.of(data)
        with torch_training(int(self.random_state)) as rng:
            table = _ItemTable(n_items, dim, *_categorical_values(data)).to(device)
            encoder = _Encoder(length, dim, self._heads(), int(self.num_blocks), self.dropout)
            encoder = encoder.to(device)
            inputs, targets, loss_weights, _ = events.windows(length, self.apply_recency_bias)
            if len(inputs) and n_items > 0 and int(self.epochs) > 0:
                self._train(table, encoder, inputs, targets, loss_weights, rng, device)
            table.eval()
            encoder.eval()
            with torch.no_grad():
                item_vectors = table().detach().cpu().numpy().astype(np.float32)
            store_weights(self, encoder)
        self.item_vectors_ = item_vectors
        self.sequences_ = events.newest(length)
        self.neighbour_items_, self.neighbour_weights_ = self._item_item(data)
        self.history_starts_ = np.append(events.starts, len(events.items)).astype(np.int64)
        self.history_items_ = events.items.astype(np.int32)
        self.history_weights_ = events.recency_weights(length, self.apply_recency_bias)
        self.popularity_ = np.bincount(
            data.items, weights=data.weights.astype(np.float64), minlength=n_items
        ).astype(np.float32)
        self.n_users_ = n_users
        self.n_items_ = n_items
        for cached in ("_net", "_history_matrix", "_item_item_matrix"):
            self.__dict__.pop(cached, None)
        return self

    def _train(
        self,
        table: _ItemTable,
        encoder: _Encoder,
        inputs: np.ndarray,
        targets: np.ndarray,
        loss_weights: np.ndarray,
        rng: np.random.Generator,
        device: torch.device,
    ) -> None:
        n_items = table.embedding.num_embeddings
        n_negatives = max(1, min(int(self.negatives), n_items))
        full = n_items <= int(self.full_softmax_max_items)
        batch_size = max(int(self.batch_size), 1)
        parameters = list(table.parameters()) + list(encoder.parameters())
        optimizer = torch.optim.Adam(parameters, lr=float(self.learning_rate), betas=(0.9, 0.98))
        table.train()
        encoder.train()
        for _ in range(int(self.epochs)):
            for batch in np.array_split(
                rng.permutation(len(inputs)), max(1, math.ceil(len(inputs) / batch_size))
            ):
                x = torch.from_numpy(inputs[batch]).to(device)
                y = torch.from_numpy(targets[batch]).to(device)
                w = torch.from_numpy(loss_weights[batch]).to(device)
                vectors = table()
                hidden = encoder(x, vectors)  # (B, L, d)
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
            sequence = self._forward(np.asarray(self.sequences_[block]))
            return self._blend(sequence, self._histories()[block])

        return score_sequences(self, users, forward)

    def fold_in(self, items: np.ndarray, weights: np.ndarray) -> np.ndarray | None:
        """The encoder run on `items` in the given (chronological) order, blended with EASE
        for them (their `weights`, faded by recency as in training)."""
        self._check_fitted()
        items = np.asarray(items, dtype=np.int64).reshape(-1)
        inside = (items >= 0) & (items < self.n_items_)
        items = items[inside]
        if len(items) == 0:
            return None
        length = self.sequences_.shape[1]
        sequence = np.full((1, length), -1, dtype=np.int64)
        tail = items[-length:]
        sequence[0, length - len(tail) :] = tail
        weights = np.asarray(weights, dtype=np.float32).reshape(-1)[inside]
        if self.apply_recency_bias:
            weights = weights * _fade(np.arange(len(items))[::-1], length)
        query = sp.csr_matrix((weights, items, [0, len(items)]), shape=(1, self.n_items_))
        return self._blend(self._forward(sequence), query)[0]

    def similar_items(self, item: int, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Cosine similarity of the (metadata-enriched) item embeddings."""
        self._check_fitted()
        vectors = np.asarray(self.item_vectors_, dtype=np.float32)
        norms = np.linalg.norm(vectors, axis=1)
        if 0 <= item < self.n_items_ and norms[item] > 0:
            with np.errstate(divide="ignore", invalid="ignore"):
                scores = (vectors @ vectors[item]) / (norms * norms[item])
            scores = np.where(norms > 0, scores, -np.inf).astype(np.float32)
        else:
            scores = np.array(self.popularity_, dtype=np.float32)
        if 0 <= item < self.n_items_:
            scores[item] = -np.inf
        items, values = top_k(scores[None, :], k)
        return items[0], values[0]

    # -- helpers ----------------------------------------------------------------------------

    def _heads(self) -> int:
        heads = max(int(self.num_heads), 1)
        if int(self.hidden_dimension) % heads:
            raise ValueError(
                f"hidden_dimension {self.hidden_dimension} is not a multiple of "
                f"num_heads {self.num_heads}"
            )
        return heads

    def _item_item(self, data: InteractionData) -> tuple[np.ndarray, np.ndarray]:
        """EASE neighbours and weights per item; none (width 0) when the blend is off or the
        catalog is too large for EASE's cubic-time inverse."""
        matrix = data.matrix().tocsr()
        if float(self.item_item_weight) <= 0 or not (
            0 < n_modelled_items(matrix, _ITEM_ITEM_MIN_EVENTS) <= int(self.item_item_max_items)
        ):
            empty = (data.n_items, 0)
            return np.zeros(empty, np.int32), np.zeros(empty, np.float32)
        return item_weights(
            matrix,
            float(self.item_item_l2),
            int(self.item_item_neighbours),
            _ITEM_ITEM_MIN_EVENTS,
        )

    def _histories(self) -> sp.csr_matrix:
        """users x items: each user's recency-weighted events, built once per model object."""
        histories = self.__dict__.get("_history_matrix")
        if histories is None:
            starts = np.asarray(self.history_starts_)
            histories = self._history_matrix = sp.csr_matrix(
                (self.history_weights_, self.history_items_, starts),
                shape=(len(starts) - 1, self.n_items_),
            )
        return histories

    def _blend(self, sequence: np.ndarray, query: sp.csr_matrix) -> np.ndarray:
        """The sequence model's scores plus ``item_item_weight`` times EASE's for the
        (recency-weighted) history `query`, each standardized per user over the catalog."""
        neighbours = np.asarray(self.neighbour_items_)
        if neighbours.shape[1] == 0:
            return sequence
        weights = self.__dict__.get("_item_item_matrix")
        if weights is None:  # CSR of the neighbour lists, built once per model object
            present = neighbours >= 0
            rows = np.repeat(np.arange(self.n_items_), present.sum(axis=1))
            weights = self._item_item_matrix = sp.csr_matrix(
                (np.asarray(self.neighbour_weights_)[present], (rows, neighbours[present])),
                shape=(self.n_items_, self.n_items_),
            )
        item_item = np.asarray((query @ weights).todense(), dtype=np.float32)
        return _standardized(sequence) + float(self.item_item_weight) * _standardized(item_item)

    def _forward(self, sequences: np.ndarray) -> np.ndarray:
        """(n, n_items) float32 scores for (n, L) item codes, left-padded with -1."""
        net = self._network()
        device = net["vectors"].device
        with torch.no_grad():
            tokens = torch.from_numpy(np.asarray(sequences, dtype=np.int64) + 1).to(device)
            hidden = net["encoder"](tokens, net["vectors"])[:, -1]
            return (hidden @ net["vectors"].T).cpu().numpy().astype(np.float32)

    def _network(self) -> dict[str, Any]:
        """The encoder and item vectors as torch objects, built once per model object."""
        net = self.__dict__.get("_net")
        if net is None:
            device = torch_device()
            length = self.sequences_.shape[1]
            dim = self.item_vectors_.shape[1]
            encoder = _Encoder(length, dim, self._heads(), int(self.num_blocks), self.dropout)
            encoder.load_state_dict(stored_weights(self, encoder))
            encoder.to(device).eval()
            vectors = torch.from_numpy(np.array(self.item_vectors_, dtype=np.float32)).to(device)
            net = self._net = {"encoder": encoder, "vectors": vectors}
        return net


class _ItemTable(nn.Module):
    """Item embeddings plus the mean embedding of each item's categorical metadata values."""

    def __init__(
        self, n_items: int, dim: int, values: np.ndarray, offsets: np.ndarray, n_values: int
    ) -> None:
        super().__init__()
        self.embedding = nn.Embedding(max(n_items, 1), dim)
        nn.init.normal_(self.embedding.weight, std=dim**-0.5)
        self.n_items = n_items
        self.metadata: nn.EmbeddingBag | None = None
        if n_values:
            self.metadata = nn.EmbeddingBag(n_values, dim, mode="sum")
            nn.init.normal_(self.metadata.weight, std=dim**-0.5)
            per_item = np.diff(offsets)
            share = np.repeat(1.0 / np.maximum(per_item, 1), per_item).astype(np.float32)
            self.register_buffer("values", torch.from_numpy(values.astype(np.int64)))
            self.register_buffer("offsets", torch.from_numpy(offsets[:-1].astype(np.int64)))
            self.register_buffer("share", torch.from_numpy(share))

    def forward(self) -> torch.Tensor:
        vectors = self.embedding.weight[: self.n_items]
        if self.metadata is not None:
            vectors = vectors + self.metadata(
                self.values, self.offsets, per_sample_weights=self.share
            )
        return vectors


class _Encoder(nn.Module):
    """Positional embeddings and causal self-attention blocks over embedded item sequences."""

    def __init__(self, length: int, dim: int, heads: int, blocks: int, dropout: float) -> None:
        super().__init__()
        self.position = nn.Parameter(torch.randn(length, dim) * dim**-0.5)
        self.dropout = nn.Dropout(float(dropout))
        layer = nn.TransformerEncoderLayer(
            dim,
            heads,
            dim_feedforward=dim,
            dropout=float(dropout),
            batch_first=True,
            norm_first=True,
        )
        self.blocks = nn.TransformerEncoder(layer, max(int(blocks), 1), enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.register_buffer(
            "causal", nn.Transformer.generate_square_subsequent_mask(length), persistent=False
        )

    def forward(self, tokens: torch.Tensor, vectors: torch.Tensor) -> torch.Tensor:
        """(B, L) tokens (item code + 1, 0 = padding) -> (B, L, d) hidden states."""
        padded = torch.cat([vectors.new_zeros(1, vectors.shape[1]), vectors])
        present = (tokens > 0).unsqueeze(-1).to(vectors.dtype)
        x = (padded[tokens] + self.position) * present
        x = self.dropout(x) * present
        x = self.blocks(x, mask=self.causal, is_causal=True)
        return self.norm(x)


def _categorical_values(data: InteractionData) -> tuple[np.ndarray, np.ndarray, int]:
    """Per item, codes of its categorical metadata values: (values, offsets, n_values).

    Item i's values are ``values[offsets[i]:offsets[i + 1]]``; a value is column=token.
    """
    n_items = data.n_items
    table = data.item_metadata
    columns = [
        name
        for name, kind in data.item_column_kinds.items()
        if kind == "categorical" and table is not None and name in table.column_names
    ]
    if not columns or table is None or table.num_rows != n_items:
        return np.zeros(0, np.int64), np.zeros(n_items + 1, np.int64), 0
    per_item: list[list[str]] = [[] for _ in range(n_items)]
    for name in columns:
        for row, value in enumerate(table.column(name).to_pylist()):
            if value is None:
                continue
            tokens = {token.strip() for token in str(value).split("|")}
            per_item[row].extend(sorted(f"{name}={token}" for token in tokens if token))
    vocabulary = sorted({token for tokens in per_item for token in tokens})
    code_of = {token: code for code, token in enumerate(vocabulary)}
    values = np.array([code_of[t] for tokens in per_item for t in tokens], dtype=np.int64)
    offsets = np.concatenate(([0], np.cumsum([len(tokens) for tokens in per_item])))
    return values, offsets.astype(np.int64), len(vocabulary)


def _standardized(scores: np.ndarray) -> np.ndarray:
    """Each row minus its mean, over its standard deviation (rows that are constant: zero)."""
    centred = scores - scores.mean(axis=1, keepdims=True)
    spread = centred.std(axis=1, keepdims=True)
    return np.divide(centred, spread, out=np.zeros_like(centred), where=spread > 0)


def _ranks(counts: np.ndarray) -> np.ndarray:
    """0..count-1 for each entry of `counts`, concatenated."""
    counts = np.asarray(counts, dtype=np.int64)
    total = int(counts.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    return np.arange(total) - np.repeat(starts, counts)


def score_sequences(
    model: Any, users: np.ndarray, forward: Callable[[np.ndarray], np.ndarray]
) -> np.ndarray:
    """Scores of a sequence model (``sequences_``, ``popularity_``): users with a history get
    ``forward(user codes)`` in blocks of _SCORE_BATCH; the others item popularity."""
    model._check_fitted()
    users = np.asarray(users).astype(np.int64, copy=False).reshape(-1)
    inside = (users >= 0) & (users < model.n_users_)
    warm = np.zeros(len(users), dtype=bool)
    warm[inside] = model.sequences_[users[inside], -1] >= 0
    scores = np.empty((len(users), model.n_items_), dtype=np.float32)
    scores[~warm] = model.popularity_
    rows = np.flatnonzero(warm)
    for start in range(0, len(rows), _SCORE_BATCH):
        block = rows[start : start + _SCORE_BATCH]
        scores[block] = forward(users[block])
    return scores


def store_weights(model: Model, module: nn.Module) -> None:
    """`module`'s tensors as the model's learned arrays ``weight_<name>_`` (replacing any)."""
    for name in [n for n in vars(model) if n.startswith(_WEIGHT_PREFIX)]:
        delattr(model, name)  # a refit replaces every tensor
    for key, value in module.state_dict().items():
        setattr(model, _attribute(key), value.detach().cpu().numpy().astype(np.float32))


def stored_weights(model: Model, module: nn.Module) -> dict[str, torch.Tensor]:
    """The state dict of `module` from the arrays `store_weights` gave `model`."""
    return {
        key: torch.from_numpy(np.array(getattr(model, _attribute(key)), dtype=np.float32))
        for key in module.state_dict()
    }


def _attribute(key: str) -> str:
    return f"{_WEIGHT_PREFIX}{key.replace('.', '__')}_"


# -- sequence training helpers, shared with the other torch recipes (aws-hrnn) ---------------


@dataclass(frozen=True)
class UserSequences:
    """Every user's events in time order: ``items[starts[u] : starts[u] + counts[u]]``."""

    items: np.ndarray  # int64 item code per event, grouped by user, oldest first
    weights: np.ndarray  # float32 event weight, in the same order
    counts: np.ndarray  # int64 events per user code
    starts: np.ndarray  # int64 offset of each user's first event

    @classmethod
    def of(cls, data: InteractionData) -> UserSequences:
        order = np.lexsort((data.timestamps, data.users))  # stable: ties keep input order
        counts = np.bincount(data.users, minlength=data.n_users).astype(np.int64)
        return cls(
            items=data.items[order].astype(np.int64),
            weights=data.weights[order].astype(np.float32),
            counts=counts,
            starts=np.concatenate(([0], np.cumsum(counts)[:-1])).astype(np.int64),
        )

    def newest(self, length: int) -> np.ndarray:
        """(n_users, length) int32: each user's newest `length` item codes, left-padded with -1."""
        n_users = len(self.counts)
        sequences = np.full((n_users, length), -1, dtype=np.int32)
        tail = np.minimum(self.counts, length)
        user_of = np.repeat(np.arange(n_users), tail)
        column = length - tail[user_of] + _ranks(tail)
        source = self.starts[user_of] + self.counts[user_of] - tail[user_of] + _ranks(tail)
        sequences[user_of, column] = self.items[source]
        return sequences

    def windows(
        self, length: int, recency_bias: bool, users: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Training sequences: (inputs as tokens, target item codes, loss weights), each (n, L),
        and the user code of each sequence (n,).

        Each history is cut into consecutive windows of `length` next-item predictions from
        the newest event back. Tokens are item code + 1 with 0 for padding; targets are -1
        where there is none. With `recency_bias`, a prediction's loss weight halves every
        `length` events further back than the newest `length`, never below 0.1. `users`
        (a boolean mask) limits the windows to those users.
        """
        items, weights, counts, starts = self.items, self.weights, self.counts, self.starts
        n_windows = np.where(counts >= 2, (counts - 1 + length - 1) // length, 0)
        if users is not None:
            n_windows = np.where(users, n_windows, 0)
        user_of = np.repeat(np.arange(len(counts)), n_windows)
        ends = starts[user_of] + counts[user_of] - _ranks(n_windows) * length  # exclusive
        index = ends[:, None] - length - 1 + np.arange(length + 1)[None, :]
        valid = index >= starts[user_of][:, None]
        safe = np.where(valid, index, 0)
        window_items = np.where(valid, items[safe], -1)
        inputs = window_items[:, :-1] + 1
        targets = window_items[:, 1:]
        target_valid = valid[:, 1:]
        loss_weights = np.where(target_valid, weights[safe[:, 1:]], 0.0).astype(np.float32)
        if recency_bias:
            newest = (starts + counts - 1)[user_of][:, None]
            loss_weights = loss_weights * _fade(newest - index[:, 1:], length)
        keep = (loss_weights > 0).any(axis=1)
        return inputs[keep], targets[keep], loss_weights[keep], user_of[keep]

    def recency_weights(self, length: int, recency_bias: bool) -> np.ndarray:
        """float32 per event, in this object's order: its weight, with `recency_bias` faded
        by its age in its user's history the way `windows` fades the loss."""
        if not recency_bias:
            return self.weights.copy()
        age = np.repeat(self.counts - 1, self.counts) - _ranks(self.counts)
        return self.weights * _fade(age, length)


def _fade(age: np.ndarray, length: int) -> np.ndarray:
    """float32 1 for the `length` newest events (age 0 = newest), then halving every `length`
    events further back, never below the floor."""
    fade = np.maximum(0.5 ** (np.maximum(age - length + 1, 0) / length), _RECENCY_FLOOR)
    return fade.astype(np.float32)


def next_item_loss(
    hidden: torch.Tensor,
    vectors: torch.Tensor,
    targets: torch.Tensor,
    weights: torch.Tensor,
    n_negatives: int,
    full: bool,
    rng: np.random.Generator,
) -> torch.Tensor:
    """Weighted mean softmax loss of predicting `targets` (n,) from `hidden` (n, d).

    `full`: the softmax over every row of `vectors` (the item vectors). Otherwise a sampled
    softmax against `n_negatives` items drawn uniformly, one draw for the whole batch.
    """
    if full:
        loss = nn.functional.cross_entropy(hidden @ vectors.T, targets, reduction="none")
    else:
        device = hidden.device
        draw = rng.integers(0, len(vectors), n_negatives)
        negatives = torch.from_numpy(draw).to(device)
        positive = (hidden * vectors[targets]).sum(dim=1, keepdim=True)
        negative = hidden @ vectors[negatives].T
        negative = negative.masked_fill(targets[:, None] == negatives[None, :], -1e9)
        logits = torch.cat([positive, negative], dim=1)
        zeros = torch.zeros(len(targets), dtype=torch.long, device=device)
        loss = nn.functional.cross_entropy(logits, zeros, reduction="none")
    return (loss * weights).sum() / weights.sum()


@contextmanager
def torch_training(seed: int, threads: int | None = None) -> Iterator[np.random.Generator]:
    """Seed torch, use `threads` (default: every core), flush denormals; yields a numpy
    generator with the seed."""
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads or cores())
    flushed = torch.set_flush_denormal(True)  # denormal floats slow CPU kernels badly
    try:
        torch.manual_seed(seed)
        yield np.random.default_rng(seed)
    finally:
        torch.set_num_threads(previous_threads)
        if flushed:
            torch.set_flush_denormal(False)


def torch_device() -> torch.device:
    """The GPU when torch sees one, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
