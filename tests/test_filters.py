"""Filters: the expression grammar, static checks, filterValues and the compiled item masks."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest

from openpersonalize.data.schema import Schema, parse_schema
from openpersonalize.errors import InvalidInputException
from openpersonalize.filters import (
    CompiledFilter,
    Condition,
    CurrentItemField,
    Expression,
    Placeholder,
    UserContext,
    check_filter,
    parse_filter,
    parse_filter_values,
    resolve_fields,
)

# ----------------------------------------------------------------------------- parsing

DOCUMENTED = [
    'EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("purchase")',
    "INCLUDE ItemID WHERE Items.GENRES IN ($GENRE)",
    'INCLUDE ItemID WHERE Items.PRICE < 10 AND Items.CATEGORY IN ("shoes")',
    'EXCLUDE ItemID WHERE Items.GENRE IN ("horror") | '
    "INCLUDE ItemID WHERE Items.PRICE <= $MAXPRICE",
    "INCLUDE ItemID WHERE Items.GENRE IN ($G) IF CurrentUser.AGE > 18",
    'EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("*")',
    "EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN (*)",
    'EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("click", "stream")',
    "EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ($EVENT_TYPE)",
    'EXCLUDE ItemID WHERE Items.CATEGORY_L1 IN ("shoe") AND Items.CATEGORY_L2 NOT IN ("boot")',
    "INCLUDE ItemID WHERE Items.PRICE < CurrentItem.PRICE AND Items.GENRE IN CurrentItem.GENRE",
    "INCLUDE ItemID WHERE Items.CATEGORY IN ($CATEGORY) | "
    'INCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("favorite")',
    "INCLUDE UserID WHERE Users.MEMBERSHIP_STATUS IN ($MEMBERSHIP)",
    "EXCLUDE UserID WHERE Users.AGE < $AGE",
    'INCLUDE UserID WHERE Interactions.EVENT_TYPE IN ("click", "rating")',
    "INCLUDE ItemID WHERE Items.VALUE > ($VALUE)",
    'EXCLUDE ItemID WHERE Items.RATING IN ("R") IF CurrentUser.AGE < 18 AND CurrentUser.TIER '
    'NOT IN ("adult")',
]


@pytest.mark.parametrize("text", DOCUMENTED)
def test_documented_forms_parse(text: str) -> None:
    parsed = parse_filter(text)
    assert len(parsed.expressions) == text.count("|") + 1


def test_parse_structure() -> None:
    parsed = parse_filter(
        'EXCLUDE ItemID WHERE Items.GENRE IN ("horror") | '
        'INCLUDE ItemID WHERE Items.PRICE <= $MAXPRICE OR Items.CATEGORY NOT IN ($C, 7, "x") '
        "IF CurrentUser.AGE >= 18 AND CurrentUser.TIER IN ($TIER)"
    )
    first, second = parsed.expressions
    assert first == Expression(
        "EXCLUDE", "ItemID", (Condition("Items", "GENRE", "IN", ("horror",)),), ()
    )
    assert second.action == "INCLUDE" and second.target == "ItemID"
    assert second.conditions == (
        Condition("Items", "PRICE", "<=", (Placeholder("MAXPRICE"),)),
        Condition("Items", "CATEGORY", "NOT IN", (Placeholder("C"), 7.0, "x")),
    )
    assert second.connectors == ("OR",)
    assert second.user_conditions == (
        Condition("CurrentUser", "AGE", ">=", (18.0,)),
        Condition("CurrentUser", "TIER", "IN", (Placeholder("TIER"),)),
    )
    assert parsed.placeholders == ("MAXPRICE", "C", "TIER")
    assert parsed.fields == {
        ("Items", "GENRE"),
        ("Items", "PRICE"),
        ("Items", "CATEGORY"),
        ("Users", "AGE"),
        ("Users", "TIER"),
    }


def test_keywords_any_case_and_values() -> None:
    parsed = parse_filter(
        'include itemid where Items.PRICE > -2.5e1 and Items.CATEGORY not in ("a \\"b\\"")'
    )
    (expression,) = parsed.expressions
    assert (expression.action, expression.target) == ("INCLUDE", "ItemID")
    assert expression.conditions[0] == Condition("Items", "PRICE", ">", (-25.0,))
    assert expression.conditions[1].values == ('a "b"',)
    assert expression.connectors == ("AND",)


@pytest.mark.parametrize("op", ["=", "<", "<=", ">", ">="])
def test_every_comparison(op: str) -> None:
    (expression,) = parse_filter(f"INCLUDE ItemID WHERE Items.PRICE {op} 3").expressions
    assert expression.conditions[0].operator == op


def test_wildcard_and_current_item_values() -> None:
    (star,) = parse_filter("EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN (*)").expressions
    assert star.conditions[0].values == ("*",)
    (related,) = parse_filter(
        "INCLUDE ItemID WHERE Items.PRICE < CurrentItem.PRICE AND Items.GENRE IN CurrentItem.GENRE"
    ).expressions
    assert related.conditions[0].values == (CurrentItemField("PRICE"),)
    assert related.conditions[1] == Condition("Items", "GENRE", "IN", (CurrentItemField("GENRE"),))


BAD = [
    # (expression, position, reason fragment)
    ("", 1, "empty"),
    ("FOO ItemID WHERE Items.A IN (1)", 1, "expected INCLUDE or EXCLUDE"),
    ("INCLUDE ActionID WHERE Items.A IN (1)", 24, "select actions by Actions"),
    ("INCLUDE ActorID WHERE Items.A IN (1)", 9, "expected ItemID, UserID or ActionID"),
    ('INCLUDE ItemID Items.GENRE IN ("a")', 16, "expected WHERE"),
    ('INCLUDE ItemID WHERE Itemz.GENRE IN ("a")', 22, "unknown dataset 'Itemz'"),
    ('INCLUDE ItemID WHERE Items.GENRE IN ("a)', 38, "unclosed string"),
    ("INCLUDE ItemID WHERE Items.GENRE IN ()", 37, "empty IN list"),
    ("INCLUDE ItemID WHERE Items.GENRE IN (*)", 38, "'*' is only allowed for Interactions"),
    ('INCLUDE ItemID WHERE Items.GENRE IN ("*")', 38, "'*' is only allowed for Interactions"),
    (
        'INCLUDE ItemID WHERE Items.GENRE IN ("a") AND Interactions.EVENT_TYPE IN ("click")',
        47,
        "mixing Interactions and Items",
    ),
    (
        'EXCLUDE UserID WHERE Users.AGE > 3 OR Interactions.EVENT_TYPE IN ("click")',
        39,
        "must stay in the first condition's dataset (Users)",
    ),
    ('INCLUDE ItemID WHERE Items.PRICE < "10"', 36, "comparison operators need a single number"),
    ("INCLUDE ItemID WHERE Items.PRICE < (1, 2)", 38, "comparison operators need a single number"),
    ("INCLUDE ItemID WHERE Items.PRICE < 10 |", 40, "expected INCLUDE or EXCLUDE"),
    ('INCLUDE ItemID WHERE Items.GENRE NOT ("a")', 38, "expected IN after NOT"),
    ('INCLUDE ItemID WHERE Items.GENRE IN ("a" "b")', 42, "expected ',' or ')'"),
    ('INCLUDE ItemID WHERE Items.GENRE IN ("a") extra', 43, "unexpected 'extra'"),
    ('INCLUDE ItemID WHERE Items.GENRE != "a"', 34, "unknown operator"),
    ("INCLUDE ItemID WHERE Items.GENRE IN ($)", 38, "parameter name"),
    ("INCLUDE ItemID WHERE Items.PRICE < 10x", 36, "invalid number"),
    ('INCLUDE ItemID WHERE Items."GENRE" IN (1)', 28, "expected a field name"),
    ("INCLUDE ItemID WHERE Items.GENRE", 33, "expected IN, NOT IN or a comparison"),
    ("INCLUDE ItemID WHERE Users.AGE > 3", 22, "use IF CurrentUser.AGE"),
    ("INCLUDE ItemID WHERE CurrentUser.AGE > 3", 22, "only in an IF condition"),
    ("INCLUDE ItemID WHERE CurrentItem.PRICE > 3", 22, "CurrentItem can only be a value"),
    ('INCLUDE ItemID WHERE Interactions.EVENT_VALUE IN ("1")', 22, "only Interactions.EVENT_TYPE"),
    ("INCLUDE ItemID WHERE Interactions.EVENT_TYPE > 3", 22, "IN or NOT IN"),
    ('INCLUDE ItemID WHERE Items.A IN ("a") IF Items.B IN ("b")', 42, "tests CurrentUser"),
    (
        'INCLUDE ItemID WHERE Items.A IN ("a") IF CurrentUser.B > 1 OR CurrentUser.C > 2',
        60,
        "joined with AND",
    ),
    (
        'INCLUDE ItemID WHERE Items.A IN ("a") IF CurrentUser.B > 1 IF CurrentUser.C > 2',
        60,
        "IF may appear only once",
    ),
    ('INCLUDE UserID WHERE Users.A IN ("a") IF CurrentUser.B > 1', 39, "only to ItemID"),
    (
        'INCLUDE ItemID WHERE Items.A IN ("a") IF CurrentUser.B IN (CurrentItem.B)',
        60,
        "CurrentItem can't be used in an IF",
    ),
]


@pytest.mark.parametrize(("text", "position", "reason"), BAD)
def test_bad_expressions(text: str, position: int, reason: str) -> None:
    with pytest.raises(InvalidInputException) as caught:
        parse_filter(text)
    message = caught.value.message
    assert message.startswith(f"Invalid filter expression at position {position}: "), message
    assert reason in message


# ----------------------------------------------------------------------------- check_filter


def _schema(name: str, fields: list[dict[str, object]]) -> Schema:
    return parse_schema(json.dumps({"type": "record", "name": name, "fields": fields}))


SCHEMAS = {
    "Interactions": _schema(
        "Interactions",
        [
            {"name": "USER_ID", "type": "string"},
            {"name": "ITEM_ID", "type": "string"},
            {"name": "TIMESTAMP", "type": "long"},
            {"name": "EVENT_TYPE", "type": "string"},
        ],
    ),
    "Items": _schema(
        "Items",
        [
            {"name": "ITEM_ID", "type": "string"},
            {"name": "GENRES", "type": ["null", "string"], "categorical": True},
            {"name": "CATEGORY", "type": ["null", "string"], "categorical": True},
            {"name": "PRICE", "type": ["null", "double"]},
            {"name": "STOCK", "type": "int"},
            {"name": "DESCRIPTION", "type": ["null", "string"], "textual": True},
            {"name": "ON_SALE", "type": "boolean"},
        ],
    ),
    "Users": _schema(
        "Users",
        [
            {"name": "USER_ID", "type": "string"},
            {"name": "AGE", "type": ["null", "int"]},
            {"name": "TIER", "type": ["null", "string"], "categorical": True},
        ],
    ),
}


@pytest.mark.parametrize(
    "text",
    [
        'EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("purchase", *)',
        "INCLUDE ItemID WHERE Items.GENRES IN ($G) AND Items.PRICE <= $MAX IF CurrentUser.AGE > 18",
        "INCLUDE ItemID WHERE Items.STOCK IN (1, 2) OR Items.PRICE = 3",
        "INCLUDE ItemID WHERE Items.PRICE < CurrentItem.PRICE AND Items.GENRES IN "
        "CurrentItem.CATEGORY",
        'INCLUDE ItemID WHERE Items.ITEM_ID NOT IN ("a") IF CurrentUser.TIER IN ("gold")',
    ],
)
def test_check_filter_accepts(text: str) -> None:
    check_filter(parse_filter(text), SCHEMAS)


@pytest.mark.parametrize(
    ("text", "schemas", "fragment"),
    [
        (
            'INCLUDE ItemID WHERE Items.GENRES IN ("a") IF CurrentUser.AGE > 3',
            {k: v for k, v in SCHEMAS.items() if k != "Users"},
            "no Users dataset",
        ),
        ('INCLUDE ItemID WHERE Items.COLOR IN ("red")', SCHEMAS, 'no field "COLOR"'),
        ("INCLUDE ItemID WHERE Items.GENRES > 3", SCHEMAS, "GENRES"),
        ('INCLUDE ItemID WHERE Items.DESCRIPTION IN ("x")', SCHEMAS, "DESCRIPTION"),
        ('INCLUDE ItemID WHERE Items.DESCRIPTION IN ("x")', SCHEMAS, "textual"),
        ("INCLUDE ItemID WHERE Items.ON_SALE IN (1)", SCHEMAS, "boolean"),
        ('INCLUDE ItemID WHERE Items.PRICE IN ("cheap")', SCHEMAS, "numeric field Items.PRICE"),
        ("INCLUDE ItemID WHERE Items.GENRES IN ($G) IF CurrentUser.TIER > 1", SCHEMAS, "TIER"),
        ("INCLUDE ItemID WHERE Items.PRICE < CurrentItem.GENRES", SCHEMAS, "CurrentItem.GENRES"),
        (
            "INCLUDE ItemID WHERE Items.GENRES IN ($A) AND Items.CATEGORY IN ($B) AND "
            "Items.PRICE < 3 AND Items.STOCK > 1 AND Items.ITEM_ID IN ($C) "
            "IF CurrentUser.AGE > 3",
            SCHEMAS,
            "6 distinct fields",
        ),
    ],
)
def test_check_filter_refuses(text: str, schemas: dict[str, Schema], fragment: str) -> None:
    with pytest.raises(InvalidInputException) as caught:
        check_filter(parse_filter(text), schemas)
    assert fragment in caught.value.message


def test_dataset_and_field_names_match_in_any_case() -> None:
    # Sample code writes Interactions.event_type; the service reads names in any case.
    (lower,) = parse_filter('INCLUDE ItemID WHERE interactions.event_type IN ("watch")').expressions
    assert lower.conditions[0] == Condition("Interactions", "EVENT_TYPE", "IN", ("watch",))
    text = (
        'INCLUDE ItemID WHERE items.genres IN ("a") AND ITEMS.Price < currentitem.price '
        "IF currentuser.age > 3"
    )
    check_filter(parse_filter(text), SCHEMAS)
    (resolved,) = resolve_fields(parse_filter(text), SCHEMAS).expressions
    assert [(c.dataset, c.column) for c in resolved.conditions] == [
        ("Items", "GENRES"),
        ("Items", "PRICE"),
    ]
    assert resolved.conditions[1].values == (CurrentItemField("PRICE"),)
    assert resolved.user_conditions[0].column == "AGE"


def test_wildcard_needs_no_event_type_column() -> None:
    no_types = {
        **SCHEMAS,
        "Interactions": _schema(
            "Interactions",
            [
                {"name": "USER_ID", "type": "string"},
                {"name": "ITEM_ID", "type": "string"},
                {"name": "TIMESTAMP", "type": "long"},
            ],
        ),
    }
    check_filter(parse_filter("EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN (*)"), no_types)
    with pytest.raises(InvalidInputException, match="EVENT_TYPE"):
        check_filter(
            parse_filter('EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("click")'), no_types
        )


# ----------------------------------------------------------------------------- filterValues


def test_parse_filter_values_good() -> None:
    assert parse_filter_values(None) == {}
    assert parse_filter_values({}) == {}
    assert parse_filter_values(
        {
            "GENRES": '"comedy","drama"',
            "SPACED": ' "a b" , "c" ',
            "MAX": "10",
            "NEG": "-2.5",
            "QUOTE": '"say \\"hi\\""',
            "EMPTY_STRING": '""',
        }
    ) == {
        "GENRES": ("comedy", "drama"),
        "SPACED": ("a b", "c"),
        "MAX": ("10",),
        "NEG": ("-2.5",),
        "QUOTE": ('say "hi"',),
        "EMPTY_STRING": ("",),
    }
    many = ",".join(f'"v{i}"' for i in range(100))
    assert len(parse_filter_values({"K": many})["K"]) == 100


@pytest.mark.parametrize(
    ("values", "fragment"),
    [
        ({"GENRE": "comedy"}, 'parameter "GENRE": expected a double-quoted string'),
        ({"GENRE": '"comedy'}, 'parameter "GENRE": unclosed string'),
        ({"GENRE": '"a",'}, 'parameter "GENRE": the value ends with'),
        ({"GENRE": ""}, 'parameter "GENRE": the value is empty'),
        ({"GENRE": '"a" "b"'}, "expected ',' between values"),
        ({"K": ",".join(f'"v{i}"' for i in range(101))}, "101 values given; at most 100"),
        ({"BAD-NAME": '"a"'}, '"BAD-NAME"'),
    ],
)
def test_parse_filter_values_bad(values: dict[str, str], fragment: str) -> None:
    with pytest.raises(InvalidInputException) as caught:
        parse_filter_values(values)
    assert fragment in caught.value.message


# ----------------------------------------------------------------------------- masks

ITEM_IDS = np.array([f"i{k}" for k in range(6)], dtype=object)
# Rows out of code order, one item (i3) absent and one (i1) imported twice: the later row wins.
ITEMS = pa.table(
    {
        "ITEM_ID": ["i5", "i1", "i0", "i2", "i4", "i1"],
        "GENRES": ["Horror|Comedy", "Drama", "Comedy|Drama", "Drama", "comedy", "Horror"],
        "CATEGORY": ["hats", "boots", "shoes", "boots", "shoes", "shoes"],
        "PRICE": [9.99, 1.0, 5.0, 8.0, 20.0, 15.0],
        "LABEL": ["10", "x", "y", "z", "w", "v"],
    }
)
# By item code: i0 Comedy|Drama shoes 5.0 | i1 Horror shoes 15.0 | i2 Drama boots 8.0 |
# i3 (no row) | i4 comedy shoes 20.0 | i5 Horror|Comedy hats 9.99
CATEGORICAL = {"GENRES", "CATEGORY"}
NOBODY = UserContext(recent_events=[], metadata=None)


def _compile(text: str, metadata: pa.Table | None = ITEMS) -> CompiledFilter:
    return CompiledFilter(parse_filter(text), ITEM_IDS, metadata, CATEGORICAL)


def _allowed(
    text: str,
    values: dict[str, str] | None = None,
    user: UserContext = NOBODY,
    metadata: pa.Table | None = ITEMS,
) -> set[int]:
    mask = _compile(text, metadata).mask(user, parse_filter_values(values))
    assert mask.dtype == np.bool_ and mask.shape == (len(ITEM_IDS),)
    return set(np.flatnonzero(mask).tolist())


ALL = set(range(6))


def test_include_in_with_placeholder_multivalued_and_case_sensitive() -> None:
    text = "INCLUDE ItemID WHERE Items.GENRES IN ($G)"
    assert _allowed(text, {"G": '"Comedy"'}) == {0, 5}
    assert _allowed(text, {"G": '"Drama"'}) == {0, 2}
    assert _allowed(text, {"G": '"comedy"'}) == {4}
    assert _allowed(text, {"G": '"Horror","Drama"'}) == {0, 1, 2, 5}
    assert _allowed(text, {"G": '"Western"'}) == set()


def test_exclude_and_not_in() -> None:
    assert _allowed('EXCLUDE ItemID WHERE Items.CATEGORY IN ("shoes")') == {2, 3, 5}
    # NOT IN is the complement of IN: i3 has no CATEGORY, so it is "not in" the list.
    assert _allowed('EXCLUDE ItemID WHERE Items.CATEGORY NOT IN ("shoes")') == {0, 1, 4}
    assert _allowed('INCLUDE ItemID WHERE Items.CATEGORY NOT IN ("shoes", "boots")') == {3, 5}


@pytest.mark.parametrize(
    ("op", "expected"),
    [("<", {0, 2}), ("<=", {0, 2, 5}), (">", {1, 4}), (">=", {1, 4, 5}), ("=", {5})],
)
def test_numeric_comparisons(op: str, expected: set[int]) -> None:
    # PRICE by code: i0 5, i1 15, i2 8, i3 missing (never compares true), i4 20, i5 9.99
    assert _allowed(f"INCLUDE ItemID WHERE Items.PRICE {op} 9.99") == expected


def test_comparison_with_placeholder() -> None:
    text = "INCLUDE ItemID WHERE Items.PRICE <= $MAX"
    assert _allowed(text, {"MAX": "8"}) == {0, 2}
    with pytest.raises(InvalidInputException, match='"MAX" must be a number'):
        _allowed(text, {"MAX": '"cheap"'})
    with pytest.raises(InvalidInputException, match='"MAX" must be a single number'):
        _allowed(text, {"MAX": "1, 2"})


def test_and_binds_tighter_than_or() -> None:
    text = (
        'INCLUDE ItemID WHERE Items.CATEGORY IN ("hats") OR Items.PRICE < 10 '
        'AND Items.GENRES IN ("Drama")'
    )
    assert _allowed(text) == {0, 2, 5}


def test_missing_values() -> None:
    include = _compile(
        "INCLUDE ItemID WHERE Items.GENRES IN ($G) | EXCLUDE ItemID WHERE Items.PRICE > $MAX"
    )
    assert include.required_placeholders() == ("G",)
    with pytest.raises(InvalidInputException, match='parameter "G"'):
        include.mask(NOBODY, {})
    # The EXCLUDE without its value is skipped; the INCLUDE still applies.
    assert set(np.flatnonzero(include.mask(NOBODY, {"G": ("Drama",)}))) == {0, 2}
    assert _allowed("EXCLUDE ItemID WHERE Items.GENRES IN ($G)") == ALL


def test_combinations() -> None:
    shoes = 'INCLUDE ItemID WHERE Items.CATEGORY IN ("shoes")'  # {0, 1, 4}
    cheap = "INCLUDE ItemID WHERE Items.PRICE < 6"  # {0}
    horror = 'EXCLUDE ItemID WHERE Items.GENRES IN ("Horror")'  # {1, 5}
    drama = 'EXCLUDE ItemID WHERE Items.GENRES IN ("Drama")'  # {0, 2}
    hats = 'INCLUDE ItemID WHERE Items.CATEGORY IN ("hats")'  # {5}
    assert _allowed(f"{shoes} | {hats}") == {0, 1, 4, 5}
    assert _allowed(f"{horror} | {drama}") == {3, 4}
    assert _allowed(f"{shoes} | {hats} | {horror}") == {0, 4}
    assert _allowed(f"{horror} | {shoes} | {drama} | {cheap}") == {4}


def test_interactions_event_types() -> None:
    user = UserContext(
        recent_events=[(1, "PURCHASE"), (2, "click"), (4, "Click"), (2, "purchase")], metadata=None
    )
    assert _allowed('EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("purchase")', user=user) == {
        0,
        3,
        4,
        5,
    }
    assert _allowed('INCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("CLICK")', user=user) == {
        2,
        4,
    }
    assert _allowed("EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN (*)", user=user) == {0, 3, 5}
    # NOT IN: items interacted with under some other event type.
    assert _allowed('INCLUDE ItemID WHERE Interactions.EVENT_TYPE NOT IN ("click")', user=user) == {
        1,
        2,
    }
    assert _allowed(
        "EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ($T)", {"T": '"Purchase"'}, user
    ) == {0, 3, 4, 5}
    # A user without interactions: INCLUDE keeps nothing, EXCLUDE removes nothing.
    assert _allowed('INCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("click")') == set()
    mixed = (
        'INCLUDE ItemID WHERE Items.CATEGORY IN ("shoes") | '
        'EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("click")'
    )
    assert _allowed(mixed, user=user) == {0, 1}


def test_if_current_user_gates_the_expression() -> None:
    text = "INCLUDE ItemID WHERE Items.GENRES IN ($G) IF CurrentUser.AGE > 18"
    values = {"G": '"Comedy"'}
    assert _allowed(text, values, UserContext([], {"AGE": 30})) == {0, 5}
    assert _allowed(text, values, UserContext([], {"AGE": 12})) == ALL
    assert _allowed(text, values, UserContext([], {"AGE": None})) == ALL
    assert _allowed(text, values, NOBODY) == ALL
    kid = 'EXCLUDE ItemID WHERE Items.GENRES IN ("Horror") IF CurrentUser.TIER IN ($TIER)'
    assert _allowed(kid, {"TIER": '"kid"'}, UserContext([], {"TIER": "kid|basic"})) == {0, 2, 3, 4}
    assert _allowed(kid, {"TIER": '"kid"'}, UserContext([], {"TIER": "adult"})) == ALL
    assert _allowed(kid, None, UserContext([], {"TIER": "kid"})) == ALL  # EXCLUDE value missing
    both = (
        'EXCLUDE ItemID WHERE Items.GENRES IN ("Horror") IF CurrentUser.AGE < 18 '
        'AND CurrentUser.TIER NOT IN ("adult")'
    )
    assert _allowed(both, user=UserContext([], {"AGE": 10, "TIER": "basic"})) == {0, 2, 3, 4}
    assert _allowed(both, user=UserContext([], {"AGE": 10, "TIER": "adult"})) == ALL
    assert _allowed(both, user=UserContext([], {"AGE": "10", "TIER": "basic"})) == {0, 2, 3, 4}


def test_current_item() -> None:
    text = (
        "INCLUDE ItemID WHERE Items.PRICE < CurrentItem.PRICE "
        "AND Items.GENRES IN CurrentItem.GENRES"
    )
    # i1: PRICE 15, GENRES "Horror" -> cheaper horror items: i5 (9.99, Horror|Comedy)
    assert _allowed(text, user=UserContext([], None, current_item=1)) == {5}
    with pytest.raises(InvalidInputException, match="CurrentItem.PRICE"):
        _allowed(text)


def test_item_id_number_literal_and_unaligned_metadata() -> None:
    assert _allowed('EXCLUDE ItemID WHERE Items.ITEM_ID IN ("i2", "nope")') == ALL - {2}
    assert _allowed("INCLUDE ItemID WHERE Items.LABEL IN (10)") == {5}
    # Without ITEM_ID the rows are taken as already in item-code order.
    aligned = pa.table({"PRICE": [1.0, 2.0, None, 4.0, 5.0, 6.0]})
    assert _allowed("INCLUDE ItemID WHERE Items.PRICE >= 4", metadata=aligned) == {3, 4, 5}
    with pytest.raises(ValueError, match="no ITEM_ID"):
        _compile("INCLUDE ItemID WHERE Items.PRICE >= 4", pa.table({"PRICE": [1.0]}))


def test_no_item_metadata() -> None:
    for metadata in (None, pa.table({"ITEM_ID": ["i0"], "OTHER": [1]})):
        assert _allowed('INCLUDE ItemID WHERE Items.GENRES IN ("Drama")', metadata=metadata) == (
            set()
        )
        assert _allowed('EXCLUDE ItemID WHERE Items.GENRES IN ("Drama")', metadata=metadata) == ALL
        assert _allowed("INCLUDE ItemID WHERE Items.PRICE < 100", metadata=metadata) == set()


def test_user_id_expressions_are_not_item_filters() -> None:
    with pytest.raises(InvalidInputException, match="user segments"):
        _compile("INCLUDE UserID WHERE Users.AGE < 3")


def test_constant_masks_are_not_shared_with_callers() -> None:
    compiled = _compile(
        'INCLUDE ItemID WHERE Items.CATEGORY IN ("shoes") | EXCLUDE ItemID WHERE Items.PRICE > 10'
    )
    first = compiled.mask(NOBODY, {})
    first[:] = True
    assert set(np.flatnonzero(compiled.mask(NOBODY, {}))) == {0}
