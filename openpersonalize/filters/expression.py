"""The filter expression language of CreateFilter: tokenizer, parser and static checks.

Grammar (as Amazon Personalize documents it)::

    filter := expr ("|" expr)*
    expr   := ("INCLUDE" | "EXCLUDE") ("ItemID" | "UserID" | "ActionID") "WHERE" cond
              (("AND" | "OR") cond)*
              ["IF" ucond ("AND" ucond)*]
    cond   := Dataset "." FIELD ( ["NOT"] "IN" ( "(" value ("," value)* ")" | CurrentItem.FIELD )
                                | cmp ( number | $PARAM | CurrentItem.FIELD | "(" that ")" ) )
    ucond  := "CurrentUser" "." FIELD ( ["NOT"] "IN" "(" values ")" | cmp value )
    cmp    := "=" | "<" | "<=" | ">" | ">="
    value  := "double-quoted string" | number | $PARAM | "*"   (the last only for EVENT_TYPE)

Keywords (INCLUDE, EXCLUDE, ItemID, UserID, ActionID, WHERE, IN, NOT, AND, OR, IF), dataset
names (Items, Interactions, Users, Actions, Action_Interactions, CurrentUser, CurrentItem) and
field names are matched in any case,
as the service reads them (sample code writes ``Interactions.event_type``); parameter names
are case-sensitive. The parser spells dataset names canonically; ``resolve_fields`` spells field
names as the schemas do. ``parse_filter`` applies every rule that needs no schema
and reports the 1-based character position of the offending token; ``check_filter`` applies
the rules that need the dataset group's schemas.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace

from openpersonalize.data.schema import Schema
from openpersonalize.errors import InvalidInputException

__all__ = [
    "COMPARISONS",
    "MAX_FIELDS_PER_FILTER",
    "MAX_VALUES_PER_PARAMETER",
    "Condition",
    "CurrentItemField",
    "Expression",
    "Filter",
    "Placeholder",
    "check_filter",
    "parse_filter",
    "parse_filter_values",
    "resolve_fields",
]

#: At most this many distinct dataset fields in one filter.
MAX_FIELDS_PER_FILTER = 5
#: At most this many comma-separated values for one runtime filter parameter.
MAX_VALUES_PER_PARAMETER = 100
COMPARISONS = ("=", "<", "<=", ">", ">=")

_ITEM_DATASETS = ("Items", "Interactions")  # datasets an ItemID expression may select by
_USER_DATASETS = ("Users", "Interactions")  # datasets a UserID expression may select by
_ACTION_DATASETS = ("Actions", "Action_Interactions")  # and an ActionID expression
_ALL_DATASETS = (
    "Items",
    "Interactions",
    "Users",
    "Actions",
    "Action_Interactions",
    "CurrentUser",
    "CurrentItem",
)
# Datasets of events, whose one filterable field is EVENT_TYPE.
EVENT_DATASETS = ("Interactions", "Action_Interactions")
_SELECTED_BY = {"ItemID": _ITEM_DATASETS, "UserID": _USER_DATASETS, "ActionID": _ACTION_DATASETS}
_NUMERIC_TYPES = ("int", "long", "float", "double")
_PARAM_NAME = re.compile(r"[A-Za-z0-9_]+")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NUMBER = re.compile(r"-?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


# ------------------------------------------------------------------------------ the model


@dataclass(frozen=True)
class Placeholder:
    """A ``$NAME`` parameter whose values come from the request's ``filterValues``."""

    name: str


@dataclass(frozen=True)
class CurrentItemField:
    """``CurrentItem.FIELD``: a field of the item a related-items request is about."""

    column: str


Value = str | float | Placeholder | CurrentItemField


@dataclass(frozen=True)
class Condition:
    """``dataset.column operator values``; a ``*`` value is kept as the string ``"*"``."""

    dataset: str  # Items | Interactions | Users | CurrentUser
    column: str
    operator: str  # IN | NOT IN | = | < | <= | > | >=
    values: tuple[Value, ...]


@dataclass(frozen=True)
class Expression:
    """One ``INCLUDE``/``EXCLUDE`` clause; ``connectors[i]`` joins conditions i and i+1."""

    action: str  # INCLUDE | EXCLUDE
    target: str  # ItemID | UserID | ActionID
    conditions: tuple[Condition, ...]
    connectors: tuple[str, ...]  # AND | OR
    user_conditions: tuple[Condition, ...] = ()  # the IF part, all joined by AND


@dataclass(frozen=True)
class Filter:
    """A parsed filter: expressions joined by ``|``."""

    expressions: tuple[Expression, ...]

    @property
    def placeholders(self) -> tuple[str, ...]:
        """Parameter names in order of first appearance."""
        seen: dict[str, None] = {}
        for expression in self.expressions:
            for condition in (*expression.conditions, *expression.user_conditions):
                for value in condition.values:
                    if isinstance(value, Placeholder):
                        seen.setdefault(value.name)
        return tuple(seen)

    @property
    def fields(self) -> set[tuple[str, str]]:
        """Distinct (dataset type, column) pairs read; CurrentUser is Users, CurrentItem Items."""
        out: set[tuple[str, str]] = set()
        for expression in self.expressions:
            for condition in (*expression.conditions, *expression.user_conditions):
                dataset = "Users" if condition.dataset == "CurrentUser" else condition.dataset
                out.add((dataset, condition.column))
                for value in condition.values:
                    if isinstance(value, CurrentItemField):
                        out.add(("Items", value.column))
        return out


# ------------------------------------------------------------------------------ tokenizer


@dataclass(frozen=True)
class _Token:
    kind: str  # ident string number param star op ( ) , . | end
    text: str  # source text (string tokens: the unquoted value)
    pos: int  # 1-based character position


def _fail(pos: int, reason: str) -> InvalidInputException:
    return InvalidInputException(f"Invalid filter expression at position {pos}: {reason}")


def _read_string(text: str, start: int) -> tuple[str, int]:
    """The value of the double-quoted string opening at ``start`` and the index after it.

    ``\\"`` and ``\\\\`` are the only escapes, so that a value may contain a quote; any other
    backslash is kept as is. Raises ValueError when the string is not closed.
    """
    out: list[str] = []
    i = start + 1
    while i < len(text):
        ch = text[i]
        if ch == '"':
            return "".join(out), i + 1
        if ch == "\\" and i + 1 < len(text) and text[i + 1] in '"\\':
            out.append(text[i + 1])
            i += 2
            continue
        out.append(ch)
        i += 1
    raise ValueError("unclosed string")


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        pos = i + 1
        if ch.isspace():
            i += 1
        elif ch == '"':
            try:
                value, i = _read_string(text, i)
            except ValueError:
                raise _fail(pos, "unclosed string (missing closing '\"')") from None
            tokens.append(_Token("string", value, pos))
        elif ch == "$":
            m = _PARAM_NAME.match(text, i + 1)
            if m is None:
                raise _fail(pos, "expected a parameter name after '$' (letters, digits, _)")
            tokens.append(_Token("param", m.group(), pos))
            i = m.end()
        elif ch.isdigit() or (ch in "-." and _NUMBER.match(text, i)):
            m = _NUMBER.match(text, i)
            assert m is not None  # a digit always starts a number
            end = m.end()
            if end < n and (text[end].isalnum() or text[end] in "_."):
                raise _fail(pos, f"invalid number '{text[i : end + 1]}'")
            tokens.append(_Token("number", m.group(), pos))
            i = end
        elif ch.isalpha() or ch == "_":
            m = _IDENT.match(text, i)
            assert m is not None
            tokens.append(_Token("ident", m.group(), pos))
            i = m.end()
        elif ch in "<>":
            op = text[i : i + 2] if text[i + 1 : i + 2] == "=" else ch
            if text[i : i + 2] == "<>":
                raise _fail(pos, "unknown operator '<>'; use NOT IN")
            tokens.append(_Token("op", op, pos))
            i += len(op)
        elif ch == "=":
            if text[i + 1 : i + 2] == "=":
                raise _fail(pos, "unknown operator '=='; use '='")
            tokens.append(_Token("op", "=", pos))
            i += 1
        elif ch == "!":
            raise _fail(pos, "unknown operator '!'; use NOT IN")
        elif ch in "(),.|*":
            tokens.append(_Token(ch, ch, pos))
            i += 1
        else:
            raise _fail(pos, f"unexpected character '{ch}'")
    tokens.append(_Token("end", "", n + 1))
    return tokens


# ------------------------------------------------------------------------------ parser


def _describe(token: _Token) -> str:
    if token.kind == "end":
        return "end of expression"
    if token.kind == "string":
        return f'"{token.text}"'
    if token.kind == "param":
        return f"${token.text}"
    return f"'{token.text}'"


class _Parser:
    """Recursive descent over the token list; every refusal names the offending token."""

    def __init__(self, text: str) -> None:
        self.tokens = _tokenize(text)
        self.i = 0

    @property
    def tok(self) -> _Token:
        return self.tokens[self.i]

    def advance(self) -> _Token:
        token = self.tokens[self.i]
        if token.kind != "end":
            self.i += 1
        return token

    def keyword(self, *words: str) -> str | None:
        """The upper-cased keyword if the current token is one of ``words`` (any case)."""
        token = self.tok
        if token.kind == "ident" and token.text.upper() in words:
            return token.text.upper()
        return None

    def expect(self, kind: str, what: str) -> _Token:
        if self.tok.kind != kind:
            raise _fail(self.tok.pos, f"expected {what}, found {_describe(self.tok)}")
        return self.advance()

    # filter := expr ("|" expr)*
    def parse(self) -> Filter:
        expressions = [self.expression()]
        while self.tok.kind == "|":
            self.advance()
            expressions.append(self.expression())
        if self.tok.kind != "end":
            raise _fail(
                self.tok.pos, f"unexpected {_describe(self.tok)}; expected AND, OR, IF or |"
            )
        return Filter(tuple(expressions))

    def expression(self) -> Expression:
        action = self.keyword("INCLUDE", "EXCLUDE")
        if action is None:
            raise _fail(self.tok.pos, f"expected INCLUDE or EXCLUDE, found {_describe(self.tok)}")
        self.advance()
        target_token = self.tok
        target = {"ITEMID": "ItemID", "USERID": "UserID", "ACTIONID": "ActionID"}.get(
            target_token.text.upper() if target_token.kind == "ident" else ""
        )
        if target is None:
            raise _fail(
                target_token.pos,
                f"expected ItemID, UserID or ActionID after {action}, found "
                f"{_describe(target_token)}",
            )
        self.advance()
        if self.keyword("WHERE") is None:
            raise _fail(self.tok.pos, f"expected WHERE, found {_describe(self.tok)}")
        self.advance()

        conditions = [self.condition(target, None)]
        connectors: list[str] = []
        while (connector := self.keyword("AND", "OR")) is not None:
            self.advance()
            connectors.append(connector)
            conditions.append(self.condition(target, conditions[0].dataset))

        user_conditions: list[Condition] = []
        if self.keyword("IF") is not None:
            if_token = self.advance()
            if target == "UserID":
                raise _fail(
                    if_token.pos, "IF CurrentUser conditions apply only to ItemID and ActionID"
                )
            user_conditions.append(self.user_condition())
            while (connector := self.keyword("AND", "OR", "IF")) is not None:
                if connector == "OR":
                    raise _fail(self.tok.pos, "IF conditions can only be joined with AND")
                if connector == "IF":
                    raise _fail(
                        self.tok.pos, "IF may appear only once, at the end of an expression"
                    )
                self.advance()
                user_conditions.append(self.user_condition())
        return Expression(
            action, target, tuple(conditions), tuple(connectors), tuple(user_conditions)
        )

    def field_ref(self) -> tuple[str, int, str]:
        """``Dataset . FIELD``: the dataset's canonical name, its position and the column."""
        token = self.tok
        if token.kind != "ident":
            raise _fail(token.pos, f"expected Dataset.FIELD, found {_describe(token)}")
        dataset = _canonical_dataset(token.text)
        if dataset is None:
            raise _fail(
                token.pos,
                f"unknown dataset '{token.text}' (expected Items, Interactions, Users, Actions "
                "or Action_Interactions)",
            )
        self.advance()
        self.expect(".", f"'.' after {token.text}")
        column = self.expect("ident", f"a field name after {token.text}.").text
        if dataset in EVENT_DATASETS and column.upper() == "EVENT_TYPE":
            column = "EVENT_TYPE"  # the one Interactions field; any spelling names it
        return dataset, token.pos, column

    def condition(self, target: str, first_dataset: str | None) -> Condition:
        dataset, pos, column = self.field_ref()
        if dataset == "CurrentUser":
            raise _fail(pos, "CurrentUser is allowed only in an IF condition at the end")
        if dataset == "CurrentItem":
            raise _fail(
                pos,
                "CurrentItem can only be a value, as in Items.PRICE < CurrentItem.PRICE",
            )
        allowed = _SELECTED_BY[target]
        if dataset not in allowed:
            if target == "ActionID":
                reason = (
                    "ActionID expressions select actions by Actions or Action_Interactions fields"
                )
            elif target == "ItemID":
                reason = (
                    "Users fields can't select items; use IF CurrentUser."
                    f"{column} to test the user's own data"
                )
            else:
                reason = "UserID expressions select users by Users or Interactions fields"
            raise _fail(pos, reason)
        if first_dataset is not None and dataset != first_dataset:
            if {dataset, first_dataset} in ({"Items", "Interactions"}, set(_ACTION_DATASETS)):
                events, records = sorted({dataset, first_dataset}, key=len)[::-1]
                reason = (
                    f"mixing {events} and {records} in one expression is not allowed; chain "
                    "two expressions with |"
                )
            else:
                reason = (
                    f"AND/OR conditions must stay in the first condition's dataset "
                    f"({first_dataset}); chain expressions with | instead"
                )
            raise _fail(pos, reason)
        if dataset in EVENT_DATASETS and column != "EVENT_TYPE":
            raise _fail(pos, f"{dataset}.{column}: only {dataset}.EVENT_TYPE can be filtered")
        operator, values = self.predicate(dataset, column, allow_current_item=True)
        if dataset in EVENT_DATASETS and operator not in ("IN", "NOT IN"):
            raise _fail(pos, f"{dataset}.EVENT_TYPE takes IN or NOT IN, not a comparison")
        return Condition(dataset, column, operator, values)

    def user_condition(self) -> Condition:
        dataset, pos, column = self.field_ref()
        if dataset != "CurrentUser":
            raise _fail(pos, f"an IF condition tests CurrentUser fields, not {dataset}")
        operator, values = self.predicate("CurrentUser", column, allow_current_item=False)
        return Condition("CurrentUser", column, operator, values)

    def predicate(
        self, dataset: str, column: str, allow_current_item: bool
    ) -> tuple[str, tuple[Value, ...]]:
        """The operator and values after ``Dataset.FIELD``."""
        star_ok = dataset in EVENT_DATASETS and column == "EVENT_TYPE"
        negated = self.keyword("NOT") is not None
        if negated:
            self.advance()
            if self.keyword("IN") is None:
                raise _fail(self.tok.pos, f"expected IN after NOT, found {_describe(self.tok)}")
        if self.keyword("IN") is not None:
            self.advance()
            operator = "NOT IN" if negated else "IN"
            if allow_current_item and self.tok.kind == "ident" and self.tok.text == "CurrentItem":
                return operator, (self.current_item(),)
            open_token = self.expect("(", "'(' after IN")
            if self.tok.kind == ")":
                raise _fail(open_token.pos, "empty IN list; give at least one value")
            values = [self.value(star_ok, allow_current_item)]
            while self.tok.kind == ",":
                self.advance()
                values.append(self.value(star_ok, allow_current_item))
            if self.tok.kind != ")":
                raise _fail(self.tok.pos, f"expected ',' or ')', found {_describe(self.tok)}")
            self.advance()
            return operator, tuple(values)

        if self.tok.kind != "op":
            raise _fail(
                self.tok.pos,
                f"expected IN, NOT IN or a comparison (= < <= > >=), found {_describe(self.tok)}",
            )
        operator = self.advance().text
        parenthesized = self.tok.kind == "("
        if parenthesized:  # the guide also writes "Actions.VALUE > ($VALUE)"
            self.advance()
        value_token = self.tok
        value = self.value(False, allow_current_item)
        if isinstance(value, str):
            raise _fail(
                value_token.pos,
                f"comparison operators need a single number value, found {_describe(value_token)}",
            )
        if parenthesized:
            if self.tok.kind != ")":
                raise _fail(
                    self.tok.pos,
                    f"comparison operators need a single number value, found {_describe(self.tok)}",
                )
            self.advance()
        return operator, (value,)

    def current_item(self) -> CurrentItemField:
        self.advance()  # CurrentItem
        self.expect(".", "'.' after CurrentItem")
        return CurrentItemField(self.expect("ident", "a field name after CurrentItem.").text)

    def value(self, star_ok: bool, allow_current_item: bool) -> Value:
        token = self.tok
        if token.kind in ("*", "string") and token.text == "*":
            if not star_ok:
                raise _fail(token.pos, "'*' is only allowed for Interactions.EVENT_TYPE")
            self.advance()
            return "*"
        if token.kind == "string":
            self.advance()
            return token.text
        if token.kind == "number":
            self.advance()
            return float(token.text)
        if token.kind == "param":
            self.advance()
            return Placeholder(token.text)
        if token.kind == "ident" and _canonical_dataset(token.text) == "CurrentItem":
            if not allow_current_item:
                raise _fail(token.pos, "CurrentItem can't be used in an IF condition")
            return self.current_item()
        raise _fail(
            token.pos,
            f'expected a value ("string", number or $PARAMETER), found {_describe(token)}',
        )


def _canonical_dataset(text: str) -> str | None:
    if text.lower() == "action":  # the guide once writes Action.MEMBERSHIP_LEVEL for Actions.
        return "Actions"
    return next((d for d in _ALL_DATASETS if d.lower() == text.lower()), None)


def parse_filter(text: str) -> Filter:
    """Parse a CreateFilter ``filterExpression``; InvalidInputException with the position."""
    if not isinstance(text, str) or not text.strip():
        raise _fail(1, "the filter expression is empty")
    return _Parser(text).parse()


# ------------------------------------------------------------------------------ schema checks


def _is_numeric(value: Value) -> bool:
    return isinstance(value, (float, Placeholder, CurrentItemField))


def resolve_fields(filter: Filter, schemas: Mapping[str, Schema]) -> Filter:
    """The filter with each field spelled as its schema spells it (names match in any case);
    a field no schema has is left as written, for ``check_filter`` to report."""

    def spelled(dataset: str, column: str) -> str:
        schema = schemas.get("Users" if dataset == "CurrentUser" else dataset)
        found = schema.field(column) if schema is not None else None
        return found.name if found is not None else column

    def value(v: Value) -> Value:
        if isinstance(v, CurrentItemField):
            return CurrentItemField(spelled("Items", v.column))
        return v

    def condition(c: Condition) -> Condition:
        if c.dataset in EVENT_DATASETS:
            return c
        return replace(
            c, column=spelled(c.dataset, c.column), values=tuple(value(v) for v in c.values)
        )

    return Filter(
        tuple(
            replace(
                e,
                conditions=tuple(condition(c) for c in e.conditions),
                user_conditions=tuple(condition(c) for c in e.user_conditions),
            )
            for e in filter.expressions
        )
    )


def check_filter(filter: Filter, schemas: Mapping[str, Schema]) -> None:
    """Check a parsed filter against the dataset group's schemas (keyed by dataset type).

    Refuses: a dataset the group lacks, a column its schema lacks, a textual or boolean field,
    a comparison on a non-numeric field, a string value for a numeric field, and more than
    ``MAX_FIELDS_PER_FILTER`` distinct fields. Interactions.EVENT_TYPE with only ``*`` values
    needs no EVENT_TYPE column (it means "any interaction").
    """
    filter = resolve_fields(filter, schemas)
    fields = filter.fields
    if len(fields) > MAX_FIELDS_PER_FILTER:
        names = ", ".join(f"{d}.{c}" for d, c in sorted(fields))
        raise InvalidInputException(
            f"The filter uses {len(fields)} distinct fields ({names}); a filter may use at most "
            f"{MAX_FIELDS_PER_FILTER}"
        )
    for expression in filter.expressions:
        for condition in (*expression.conditions, *expression.user_conditions):
            dataset = "Users" if condition.dataset == "CurrentUser" else condition.dataset
            star_only = all(v == "*" for v in condition.values)
            if dataset in EVENT_DATASETS and star_only and dataset in schemas:
                continue
            _check_field(schemas, dataset, condition.column, condition.dataset)
            field = schemas[dataset].field(condition.column)
            assert field is not None
            numeric = field.type in _NUMERIC_TYPES
            where = f"{condition.dataset}.{condition.column}"
            if condition.operator in COMPARISONS and not numeric:
                raise InvalidInputException(
                    f'The filter compares {where} with "{condition.operator}", but field '
                    f'"{condition.column}" is of type "{field.type}"; comparison operators '
                    "need a numeric field"
                )
            if numeric and any(isinstance(v, str) for v in condition.values):
                raise InvalidInputException(
                    f"The filter matches numeric field {where} against a string; use numbers"
                )
            for value in condition.values:
                if not isinstance(value, CurrentItemField):
                    continue
                _check_field(schemas, "Items", value.column, "CurrentItem")
                ref = schemas["Items"].field(value.column)
                assert ref is not None
                if (ref.type in _NUMERIC_TYPES) != numeric:
                    raise InvalidInputException(
                        f"The filter compares {where} with CurrentItem.{value.column}; one is "
                        "numeric and the other is not"
                    )


def _check_field(schemas: Mapping[str, Schema], dataset: str, column: str, shown: str) -> None:
    """The field exists and may be filtered on; ``shown`` is the dataset name as written."""
    schema = schemas.get(dataset)
    if schema is None:
        raise InvalidInputException(
            f"The filter uses {shown}.{column}, but the dataset group has no {dataset} dataset"
        )
    field = schema.field(column)
    if field is None:
        raise InvalidInputException(
            f'The filter uses {shown}.{column}, but the {dataset} schema has no field "{column}"'
        )
    if field.textual:
        raise InvalidInputException(
            f'The filter uses {shown}.{column}; field "{column}" is textual and textual fields '
            "can't be filtered on"
        )
    if field.type == "boolean":
        raise InvalidInputException(
            f'The filter uses {shown}.{column}; field "{column}" is boolean and boolean fields '
            "can't be filtered on"
        )


# ------------------------------------------------------------------------------ filterValues


def _value_error(key: str, message: str) -> InvalidInputException:
    return InvalidInputException(f'Invalid filterValues for parameter "{key}": {message}')


def _parse_value_list(key: str, text: str) -> tuple[str, ...]:
    """``"a","b"`` or ``10`` (comma-separated double-quoted strings and numbers)."""
    values: list[str] = []
    i, n = 0, len(text)
    while True:
        while i < n and text[i].isspace():
            i += 1
        if i >= n:
            what = "is empty" if not values else "ends with ','"
            raise _value_error(key, f"the value {what}; give double-quoted strings or a number")
        if text[i] == '"':
            try:
                value, i = _read_string(text, i)
            except ValueError:
                raise _value_error(key, f"unclosed string at position {i + 1}") from None
        else:
            m = _NUMBER.match(text, i)
            if m is None:
                raise _value_error(
                    key,
                    f"expected a double-quoted string or a number at position {i + 1}, e.g. "
                    '"\\"comedy\\",\\"drama\\""',
                )
            value, i = m.group(), m.end()
        values.append(value)
        while i < n and text[i].isspace():
            i += 1
        if i >= n:
            break
        if text[i] != ",":
            raise _value_error(key, f"expected ',' between values at position {i + 1}")
        i += 1
    if len(values) > MAX_VALUES_PER_PARAMETER:
        raise _value_error(
            key, f"{len(values)} values given; at most {MAX_VALUES_PER_PARAMETER} are allowed"
        )
    return tuple(values)


def parse_filter_values(values: Mapping[str, str] | None) -> dict[str, tuple[str, ...]]:
    """Parse a request's ``filterValues``: each value a list of quoted strings or a number.

    Numbers are returned as their text (the filter decides whether a number is needed).
    """
    if not values:
        return {}
    out: dict[str, tuple[str, ...]] = {}
    for key, text in values.items():
        if not isinstance(key, str) or not _PARAM_NAME.fullmatch(key):
            raise InvalidInputException(
                f'Invalid filterValues parameter name "{key}"; use letters, digits and _'
            )
        if not isinstance(text, str):
            raise _value_error(key, "the value must be a string")
        out[key] = _parse_value_list(key, text)
    return out
