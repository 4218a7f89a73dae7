"""User segments: the users most likely to interact with given items, best first.

A batch segment job asks one question per input line: for Item-Affinity the users most
likely to interact with one item (``{"itemId": "105"}``), for Item-Attribute-Affinity with
the items that have given attribute values (``{"itemAttributes": "ITEMS.genres = \\"Comedy\\"
AND ITEMS.genres = \\"Action\\""}``). Users are scored by the model's `user_affinity` for
the item or the set of matching items (recipes/item_affinity.py: the probability that the
user's next new item is among them); a user-segment filter
(``INCLUDE UserID WHERE Users.X IN (...)``) then keeps the users it selects.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from openpersonalize.context import Context
from openpersonalize.errors import InvalidInputException

MAX_SEGMENT_USERS = 5_000_000
# One term of an item-attribute query: ITEMS.<column> = <value> (a quoted string or a number).
_TERM = re.compile(
    r'^\s*ITEMS\.([A-Za-z_][A-Za-z0-9_]*)\s*=\s*("(?:[^"\\]|\\.)*"|-?\d+(?:\.\d+)?)\s*$',
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Term:
    column: str  # as the Items schema spells it
    value: str | float


def parse_item_attributes(
    text: str, schema_fields: dict[str, tuple[str, bool, bool]]
) -> list[Term]:
    """The terms of an itemAttributes query. `schema_fields` maps each Items column name
    (upper-cased) to (its spelling, categorical, textual). InvalidInputException names the
    term that is wrong."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidInputException("itemAttributes (a non-empty string) is required.")
    terms = []
    for raw in re.split(r"\s+AND\s+", text.strip(), flags=re.IGNORECASE):
        match = _TERM.match(raw)
        if not match:
            raise InvalidInputException(
                f"itemAttributes term {raw.strip()!r} is not of the form "
                'ITEMS.<column> = "value" (terms are joined by AND only).'
            )
        name, literal = match.groups()
        known = schema_fields.get(name.upper())
        if known is None:
            raise InvalidInputException(
                f"itemAttributes names ITEMS.{name}, which is not a column of the Items dataset."
            )
        column, _categorical, textual = known
        if textual:
            raise InvalidInputException(
                f"itemAttributes cannot select by the textual column ITEMS.{column}."
            )
        value: str | float
        if literal.startswith('"'):
            value = re.sub(r"\\(.)", r"\1", literal[1:-1])
        else:
            value = float(literal)
        terms.append(Term(column, value))
    return terms


def matching_items(
    terms: list[Term], item_metadata: pa.Table | None, categorical: set[str]
) -> np.ndarray:
    """Item codes (rows of `item_metadata`, aligned to the model's items) matching every term."""
    if item_metadata is None:
        raise InvalidInputException("itemAttributes needs an Items dataset with imported data.")
    keep = np.ones(item_metadata.num_rows, dtype=bool)
    for term in terms:
        column = item_metadata.column(term.column)
        if isinstance(term.value, float):
            values = pc.cast(column, pa.float64(), safe=False).to_numpy(zero_copy_only=False)
            keep &= np.nan_to_num(values, nan=np.inf) == term.value
            continue
        text = pc.utf8_lower(pc.cast(column, pa.string())).fill_null("")
        wanted = term.value.lower()
        if term.column in categorical:  # a categorical value holds "a|b|c": any one matches
            pattern = f"(^|\\|){re.escape(wanted)}($|\\|)"
            matches = pc.match_substring_regex(text, pattern).to_numpy(zero_copy_only=False)
        else:
            matches = pc.equal(text, wanted).to_numpy(zero_copy_only=False)
        keep &= matches
    return np.flatnonzero(keep)


def top_users(scores: np.ndarray, allowed: np.ndarray, k: int) -> np.ndarray:
    """The k allowed user codes with the highest scores, best first."""
    candidates = np.flatnonzero(allowed)
    if len(candidates) == 0 or k <= 0:
        return np.empty(0, dtype=np.int64)
    k = min(k, len(candidates))
    chosen = candidates[np.argpartition(-scores[candidates], k - 1)[:k]]
    return chosen[np.argsort(-scores[chosen], kind="stable")]


class Segmenter:
    """Answers segment queries against one trained solution version."""

    def __init__(
        self, context: Context, version_arn: str, num_results: int, filter_arn: str | None
    ) -> None:
        from openpersonalize.serving.engine import (
            MODELS,
            forgotten_users,
            item_catalog,
            user_segment_filter,
        )

        self.deployed = MODELS.get(context, version_arn)
        self.catalog = item_catalog(context, self.deployed)
        self.num_results = num_results
        self.filter = (
            user_segment_filter(context, filter_arn, self.deployed, self.catalog)
            if filter_arn
            else None
        )
        model = self.deployed.model
        # Only users the model learned: a segment lists users to reach, by their history.
        self.trained_users = np.zeros(model.n_users_, dtype=bool)
        seen = self.deployed.artifacts.seen
        self.trained_users[: seen.shape[0]] = np.diff(seen.indptr) > 0
        user_index = self.deployed.artifacts.user_index
        for user in forgotten_users(context, self.deployed):  # deleted after training
            code = user_index.get(user, -1)
            if 0 <= code < model.n_users_:
                self.trained_users[code] = False
        items = self.catalog.schemas.get("Items")
        self.item_fields = {
            field.name.upper(): (field.name, field.categorical, field.textual)
            for field in (items.fields if items is not None else ())
        }

    def for_items(self, item_codes: np.ndarray, filter_values: dict[str, str] | None) -> list[str]:
        if len(item_codes) == 0:
            return []
        scores = self.deployed.model.user_affinity(np.asarray(item_codes, dtype=np.int64))
        allowed = self.trained_users.copy()
        if self.filter is not None:
            allowed &= self.filter(filter_values or {})
        users = top_users(scores, allowed, self.num_results)
        return [str(self.deployed.artifacts.user_ids[code]) for code in users]

    def item_affinity(self, record: dict[str, Any]) -> list[str]:
        item_id = record.get("itemId")
        if not isinstance(item_id, str) or not item_id:
            raise InvalidInputException("itemId (a non-empty string) is required on each line.")
        code = self.deployed.artifacts.item_index.get(item_id, -1)
        if code < 0:
            raise InvalidInputException(f"The item {item_id} is not in the training data.")
        return self.for_items(np.array([code]), record.get("filterValues"))

    def attribute_affinity(self, record: dict[str, Any]) -> list[str]:
        terms = parse_item_attributes(record.get("itemAttributes"), self.item_fields)  # type: ignore[arg-type]
        codes = matching_items(terms, self.catalog.item_metadata, self.catalog.categorical)
        return self.for_items(codes, record.get("filterValues"))
