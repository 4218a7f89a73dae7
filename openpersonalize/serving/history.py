"""What each user interacted with in the imported Interactions data, with the event types.

Filters on ``Interactions.EVENT_TYPE`` ("items the user clicked", "everything the user has
seen") read it: the service looks at the newest 100 interactions per user and event type,
from imported data and streamed events alike (streamed ones come with each request). It is
built once per model and import, with array operations only, and kept as a CSR-like layout:
user ``u``'s interactions are rows ``indptr[u]:indptr[u + 1]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

PER_USER_AND_TYPE = 100  # the service's quota of interactions a filter considers


@dataclass(frozen=True)
class InteractionHistory:
    user_index: dict[str, int]
    indptr: np.ndarray  # int64, one more than there are users
    items: np.ndarray  # int64 item codes of the model's vocabulary
    types: np.ndarray  # int32 index into type_names
    type_names: tuple[str, ...]

    def of(self, user_id: str | None) -> list[tuple[int, str]]:
        """(item code, EVENT_TYPE) of the user's imported interactions ("" without a type)."""
        row = self.user_index.get(user_id or "", -1)
        if row < 0:
            return []
        start, end = int(self.indptr[row]), int(self.indptr[row + 1])
        names = self.type_names
        return [
            (int(code), names[kind])
            for code, kind in zip(self.items[start:end], self.types[start:end], strict=True)
        ]


def build(table: pa.Table, item_ids: np.ndarray) -> InteractionHistory:
    """The history of every user in ``table`` (USER_ID, ITEM_ID, TIMESTAMP and, when the
    schema has it, EVENT_TYPE), for items of the model's vocabulary ``item_ids``."""
    if table.num_rows == 0:
        return InteractionHistory({}, np.zeros(1, np.int64), _NONE, _NONE.astype(np.int32), ("",))
    users = pc.dictionary_encode(table.column("USER_ID").combine_chunks())
    user_codes = users.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    items = pc.index_in(table.column("ITEM_ID"), value_set=pa.array(item_ids.astype(str)))
    item_codes = items.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
    if "EVENT_TYPE" in table.column_names:
        types = pc.dictionary_encode(table.column("EVENT_TYPE").combine_chunks().fill_null(""))
        type_codes = types.indices.to_numpy(zero_copy_only=False).astype(np.int32)
        type_names = tuple(str(t) for t in types.dictionary.to_pylist())
    else:
        type_codes, type_names = np.zeros(table.num_rows, np.int32), ("",)
    timestamps = table.column("TIMESTAMP").to_numpy().astype(np.int64)

    known = item_codes >= 0  # items the model can't recommend can't be filtered either
    user_codes, item_codes = user_codes[known], item_codes[known]
    type_codes, timestamps = type_codes[known], timestamps[known]
    # Newest first within each (user, type); keep the first PER_USER_AND_TYPE of each group.
    order = np.lexsort((-timestamps, type_codes, user_codes))
    user_codes, item_codes, type_codes = user_codes[order], item_codes[order], type_codes[order]
    group_start = np.ones(len(order), dtype=bool)
    group_start[1:] = (np.diff(user_codes) != 0) | (np.diff(type_codes) != 0)
    starts = np.flatnonzero(group_start)
    rank = np.arange(len(order)) - np.repeat(starts, np.diff(np.append(starts, len(order))))
    kept = rank < PER_USER_AND_TYPE
    user_codes, item_codes, type_codes = user_codes[kept], item_codes[kept], type_codes[kept]

    n_users = len(users.dictionary)
    indptr = np.zeros(n_users + 1, dtype=np.int64)
    np.cumsum(np.bincount(user_codes, minlength=n_users), out=indptr[1:])
    user_index = {str(user_id): code for code, user_id in enumerate(users.dictionary.to_pylist())}
    return InteractionHistory(user_index, indptr, item_codes, type_codes, type_names)


_NONE = np.zeros(0, dtype=np.int64)
