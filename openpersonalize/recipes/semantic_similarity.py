"""aws-semantic-similarity: items whose name and description say the same things.

The service embeds each item's text with a neural language model. This recipe does not: it
is a **lexical** model, named as such wherever it shows (DescribeRecipe, the solution
version's training log). No package on the registries this project installs from ships a
text-embedding model together with its weights (the libraries that run such models fetch
the weights from a model hub at run time, which a self-hosted server must not do), so the
text is embedded by latent semantic analysis:

* one document per item: the Items field flagged ``"itemName": true`` followed by the fields
  flagged ``"textual": true``, as a TF-IDF bag of words (sublinear term frequency, words
  shared by at least two items, see `features.metadata_features`). One document rather than
  one unit-length block per field: on the Retail Demo Store catalog a separate name block,
  weighing as much as the whole description, lowers precision@10 from 0.73 to 0.62;
* the TF-IDF matrix is reduced by a seeded truncated SVD to `embedding_dim` dimensions
  (LSA): words that occur in the same descriptions end up close, so "sofa" and "couch"
  relate items that share neither word once enough descriptions use both (there, 128
  dimensions beat the unreduced TF-IDF cosine, 0.68; see benchmarks/semantic.py);
* items are compared by the cosine of their reduced vectors; the best
  `NeighbourModel.max_neighbours` of each are kept.

Two ranking factors re-rank the close neighbours at request time, as the campaign's (or batch
inference job's) ``rankingInfluence`` says, each weight in [0, 1] (default 0). A close
neighbour is one at least `CLOSE_SHARE` as similar as the item's best match; its score
becomes ``cosine + w_freshness * freshness + w_popularity * popularity``, with

* freshness: the percentile of the item's ``CREATION_TIMESTAMP`` among the items that have
  one (0 = the oldest, 1 = the newest), 0 without one;
* popularity: the percentile of the item's event count in the Interactions data among the
  items with events (0 = the fewest, 1 = the most), 0 without events.

Percentiles, not raw values, so that each factor spreads over [0, 1] whatever the catalog's
ages or the events' long tail (a log of counts squeezes most items near the top).

Both are computed at training, as the service recomputes them only then. A boosted score is
never below its cosine, and every other neighbour's cosine is below `CLOSE_SHARE` of the
best, so the factors re-order the close matches, at full weight strongly, but never lift a
loosely related item above them (every item sharing a common word has some small positive
cosine; a bonus for all of them would bring in items about something else).

An Interactions dataset is optional: without one the popularity factor is 0 and there are no
histories to score users by (similar items need none). Items without any text have no
neighbours; their lists fall back to the catalog by popularity, as every neighbour model's
do.

Neighbours are exact dot products over blocks of items: quadratic in the catalog, fine to
some 10^5 items.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Self

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from openpersonalize.data.interactions import InteractionData
from openpersonalize.data.training_data import TrainingDataError
from openpersonalize.recipes.base import top_k
from openpersonalize.recipes.features import metadata_features, reduce_dimensions
from openpersonalize.recipes.similar_items import _nearest, _unit_rows
from openpersonalize.recipes.sims import NeighbourModel, _with_popularity_fallback

__all__ = [
    "FRESHNESS",
    "POPULARITY",
    "RECIPE_NAME",
    "TEXT_MODEL",
    "SemanticSimilarityModel",
    "missing_text_fields",
]

RECIPE_NAME = "aws-semantic-similarity"
#: What embeds the text, in the words the recipe's description and training log use.
TEXT_MODEL = "lexical TF-IDF + LSA (truncated SVD), not a neural text embedding"
FRESHNESS, POPULARITY = "FRESHNESS", "POPULARITY"
#: Neighbours at least this share as similar as the best match are what the factors re-rank.
CLOSE_SHARE = 0.5
_CREATION = "CREATION_TIMESTAMP"

log = logging.getLogger("openpersonalize.training")


def missing_text_fields(item_name: str | None, textual: Sequence[str]) -> str | None:
    """What the Items data lacks for this recipe, worded for an error; None if nothing.

    The one statement of the recipe's data requirement: CreateSolution checks the Items
    schema with it, training the columns it gets.
    """
    lacking = []
    if item_name is None:
        lacking.append('one string field flagged "itemName": true (the item\'s name)')
    if not textual:
        lacking.append('a string field flagged "textual": true (its description)')
    if not lacking:
        return None
    return (
        f"The {RECIPE_NAME} recipe builds item embeddings from the Items dataset, which needs "
        + " and ".join(lacking)
        + "."
    )


class SemanticSimilarityModel(NeighbourModel):
    """Lexical text similarity of items with freshness and popularity factors; see the
    module docstring. ``embedding_dim`` is an internal setting (the recipe has no
    hyperparameters)."""

    def __init__(self, embedding_dim: int = 128, random_state: int = 0) -> None:
        self.embedding_dim = embedding_dim
        self.random_state = random_state

    def fit(self, data: InteractionData) -> Self:
        item_name, textual = _text_columns(data)
        self._learn_history(data)
        assert data.item_metadata is not None  # _text_columns refused data without it
        columns = list(dict.fromkeys([item_name, *textual]))  # a name may be textual too
        document = _document(data.item_metadata, columns)
        features = metadata_features(
            pa.table({"TEXT": document}), {"TEXT": "textual"}, data.n_items
        )
        embedding = _unit_rows(
            reduce_dimensions(features, int(self.embedding_dim), int(self.random_state))
        ).astype(np.float32)
        with_text = int(np.count_nonzero(np.linalg.norm(embedding, axis=1) > 0))
        if with_text == 0:
            raise TrainingDataError(
                f"No item has text in {', '.join(columns)} that another item shares: "
                f"the {RECIPE_NAME} recipe has nothing to compare."
            )
        self._set_neighbours(
            *_nearest(embedding, np.ones(data.n_items, dtype=np.float32), int(self.max_neighbours))
        )
        self.freshness_ = _freshness(data.item_metadata, data.n_items)
        self.popularity_factor_ = _percentiles(
            np.where(self.popularity_ > 0, self.popularity_, np.nan)
        )
        self.embedding_dims_ = int(embedding.shape[1])
        log.info(
            "%s: text model %s; fields %s; %d of %d items have text; %d dimensions",
            RECIPE_NAME,
            TEXT_MODEL,
            ", ".join(columns),
            with_text,
            data.n_items,
            self.embedding_dims_,
        )
        return self

    def similar_items(
        self, item: int, k: int, ranking_influence: Mapping[str, float] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The item's neighbours, the close ones re-ranked by the ranking factors' weights
        (FRESHNESS, POPULARITY; each 0 unless given), then the rest of the catalog by
        popularity."""
        self._check_fitted()
        reached = np.zeros((1, self.n_items_), dtype=np.float32)
        if 0 <= item < self.n_items_:
            start, stop = self.neighbour_indptr_[item], self.neighbour_indptr_[item + 1]
            neighbours = self.neighbour_items_[start:stop]
            scores = np.array(self.neighbour_scores_[start:stop], dtype=np.float32)
            weights = {
                key.upper(): float(value) for key, value in (ranking_influence or {}).items()
            }
            close = scores >= CLOSE_SHARE * scores.max(initial=0.0)
            bonus = weights.get(FRESHNESS, 0.0) * self.freshness_[neighbours]
            bonus += weights.get(POPULARITY, 0.0) * self.popularity_factor_[neighbours]
            reached[0, neighbours] = np.where(close, scores + bonus, scores)
        ranked = _with_popularity_fallback(reached, self._popularity_share())
        if 0 <= item < self.n_items_:
            ranked[0, item] = -np.inf
        items, values = top_k(ranked, k)
        return items[0], values[0]


def _text_columns(data: InteractionData) -> tuple[str, list[str]]:
    """The item-name column and the textual columns training got; TrainingDataError without."""
    table = data.item_metadata
    present = set(table.column_names) if table is not None else set()
    item_name = data.item_name_column if data.item_name_column in present else None
    textual = [
        name
        for name, kind in data.item_column_kinds.items()
        if kind == "textual" and name in present
    ]
    problem = missing_text_fields(item_name, textual)
    if table is None:
        problem = (
            f"The {RECIPE_NAME} recipe trains on the Items dataset, and there is no Items data: "
            'import items with an "itemName" field and a "textual" field first.'
        )
    if problem is not None:
        raise TrainingDataError(problem)
    assert item_name is not None
    return item_name, textual


def _document(table: pa.Table, columns: list[str]) -> pa.ChunkedArray | pa.Array:
    """Each item's fields joined into one text (a missing value adds nothing)."""
    texts = [pc.cast(table.column(name), pa.string()) for name in columns]
    if len(texts) == 1:
        return texts[0]
    return pc.binary_join_element_wise(*texts, " ", null_handling="replace", null_replacement="")


def _freshness(table: pa.Table, n_items: int) -> np.ndarray:
    """Per item: the percentile of its CREATION_TIMESTAMP among items with one; 0 without."""
    out = np.zeros(n_items, dtype=np.float32)
    if _CREATION not in table.column_names:
        return out
    return _percentiles(table.column(_CREATION).to_numpy(zero_copy_only=False))


def _percentiles(values: np.ndarray) -> np.ndarray:
    """Each finite value's percentile among them (lowest 0, highest 1); 0 where not finite."""
    values = np.asarray(values, dtype=np.float64)
    out = np.zeros(len(values), dtype=np.float32)
    known = np.flatnonzero(np.isfinite(values))
    if len(known) == 0:
        return out
    # Equal values share a percentile: the rank of the distinct value.
    distinct, rank = np.unique(values[known], return_inverse=True)
    out[known] = rank / (len(distinct) - 1) if len(distinct) > 1 else 1.0
    return out
