"""The training data a recipe sees: events as int32 codes into ID vocabularies, plus metadata.

Recipes never read files or know about datasets; training builds one of these
from a dataset group's Parquet data and the solution's configuration, and
hands it to `Model.fit`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import scipy.sparse as sp


@dataclass
class InteractionData:
    """Events in time order per user is *not* guaranteed; sort by `timestamps` where order matters.

    Every event array has one entry per event. `user_ids[users[k]]` is the user of event k.
    """

    user_ids: np.ndarray  # vocabulary: code -> user id (str, dtype object)
    item_ids: np.ndarray  # vocabulary: code -> item id (str, dtype object); items with
    # metadata but no events are in the vocabulary too (cold items)
    users: np.ndarray  # int32 user code per event
    items: np.ndarray  # int32 item code per event
    timestamps: np.ndarray  # int64 epoch seconds per event
    weights: np.ndarray  # float32 weight per event (eventsConfig weight, else 1.0)
    event_types: np.ndarray | None = None  # str per event (dtype object), when the data has them
    event_values: np.ndarray | None = None  # float32 per event (nan where absent)
    # Items/Users metadata, one row per vocabulary code (row i describes item_ids[i]), columns
    # already restricted by trainingDataConfig; None when there is no such dataset.
    item_metadata: pa.Table | None = None
    user_metadata: pa.Table | None = None
    # Names of metadata columns that are categorical / textual / numeric (for featurization).
    item_column_kinds: dict[str, str] = field(default_factory=dict)
    user_column_kinds: dict[str, str] = field(default_factory=dict)
    # The Items column flagged "itemName": true (aws-semantic-similarity), if training uses it.
    item_name_column: str | None = None

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    @property
    def n_events(self) -> int:
        return len(self.users)

    def matrix(self) -> sp.csr_matrix:
        """users x items, summed event weights (duplicates add up)."""
        matrix = sp.csr_matrix(
            (self.weights.astype(np.float32), (self.users, self.items)),
            shape=(self.n_users, self.n_items),
        )
        matrix.sum_duplicates()
        return matrix

    def subset(self, mask: np.ndarray) -> InteractionData:
        """The same vocabularies and metadata with only the events where `mask` is true."""
        return InteractionData(
            user_ids=self.user_ids,
            item_ids=self.item_ids,
            users=self.users[mask],
            items=self.items[mask],
            timestamps=self.timestamps[mask],
            weights=self.weights[mask],
            event_types=None if self.event_types is None else self.event_types[mask],
            event_values=None if self.event_values is None else self.event_values[mask],
            item_metadata=self.item_metadata,
            user_metadata=self.user_metadata,
            item_column_kinds=self.item_column_kinds,
            user_column_kinds=self.user_column_kinds,
            item_name_column=self.item_name_column,
        )
