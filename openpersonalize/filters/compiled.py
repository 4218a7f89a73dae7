"""Compile a parsed filter into a vectorized item mask for the serving hot path.

A ``CompiledFilter`` is built once per (filter, model): every Items column the filter reads is
indexed (token -> item codes; multi-valued categorical values split on ``|``) or turned into a
float array, and conditions without placeholders are evaluated to boolean masks up front. A
request then costs a few numpy operations over the catalog: no Python loop runs per item.

Semantics (Amazon Personalize's, as documented):

* An expression's WHERE conditions are combined with AND binding tighter than OR.
* ``IN`` is an exact, case-sensitive string match; a multi-valued categorical item matches if
  any of its values matches. ``NOT IN`` is the complement of ``IN`` (an item with no value
  for the field is "not in" any list). Comparisons are numeric; a missing value never
  compares true. Only ``Interactions.EVENT_TYPE`` matches case-insensitively.
* ``Interactions.EVENT_TYPE IN (...)`` selects the items among the user's recent interactions
  (``UserContext.recent_events``) with one of the event types; ``*`` matches every type.
  ``NOT IN`` selects items the user interacted with under some other event type.
* ``IF CurrentUser...`` gates an expression: when the user's Users row fails the test (or the
  user has no row), the expression does not apply. ``CurrentUser`` values are matched
  against the whole value and against its ``|``-separated parts.
* An INCLUDE expression needs a value for each of its placeholders
  (InvalidInputException otherwise); an EXCLUDE expression lacking one is skipped.
* Expressions that apply combine as the service combines them: (union of INCLUDEs) minus
  (union of EXCLUDEs); with no INCLUDE every item may be included.
* ``CurrentItem.FIELD`` values (related-items filters) need ``UserContext.current_item``.

* ActionID filters (``target`` "ActionID") read the Actions data for the actions and
  ``Action_Interactions.EVENT_TYPE`` against the user's recent action interactions, whose
  types match in any of their spellings (``"NOT_TAKEN"`` matches ``"Not Taken"``).

Not supported for item masks (InvalidInputException): UserID expressions, which filter user
segments rather than item recommendations.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from openpersonalize.data.schema import action_event_type, event_type_key
from openpersonalize.errors import InvalidInputException
from openpersonalize.filters.expression import (
    COMPARISONS,
    EVENT_DATASETS,
    Condition,
    CurrentItemField,
    Expression,
    Filter,
    Placeholder,
)

__all__ = ["CompiledFilter", "UserContext"]

Values = Mapping[str, tuple[str, ...]]


@dataclass
class UserContext:
    """What a request knows about its user (and, for related items, its item)."""

    # (item code, EVENT_TYPE) of the user's most recent interactions, newest first; the
    # caller keeps at most 100 per event type, as the service does.
    recent_events: list[tuple[int, str]] = field(default_factory=list)
    # The user's Users row, for IF CurrentUser conditions; None when the user has none.
    metadata: Mapping[str, object] | None = None
    # The item code of a related-items request (for CurrentItem.FIELD values).
    current_item: int | None = None


def _number_text(value: float) -> str:
    """A number literal as the string it matches in a string column (10.0 -> "10")."""
    return str(int(value)) if value.is_integer() else repr(value)


def _as_float(text: str, placeholder: str, where: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise InvalidInputException(
            f'filterValues "{placeholder}" must be a number for {where}, got "{text}"'
        ) from None


_COMPARE: dict[str, Callable[[np.ndarray, float], np.ndarray]] = {
    "=": np.equal,
    "<": np.less,
    "<=": np.less_equal,
    ">": np.greater,
    ">=": np.greater_equal,
}


class _Column:
    """One Items column, indexed for IN (strings) or as floats (numbers)."""

    def __init__(self, name: str, array: pa.Array | None, categorical: bool, n: int) -> None:
        self.name = name
        self.categorical = categorical
        self.n = n
        self.numeric = array is not None and (
            pa.types.is_integer(array.type)
            or pa.types.is_floating(array.type)
            or pa.types.is_boolean(array.type)
        )
        self.floats: np.ndarray = np.full(n, np.nan)
        self.index: dict[str, np.ndarray] = {}
        self.raw: np.ndarray = np.full(n, None, dtype=object)  # per item, for CurrentItem
        if array is None:  # no Items data or no such column: every value is missing
            return
        if self.numeric:
            self.floats = pc.cast(array, pa.float64()).to_numpy(zero_copy_only=False)
            return
        strings = pc.cast(array, pa.string()) if not pa.types.is_string(array.type) else array
        self.raw = strings.to_numpy(zero_copy_only=False)
        self.index = _token_index(strings, categorical)

    def tokens_of(self, code: int) -> list[str]:
        """The values of one item (split when categorical)."""
        value = self.raw[code]
        if value is None:
            return []
        return [t for t in value.split("|") if t] if self.categorical else [value]

    def match_any(self, tokens: Iterable[str]) -> np.ndarray:
        out = np.zeros(self.n, dtype=bool)
        for token in tokens:
            codes = self.index.get(token)
            if codes is not None:
                out[codes] = True
        return out


def _token_index(strings: pa.Array, categorical: bool) -> dict[str, np.ndarray]:
    """token -> int64 item codes, built with Arrow kernels (no Python loop per item)."""
    if categorical:
        lists = pc.split_pattern(strings, "|")
        flat = pc.list_flatten(lists)
        parents = pc.list_parent_indices(lists).to_numpy(zero_copy_only=False)
        keep = pc.and_(pc.is_valid(flat), pc.not_equal(flat, "")).to_numpy(zero_copy_only=False)
        keep = np.asarray(keep, dtype=bool)
        flat = flat.filter(pa.array(keep))
        parents = parents[keep]
    else:
        valid = np.asarray(pc.is_valid(strings).to_numpy(zero_copy_only=False), dtype=bool)
        flat = strings.filter(pa.array(valid))
        parents = np.flatnonzero(valid)
    if len(flat) == 0:
        return {}
    encoded = pc.dictionary_encode(flat)
    codes = encoded.indices.to_numpy(zero_copy_only=False)
    order = np.argsort(codes, kind="stable")
    bounds = np.flatnonzero(np.diff(codes[order])) + 1
    groups = np.split(parents[order].astype(np.int64), bounds)
    present = codes[order][np.concatenate(([0], bounds))]
    words = encoded.dictionary.to_pylist()
    return {words[c]: g for c, g in zip(present.tolist(), groups, strict=True)}


def _align(
    table: pa.Table, columns: list[str], item_ids: np.ndarray, id_column: str = "ITEM_ID"
) -> pa.Table:
    """Rows of ``table`` in code order; a table with the ID column is joined on it."""
    present = [c for c in columns if c in table.column_names]
    if id_column not in table.column_names:
        if table.num_rows != len(item_ids):
            raise ValueError(
                f"item_metadata has {table.num_rows} rows for {len(item_ids)} items and no "
                "ITEM_ID column to align them"
            )
        return table.select(present)
    ids = pc.cast(table.column(id_column).combine_chunks(), pa.string())
    # A later row replaces an earlier one with the same ID: look IDs up in reversed order.
    reverse = np.arange(table.num_rows - 1, -1, -1)
    rows_rev = pc.index_in(pa.array(item_ids, type=pa.string()), value_set=ids.take(reverse))
    rows = np.asarray(pc.fill_null(rows_rev, -1).to_numpy(zero_copy_only=False), dtype=np.int64)
    take = np.where(rows >= 0, reverse[np.maximum(rows, 0)], -1)
    return table.select(present).take(pa.array(take, mask=take < 0))


MaskFn = Callable[[UserContext, Values], np.ndarray]
# Per filter target: the dataset its conditions select by and that dataset's ID column.
_ENTITIES = {
    "ItemID": ("Items", "ITEM_ID"),
    "UserID": ("Users", "USER_ID"),
    "ActionID": ("Actions", "ACTION_ID"),
}
_WHAT_FILTERS = {
    "ItemID": "ItemID expressions filter item recommendations",
    "UserID": "UserID expressions filter user segments",
    "ActionID": "ActionID expressions filter action recommendations",
}


class CompiledFilter:
    """A filter ready to produce item masks for one model's item vocabulary, or (``target``
    "UserID", a user-segment filter) user masks for its user vocabulary: then ``item_ids``
    and ``item_metadata`` are the users and the Users data, and ``user_events`` the
    (user code, EVENT_TYPE) of every interaction, for Interactions conditions."""

    def __init__(
        self,
        filter: Filter,
        item_ids: np.ndarray,
        item_metadata: pa.Table | None,
        categorical_columns: set[str],
        *,
        target: str = "ItemID",
        user_events: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> None:
        for expression in filter.expressions:
            if expression.target != target:
                raise InvalidInputException(
                    f"The filter has a {expression.action} {expression.target} expression; "
                    f"{_WHAT_FILTERS[expression.target]} and can't filter "
                    f"{_WHAT_FILTERS[target].split(' filter ', 1)[1]}"
                )
        self.filter = filter
        self.n = len(item_ids)
        self._item_ids = item_ids
        self._entity, id_column = _ENTITIES[target]
        self._user_events = user_events
        used = sorted(
            {
                c.column
                for e in filter.expressions
                for c in e.conditions
                if c.dataset == self._entity
            }
            | {
                v.column
                for e in filter.expressions
                for c in e.conditions
                for v in c.values
                if isinstance(v, CurrentItemField)
            }
        )
        table = None
        if item_metadata is not None and used:
            table = _align(item_metadata, used, item_ids, id_column)
        self._columns: dict[str, _Column] = {}
        for name in used:
            if name == id_column:  # the item's (user's) own ID, always known
                array = pa.array(item_ids, type=pa.string())
            elif table is not None and name in table.column_names:
                array = table.column(name).combine_chunks()
            else:
                array = None
            self._columns[name] = _Column(name, array, name in categorical_columns, self.n)
        self._expressions = [self._compile(e) for e in filter.expressions]
        self._required = tuple(
            dict.fromkeys(p for e in self._expressions if e.include for p in e.placeholders)
        )

    @property
    def reads_interactions(self) -> bool:
        """Whether masks need the user's interactions (an Interactions.EVENT_TYPE condition)."""
        return any(
            c.dataset in EVENT_DATASETS for e in self.filter.expressions for c in e.conditions
        )

    def required_placeholders(self) -> tuple[str, ...]:
        """Parameters a request must give values for (those of INCLUDE expressions)."""
        return self._required

    def mask(self, user: UserContext, values: Values) -> np.ndarray:
        """True for each item code that may be recommended to ``user`` with these values."""
        missing = [p for p in self._required if p not in values]
        if missing:
            raise InvalidInputException(
                f'The filter needs a value for parameter "{missing[0]}" in filterValues '
                "(INCLUDE expressions need values for all their parameters)"
            )
        included: np.ndarray | None = None
        excluded: np.ndarray | None = None
        for expression in self._expressions:
            if not expression.include and any(p not in values for p in expression.placeholders):
                continue  # the service skips an EXCLUDE whose values were not given
            if not all(test(user, values) for test in expression.gates):
                continue
            matched = expression.where(user, values)
            if expression.include:
                included = (
                    matched.copy()
                    if included is None
                    else np.logical_or(included, matched, out=included)
                )
            else:
                excluded = (
                    matched.copy()
                    if excluded is None
                    else np.logical_or(excluded, matched, out=excluded)
                )
        allowed = np.ones(self.n, dtype=bool) if included is None else included
        if excluded is not None:
            allowed &= ~excluded
        return allowed

    # -------------------------------------------------------------------- compilation

    def _compile(self, expression: Expression) -> _CompiledExpression:
        masks = [self._condition(c) for c in expression.conditions]
        # AND binds tighter than OR: split the chain into AND-groups at each OR.
        groups: list[list[MaskFn]] = [[masks[0]]]
        for connector, mask in zip(expression.connectors, masks[1:], strict=True):
            if connector == "OR":
                groups.append([mask])
            else:
                groups[-1].append(mask)
        where = _combine(groups)
        if all(isinstance(m, _Constant) for m in masks):
            constant = where(UserContext(), {})
            where = _Constant(constant)
        placeholders = tuple(
            dict.fromkeys(
                v.name
                for c in (*expression.conditions, *expression.user_conditions)
                for v in c.values
                if isinstance(v, Placeholder)
            )
        )
        gates = [_user_gate(c) for c in expression.user_conditions]
        return _CompiledExpression(expression.action == "INCLUDE", placeholders, gates, where)

    def _condition(self, condition: Condition) -> MaskFn:
        if condition.dataset == "Action_Interactions":
            return _interactions(condition, self.n, _action_event_key)
        if condition.dataset == "Interactions":
            if self._entity == "Users":
                return _users_with_events(condition, self.n, self._user_events)
            return _interactions(condition, self.n)
        column = self._columns[condition.column]
        where = f"{self._entity}.{condition.column}"
        dynamic = any(isinstance(v, (Placeholder, CurrentItemField)) for v in condition.values)

        if condition.operator in COMPARISONS:
            compare = _COMPARE[condition.operator]
            (value,) = condition.values

            def comparison(user: UserContext, values: Values) -> np.ndarray:
                bound = self._scalar(value, user, values, where)
                return compare(column.floats, bound)

            fn: MaskFn = comparison
        else:
            negate = condition.operator == "NOT IN"

            def membership(user: UserContext, values: Values) -> np.ndarray:
                if column.numeric:
                    wanted = self._numbers(condition.values, user, values, where)
                    hit = np.isin(column.floats, wanted)
                else:
                    hit = column.match_any(self._strings(condition.values, user, values))
                return ~hit if negate else hit

            fn = membership
        if dynamic:
            return fn
        return _Constant(fn(UserContext(), {}))

    # -------------------------------------------------------------------- value resolution

    def _current(self, ref: CurrentItemField, user: UserContext) -> _Column:
        if user.current_item is None:
            raise InvalidInputException(
                f"The filter uses CurrentItem.{ref.column}, which needs a related-items "
                "request (one with an itemId)"
            )
        return self._columns[ref.column]

    def _scalar(self, value: object, user: UserContext, values: Values, where: str) -> float:
        """The one number a comparison compares with."""
        if isinstance(value, float):
            return value
        if isinstance(value, CurrentItemField):
            column = self._current(value, user)
            assert user.current_item is not None
            return float(column.floats[user.current_item])
        assert isinstance(value, Placeholder)
        given = values[value.name]
        if len(given) != 1:
            raise InvalidInputException(
                f'filterValues "{value.name}" must be a single number for {where}, got '
                f"{len(given)} values"
            )
        return _as_float(given[0], value.name, where)

    def _numbers(
        self, items: tuple[object, ...], user: UserContext, values: Values, where: str
    ) -> np.ndarray:
        out: list[float] = []
        for value in items:
            if isinstance(value, float):
                out.append(value)
            elif isinstance(value, Placeholder):
                out.extend(_as_float(v, value.name, where) for v in values[value.name])
            elif isinstance(value, CurrentItemField):
                column = self._current(value, user)
                assert user.current_item is not None
                out.append(float(column.floats[user.current_item]))
            # a string literal can't equal a number (check_filter refuses it)
        return np.asarray(out, dtype=np.float64)

    def _strings(self, items: tuple[object, ...], user: UserContext, values: Values) -> list[str]:
        out: list[str] = []
        for value in items:
            if isinstance(value, str):
                out.append(value)
            elif isinstance(value, float):
                out.append(_number_text(value))
            elif isinstance(value, Placeholder):
                out.extend(values[value.name])
            elif isinstance(value, CurrentItemField):
                column = self._current(value, user)
                assert user.current_item is not None
                if column.numeric:
                    number = float(column.floats[user.current_item])
                    if not np.isnan(number):
                        out.append(_number_text(number))
                else:
                    out.extend(column.tokens_of(user.current_item))
        return out


@dataclass
class _CompiledExpression:
    include: bool
    placeholders: tuple[str, ...]  # of WHERE and IF together
    gates: list[Callable[[UserContext, Values], bool]]  # IF CurrentUser tests, all must hold
    where: MaskFn


class _Constant:
    """A mask that does not depend on the request (never mutated by callers)."""

    def __init__(self, mask: np.ndarray) -> None:
        mask.setflags(write=False)
        self.mask = mask

    def __call__(self, user: UserContext, values: Values) -> np.ndarray:
        return self.mask


def _combine(groups: list[list[MaskFn]]) -> MaskFn:
    """OR of AND-groups; builds new arrays so that constant masks stay untouched."""
    if len(groups) == 1 and len(groups[0]) == 1:
        return groups[0][0]

    def combined(user: UserContext, values: Values) -> np.ndarray:
        result: np.ndarray | None = None
        for group in groups:
            part = group[0](user, values)
            for fn in group[1:]:
                part = np.logical_and(part, fn(user, values))
            result = part if result is None else np.logical_or(result, part)
        assert result is not None
        return result

    return combined


def _event_types(
    condition: Condition, values: Values, key: Callable[[str], str] = event_type_key
) -> set[str]:
    """The condition's event types as `key` spells them ("*" kept as the wildcard)."""
    out: set[str] = set()
    for value in condition.values:
        if isinstance(value, Placeholder):
            out.update("*" if v == "*" else key(v) for v in values[value.name])
        elif isinstance(value, float):
            out.add(key(_number_text(value)))
        elif isinstance(value, str):
            out.add("*" if value == "*" else key(value))
    return out


def _action_event_key(event_type: str) -> str:
    """Action event types compare in any spelling of TAKEN / NOT_TAKEN / VIEWED."""
    return action_event_type(event_type) or event_type_key(event_type)


def _interactions(
    condition: Condition, n: int, key: Callable[[str], str] = event_type_key
) -> MaskFn:
    negate = condition.operator == "NOT IN"

    def interactions(user: UserContext, values: Values) -> np.ndarray:
        wanted = _event_types(condition, values, key)
        anything = "*" in wanted
        # A user's recent events are few (<= 100 per type), so a comprehension is cheap here.
        codes = [
            code
            for code, event_type in user.recent_events
            if (anything or key(event_type or "") in wanted) != negate
        ]
        out = np.zeros(n, dtype=bool)
        if codes:
            array = np.asarray(codes, dtype=np.int64)
            out[array[(array >= 0) & (array < n)]] = True
        return out

    return interactions


def _users_with_events(
    condition: Condition, n: int, user_events: tuple[np.ndarray, np.ndarray] | None
) -> MaskFn:
    """Users with an interaction of the condition's event types (NOT IN: of another type)."""
    negate = condition.operator == "NOT IN"
    codes, types = user_events if user_events is not None else (np.empty(0, int), np.empty(0))
    keys = np.array([event_type_key(str(t or "")) for t in types], dtype=object)

    def users(user: UserContext, values: Values) -> np.ndarray:
        wanted = _event_types(condition, values)
        matches = np.ones(len(keys), bool) if "*" in wanted else np.isin(keys, list(wanted))
        out = np.zeros(n, dtype=bool)
        chosen = codes[matches != negate]
        out[chosen[(chosen >= 0) & (chosen < n)]] = True
        return out

    return users


def _user_values(value: object) -> tuple[list[str], float | None]:
    """A Users value as strings to match (whole and |-parts) and as a number, if it is one."""
    if value is None:
        return [], None
    if isinstance(value, bool):
        return [str(value).lower()], float(value)
    if isinstance(value, (int, float)):
        number = float(value)
        if np.isnan(number):
            return [], None
        return [_number_text(number)], number
    text = str(value)
    parts = [text, *(t for t in text.split("|") if t)] if "|" in text else [text]
    try:
        number: float | None = float(text)
    except ValueError:
        number = None
    return parts, number


def _user_gate(condition: Condition) -> Callable[[UserContext, Values], bool]:
    where = f"CurrentUser.{condition.column}"

    def gate(user: UserContext, values: Values) -> bool:
        raw = None if user.metadata is None else user.metadata.get(condition.column)
        strings, number = _user_values(raw)
        if condition.operator in COMPARISONS:
            (value,) = condition.values
            if isinstance(value, Placeholder):
                given = values[value.name]
                if len(given) != 1:
                    raise InvalidInputException(
                        f'filterValues "{value.name}" must be a single number for {where}'
                    )
                bound = _as_float(given[0], value.name, where)
            else:
                assert isinstance(value, float)
                bound = value
            return number is not None and bool(_COMPARE[condition.operator](number, bound))
        wanted: list[str] = []
        for value in condition.values:
            if isinstance(value, Placeholder):
                wanted.extend(values[value.name])
            elif isinstance(value, float):
                wanted.append(_number_text(value))
            else:
                wanted.append(str(value))
        hit = any(s in wanted for s in strings)
        if not hit and number is not None:  # "18" and 18.0 are the same number
            hit = any(_same_number(number, w) for w in wanted)
        return hit != (condition.operator == "NOT IN")

    return gate


def _same_number(number: float, text: str) -> bool:
    try:
        return float(text) == number
    except ValueError:
        return False
