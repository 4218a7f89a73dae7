"""What a trained solution version leaves beside its model, for serving to read.

`model/` holds the recipe's own arrays (recipes/base.py); here: the ID
vocabularies (code i is row i) and the user x item matrix of the training
interactions, so serving can exclude what a user already interacted with.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import scipy.sparse as sp

from openpersonalize.data.interactions import InteractionData

USERS, ITEMS, SEEN, MODEL = "users.parquet", "items.parquet", "seen.npz", "model"


def save(data: InteractionData, output: Path) -> None:
    pq.write_table(pa.table({"USER_ID": data.user_ids.astype(str)}), output / USERS)
    pq.write_table(pa.table({"ITEM_ID": data.item_ids.astype(str)}), output / ITEMS)
    sp.save_npz(output / SEEN, data.matrix(), compressed=False)


def load_vocabularies(output: Path) -> tuple[np.ndarray, np.ndarray]:
    users = pq.read_table(output / USERS).column(0).to_numpy(zero_copy_only=False)
    items = pq.read_table(output / ITEMS).column(0).to_numpy(zero_copy_only=False)
    return users, items


@dataclass
class Artifacts:
    user_ids: np.ndarray
    item_ids: np.ndarray
    seen: sp.csr_matrix
    user_index: dict[str, int] = field(init=False)
    item_index: dict[str, int] = field(init=False)
    #: The item IDs as Python strings, for answers (indexing a numpy array costs more).
    item_id_list: list[str] = field(init=False)

    def __post_init__(self) -> None:
        self.user_index = {user_id: code for code, user_id in enumerate(self.user_ids)}
        self.item_index = {item_id: code for code, item_id in enumerate(self.item_ids)}
        self.item_id_list = [str(item_id) for item_id in self.item_ids]


def load(output: Path) -> Artifacts:
    user_ids, item_ids = load_vocabularies(output)
    return Artifacts(user_ids, item_ids, sp.load_npz(output / SEEN).tocsr())
