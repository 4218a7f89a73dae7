"""Unit tests for the dataset schema rules in openpersonalize.data.schema."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from openpersonalize.data.schema import (
    DATASET_TYPES,
    Field,
    Schema,
    check_schema_for_dataset,
    normalize_dataset_type,
    parse_schema,
    required_fields,
)
from openpersonalize.errors import InvalidInputException


def avro(*fields: dict[str, Any], name: str = "Interactions") -> str:
    """An Avro record schema text with these fields."""
    return json.dumps(
        {
            "type": "record",
            "name": name,
            "namespace": "com.amazonaws.personalize.schema",
            "fields": list(fields),
            "version": "1.0",
        }
    )


def f(name: str, type_: Any = "string", **attrs: Any) -> dict[str, Any]:
    return {"name": name, "type": type_, **attrs}


INTERACTIONS = (f("USER_ID"), f("ITEM_ID"), f("TIMESTAMP", "long"))
ITEMS = (f("ITEM_ID"), f("GENRES", categorical=True))
USERS = (f("USER_ID"), f("AGE", "int"))
ACTIONS = (f("ACTION_ID"), f("LEVEL", categorical=True))
ACTION_INTERACTIONS = (
    f("USER_ID"),
    f("ACTION_ID"),
    f("TIMESTAMP", "long"),
    f("EVENT_TYPE"),
)


def check(dataset_type: str, *fields: dict[str, Any], domain: str | None = None) -> Schema:
    schema = parse_schema(avro(*fields), domain)
    check_schema_for_dataset(schema, dataset_type, domain)
    return schema


@contextmanager
def refused(*words: str) -> Iterator[None]:
    """Assert the block raises InvalidInputException whose message contains every word."""
    with pytest.raises(InvalidInputException) as info:
        yield
    message = str(info.value)
    for word in words:
        assert word in message, f"{word!r} not in {message!r}"


# --- parse_schema: document shape ---------------------------------------------------------


def test_parse_valid_schema_keeps_order_types_and_flags() -> None:
    schema = parse_schema(
        avro(
            f("USER_ID"),
            f("ITEM_ID"),
            f("TIMESTAMP", "long"),
            f("EVENT_VALUE", ["null", "float"]),
            f("DEVICE", ["string", "null"], categorical=True),
            f("DESC", "string", textual=True),
        )
    )
    assert schema.names == ("USER_ID", "ITEM_ID", "TIMESTAMP", "EVENT_VALUE", "DEVICE", "DESC")
    assert schema.field("TIMESTAMP") == Field("TIMESTAMP", "long", False)
    assert schema.field("EVENT_VALUE") == Field("EVENT_VALUE", "float", True)
    assert schema.field("DEVICE") == Field("DEVICE", "string", True, categorical=True)
    assert schema.field("DESC") == Field("DESC", "string", False, textual=True)
    # Lookups ignore case, as CSV headers and filter fields do; reserved names are exact.
    assert schema.field("timestamp") == Field("TIMESTAMP", "long", False)
    assert schema.exact_field("timestamp") is None


@pytest.mark.parametrize("text", ["{not json", "", '{"type": "record",}'])
def test_parse_refuses_invalid_json(text: str) -> None:
    with refused("not valid JSON"):
        parse_schema(text)


@pytest.mark.parametrize("text", ["[]", '"record"', "42"])
def test_parse_refuses_non_object(text: str) -> None:
    with refused("JSON object"):
        parse_schema(text)


def test_parse_requires_record_type() -> None:
    text = json.dumps({"type": "enum", "name": "X", "fields": [f("A")]})
    with refused('"type"', '"record"'):
        parse_schema(text)


@pytest.mark.parametrize("name", [None, "", 3])
def test_parse_requires_name(name: Any) -> None:
    doc: dict[str, Any] = {"type": "record", "fields": [f("A")]}
    if name is not None:
        doc["name"] = name
    with refused('"name"'):
        parse_schema(json.dumps(doc))


@pytest.mark.parametrize("fields", [None, [], {"A": "string"}])
def test_parse_requires_non_empty_field_list(fields: Any) -> None:
    doc: dict[str, Any] = {"type": "record", "name": "X"}
    if fields is not None:
        doc["fields"] = fields
    with refused('"fields"', "non-empty"):
        parse_schema(json.dumps(doc))


def test_parse_refuses_field_that_is_not_an_object() -> None:
    with refused("field #2", "JSON object"):
        parse_schema(avro(f("A"), "B"))  # type: ignore[arg-type]


def test_parse_refuses_field_without_name() -> None:
    with refused("field #1", '"name"'):
        parse_schema(avro({"type": "string"}))


@pytest.mark.parametrize("name", ["1ABC", "MY-FIELD", "has space", "é"])
def test_parse_refuses_invalid_field_name(name: str) -> None:
    with refused(f'"{name}"', "invalid name"):
        parse_schema(avro(f(name)))


@pytest.mark.parametrize("name", ["_X", "a1", "CamelCase_2"])
def test_parse_accepts_valid_field_names(name: str) -> None:
    assert parse_schema(avro(f(name))).names == (name,)


def test_parse_refuses_field_without_type() -> None:
    with refused('"A"', '"type"'):
        parse_schema(avro({"name": "A"}))


# --- parse_schema: field types -------------------------------------------------------------


@pytest.mark.parametrize("type_", ["string", "int", "long", "float", "double", "boolean"])
def test_parse_accepts_every_primitive_plain_and_nullable(type_: str) -> None:
    # A union of one type (["string"], as sample notebooks write for GENRES) is that type.
    schema = parse_schema(
        avro(f("A", type_), f("B", ["null", type_]), f("C", [type_, "null"]), f("D", [type_]))
    )
    assert [(x.type, x.nullable) for x in schema.fields] == [
        (type_, False),
        (type_, True),
        (type_, True),
        (type_, False),
    ]


def test_parse_accepts_primitive_in_object_form() -> None:
    assert parse_schema(avro(f("A", {"type": "long"}))).field("A") == Field("A", "long", False)


@pytest.mark.parametrize(
    "type_, words",
    [
        ("null", ['"null" alone']),
        (["null"], ["union"]),
        (["string", "long"], ["union"]),
        (["null", "string", "long"], ["union"]),
        (["null", "null"], ["union"]),
        ("bytes", ['"bytes"']),
        ("array", ['"array"']),
        ({"type": "array", "items": "string"}, ['"array"', "flat"]),
        ({"type": "map", "values": "string"}, ['"map"']),
        ({"type": "record", "name": "R", "fields": []}, ['"record"']),
        ({"type": "enum", "name": "E", "symbols": ["A"]}, ['"enum"']),
        ({"type": "long", "logicalType": "timestamp-millis"}, ["complex"]),
        (["null", {"type": "array", "items": "string"}], ['"array"']),
        ("varchar", ['unknown type "varchar"']),
        (42, ["not a type name"]),
    ],
)
def test_parse_refuses_unsupported_types_naming_the_field(type_: Any, words: list[str]) -> None:
    with refused('"BAD"', *words):
        parse_schema(avro(f("OK"), f("BAD", type_)))


# --- parse_schema: names unique ------------------------------------------------------------


def test_parse_refuses_exact_duplicate_names() -> None:
    with refused('"GENRE"', "more than once"):
        parse_schema(avro(f("GENRE"), f("GENRE", "int")))


@pytest.mark.parametrize("second", ["userId", "USERID", "user_id", "U_S_E_R_I_D"])
def test_parse_refuses_names_equal_ignoring_case_and_underscores(second: str) -> None:
    with refused(f'"{second}"', '"USER_ID"', "unique"):
        parse_schema(avro(f("USER_ID"), f(second)))


# --- parse_schema: categorical / textual ----------------------------------------------------


@pytest.mark.parametrize("flag", ["categorical", "textual", "itemName"])
def test_parse_flags_only_on_string_fields(flag: str) -> None:
    assert parse_schema(avro(f("A", ["null", "string"], **{flag: True}))).fields
    with refused('"A"', f'"{flag}"', '"int"', "string"):
        parse_schema(avro(f("A", "int", **{flag: True})))


def test_parse_false_flags_allowed_on_any_type() -> None:
    schema = parse_schema(avro(f("A", "int", categorical=False, textual=False)))
    assert schema.field("A") == Field("A", "int", False)


def test_parse_refuses_categorical_and_textual_together() -> None:
    with refused('"A"', "both categorical and textual"):
        parse_schema(avro(f("A", categorical=True, textual=True)))


def test_parse_refuses_non_boolean_flag() -> None:
    with refused('"A"', '"categorical"', "boolean"):
        parse_schema(avro(f("A", categorical="true")))


def test_parse_domain_must_be_known() -> None:
    assert parse_schema(avro(*INTERACTIONS), "ECOMMERCE").names
    assert parse_schema(avro(*INTERACTIONS), "VIDEO_ON_DEMAND").names
    with refused('"RETAIL"', "ECOMMERCE"):
        parse_schema(avro(*INTERACTIONS), "RETAIL")


# --- normalize_dataset_type ----------------------------------------------------------------


@pytest.mark.parametrize("canonical", DATASET_TYPES)
def test_normalize_dataset_type_is_case_insensitive(canonical: str) -> None:
    assert normalize_dataset_type(canonical) == canonical
    assert normalize_dataset_type(canonical.upper()) == canonical
    assert normalize_dataset_type(canonical.lower()) == canonical


@pytest.mark.parametrize("value", ["Interaction", "ActionInteractions", "", "Items "])
def test_normalize_dataset_type_refuses_unknown(value: str) -> None:
    with refused(f'"{value}"', "Interactions"):
        normalize_dataset_type(value)


def test_check_accepts_dataset_type_in_any_case() -> None:
    check("INTERACTIONS", *INTERACTIONS)
    check("action_interactions", *ACTION_INTERACTIONS)


# --- Interactions ---------------------------------------------------------------------------


def test_interactions_minimal_and_full_reserved_set_are_valid() -> None:
    check("Interactions", *INTERACTIONS)
    check(
        "Interactions",
        *INTERACTIONS,
        f("EVENT_TYPE"),
        f("EVENT_VALUE", ["null", "float"]),
        f("IMPRESSION", ["null", "string"]),
        f("RECOMMENDATION_ID", ["string", "null"]),
        f("EVENT_ATTRIBUTION_SOURCE", ["null", "string"]),
    )
    check("Interactions", *INTERACTIONS, f("EVENT_VALUE", "double"))


@pytest.mark.parametrize("missing", ["USER_ID", "ITEM_ID", "TIMESTAMP"])
def test_interactions_required_fields(missing: str) -> None:
    fields = [x for x in INTERACTIONS if x["name"] != missing] + [f("OTHER", "int")]
    with refused(f'"{missing}"', "required", "Interactions"):
        check("Interactions", *fields)


def test_interactions_required_field_hint_for_wrong_case() -> None:
    with refused('"USER_ID"', 'found "user_id"'):
        check("Interactions", f("user_id"), f("ITEM_ID"), f("TIMESTAMP", "long"))


@pytest.mark.parametrize(
    "name, type_",
    [("USER_ID", "int"), ("ITEM_ID", "long"), ("TIMESTAMP", "int"), ("TIMESTAMP", "string")],
)
def test_interactions_required_field_types(name: str, type_: str) -> None:
    fields = [f(name, type_) if x["name"] == name else x for x in INTERACTIONS]
    with refused(f'Schema field "{name}" must be of type', "Interactions"):
        check("Interactions", *fields)


@pytest.mark.parametrize("name", ["USER_ID", "ITEM_ID", "TIMESTAMP"])
def test_interactions_required_fields_not_nullable(name: str) -> None:
    fields = [f(name, ["null", x["type"]]) if x["name"] == name else x for x in INTERACTIONS]
    with refused(f'"{name}"', "must not be nullable"):
        check("Interactions", *fields)


def test_timestamp_message_matches_documented_wording() -> None:
    with refused('Schema field "TIMESTAMP" must be of type "long" for an Interactions dataset'):
        check("Interactions", f("USER_ID"), f("ITEM_ID"), f("TIMESTAMP", "int"))


@pytest.mark.parametrize(
    "field",
    [
        f("EVENT_TYPE", "int"),
        f("EVENT_VALUE", "string"),
        f("EVENT_VALUE", "long"),
        f("IMPRESSION", "int"),
        f("RECOMMENDATION_ID", ["null", "long"]),
        f("EVENT_ATTRIBUTION_SOURCE", "boolean"),
    ],
)
def test_interactions_reserved_field_types(field: dict[str, Any]) -> None:
    with refused(f'Schema field "{field["name"]}" must be of type'):
        check("Interactions", *INTERACTIONS, field)


def test_interactions_event_type_not_nullable() -> None:
    with refused('"EVENT_TYPE"', "must not be nullable"):
        check("Interactions", *INTERACTIONS, f("EVENT_TYPE", ["null", "string"]))


def test_interactions_event_type_not_categorical() -> None:
    check("Interactions", *INTERACTIONS, f("EVENT_TYPE", categorical=False))
    with refused('"EVENT_TYPE"', "must not be categorical"):
        check("Interactions", *INTERACTIONS, f("EVENT_TYPE", categorical=True))


def test_interactions_at_most_five_metadata_fields() -> None:
    five = [f(f"CTX_{i}", categorical=True) for i in range(5)]
    check("Interactions", *INTERACTIONS, f("EVENT_TYPE"), f("EVENT_VALUE", "float"), *five)
    with refused('"CTX_5"', "at most 5"):
        check("Interactions", *INTERACTIONS, *five, f("CTX_5", "int"))


def test_interactions_refuse_textual_field() -> None:
    with refused('"NOTE"', "textual", "Items"):
        check("Interactions", *INTERACTIONS, f("NOTE", textual=True))


@pytest.mark.parametrize("domain", ["ECOMMERCE", "VIDEO_ON_DEMAND"])
def test_interactions_in_domain_require_event_type(domain: str) -> None:
    check("Interactions", *INTERACTIONS, f("EVENT_TYPE"), domain=domain)
    with refused('"EVENT_TYPE"', "required"):
        check("Interactions", *INTERACTIONS, domain=domain)
    with refused('"EVENT_TYPE"', "must not be nullable"):
        check("Interactions", *INTERACTIONS, f("EVENT_TYPE", ["null", "string"]), domain=domain)


# --- Items ----------------------------------------------------------------------------------


def test_items_valid() -> None:
    check("Items", *ITEMS)
    check("Items", f("ITEM_ID"), f("PRICE", "float"), f("CREATION_TIMESTAMP", "long"))


def test_items_require_item_id_string() -> None:
    with refused('"ITEM_ID"', "required", "Items"):
        check("Items", f("GENRES", categorical=True))
    with refused('Schema field "ITEM_ID" must be of type "string"'):
        check("Items", f("ITEM_ID", "long"), f("GENRES", categorical=True))


def test_items_need_a_metadata_field_and_creation_timestamp_is_not_one() -> None:
    with refused('"ITEM_ID"', "at least 1 metadata field"):
        check("Items", f("ITEM_ID"))
    with refused('"ITEM_ID"', "at least 1 metadata field"):
        check("Items", f("ITEM_ID"), f("CREATION_TIMESTAMP", "long"))


@pytest.mark.parametrize("type_", ["int", "string", ["null", "long"]])
def test_items_creation_timestamp_must_be_long(type_: Any) -> None:
    with refused('"CREATION_TIMESTAMP"'):
        check("Items", *ITEMS, f("CREATION_TIMESTAMP", type_))


def test_items_at_most_100_metadata_fields() -> None:
    hundred = [f(f"M{i}", "float") for i in range(100)]
    check("Items", f("ITEM_ID"), f("CREATION_TIMESTAMP", "long"), *hundred)
    with refused('"M100"', "at most 100"):
        check("Items", f("ITEM_ID"), *hundred, f("M100", "int"))


def test_items_at_most_one_textual_field() -> None:
    check("Items", *ITEMS, f("DESCRIPTION", ["null", "string"], textual=True))
    with refused('"DESCRIPTION"', '"TITLE"', "at most 1 textual"):
        check("Items", *ITEMS, f("DESCRIPTION", textual=True), f("TITLE", textual=True))


def test_items_item_name_at_most_once() -> None:
    check("Items", *ITEMS, f("TITLE", itemName=True))
    with refused('"TITLE"', '"NAME"', "itemName"):
        check("Items", *ITEMS, f("TITLE", itemName=True), f("NAME", itemName=True))


def test_item_name_only_in_items() -> None:
    with refused('"NICK"', "itemName", "Users"):
        check("Users", *USERS, f("NICK", itemName=True))


def test_ecommerce_items_require_price_and_category_l1() -> None:
    good = (f("ITEM_ID"), f("PRICE", "float"), f("CATEGORY_L1", categorical=True))
    check("Items", *good, domain="ECOMMERCE")
    with refused('"PRICE"', "required"):
        check("Items", f("ITEM_ID"), f("CATEGORY_L1", categorical=True), domain="ECOMMERCE")
    with refused('"CATEGORY_L1"', "must be categorical"):
        check("Items", f("ITEM_ID"), f("PRICE", "float"), f("CATEGORY_L1"), domain="ECOMMERCE")


def test_video_on_demand_items_require_genres_and_creation_timestamp() -> None:
    good = (f("ITEM_ID"), f("GENRES", categorical=True), f("CREATION_TIMESTAMP", "long"))
    check("Items", *good, domain="VIDEO_ON_DEMAND")
    with refused('"CREATION_TIMESTAMP"', "required"):
        check("Items", *ITEMS, domain="VIDEO_ON_DEMAND")


# --- Users ----------------------------------------------------------------------------------


def test_users_valid_and_require_user_id() -> None:
    check("Users", *USERS)
    with refused('"USER_ID"', "required", "Users"):
        check("Users", f("AGE", "int"))
    with refused('"USER_ID"', "must not be nullable"):
        check("Users", f("USER_ID", ["null", "string"]), f("AGE", "int"))


def test_users_need_a_metadata_field() -> None:
    with refused('"USER_ID"', "at least 1 metadata field"):
        check("Users", f("USER_ID"))


def test_users_at_most_25_metadata_fields() -> None:
    many = [f(f"M{i}", categorical=True) for i in range(25)]
    check("Users", f("USER_ID"), *many)
    with refused('"M25"', "at most 25"):
        check("Users", f("USER_ID"), *many, f("M25", "int"))


def test_users_refuse_textual_field() -> None:
    with refused('"BIO"', "textual", "Users"):
        check("Users", *USERS, f("BIO", textual=True))


# --- Actions / Action_Interactions ----------------------------------------------------------


def test_actions_valid_with_reserved_fields() -> None:
    check(
        "Actions",
        *ACTIONS,
        f("VALUE", ["null", "long"]),
        f("CREATION_TIMESTAMP", "long"),
        f("REPEAT_FREQUENCY", ["null", "long"]),
        f("ACTION_EXPIRATION_TIMESTAMP", ["null", "long"]),
    )


def test_actions_require_action_id_and_metadata() -> None:
    with refused('"ACTION_ID"', "required", "Actions"):
        check("Actions", f("LEVEL", categorical=True))
    with refused('"ACTION_ID"', "at least 1 metadata field"):
        check("Actions", f("ACTION_ID"), f("VALUE", "long"))


def test_actions_reserved_types_and_metadata_limit() -> None:
    with refused('Schema field "VALUE" must be of type "long"'):
        check("Actions", *ACTIONS, f("VALUE", "float"))
    ten = [f(f"M{i}", "int") for i in range(10)]
    check("Actions", f("ACTION_ID"), *ten)
    with refused('"M10"', "at most 10"):
        check("Actions", f("ACTION_ID"), *ten, f("M10", "int"))


def test_actions_refuse_textual_field() -> None:
    with refused('"BLURB"', "textual", "Actions"):
        check("Actions", *ACTIONS, f("BLURB", textual=True))


@pytest.mark.parametrize("missing", ["USER_ID", "ACTION_ID", "TIMESTAMP", "EVENT_TYPE"])
def test_action_interactions_required_fields(missing: str) -> None:
    check("Action_Interactions", *ACTION_INTERACTIONS, f("IMPRESSION", ["null", "string"]))
    fields = [x for x in ACTION_INTERACTIONS if x["name"] != missing]
    with refused(f'"{missing}"', "required", "Action_Interactions"):
        check("Action_Interactions", *fields)


def test_action_interactions_types_and_event_type_not_categorical() -> None:
    bad_ts = [f("TIMESTAMP", "int") if x["name"] == "TIMESTAMP" else x for x in ACTION_INTERACTIONS]
    with refused('Schema field "TIMESTAMP" must be of type "long"'):
        check("Action_Interactions", *bad_ts)
    cat = [
        f("EVENT_TYPE", categorical=True) if x["name"] == "EVENT_TYPE" else x
        for x in ACTION_INTERACTIONS
    ]
    with refused('"EVENT_TYPE"', "must not be categorical"):
        check("Action_Interactions", *cat)


@pytest.mark.parametrize("domain", ["ECOMMERCE", "VIDEO_ON_DEMAND"])
def test_actions_not_allowed_in_domain_dataset_group(domain: str) -> None:
    with refused("Actions", "domain", domain):
        check("Actions", *ACTIONS, domain=domain)
    with refused("Action_Interactions", "domain", domain):
        check("Action_Interactions", *ACTION_INTERACTIONS, domain=domain)


def test_check_refuses_unknown_domain() -> None:
    schema = parse_schema(avro(*INTERACTIONS))
    with refused('"RETAIL"'):
        check_schema_for_dataset(schema, "Interactions", "RETAIL")


# --- required_fields -----------------------------------------------------------------------


def test_required_fields_are_the_non_nullable_ones_in_order() -> None:
    schema = check(
        "Interactions",
        f("USER_ID"),
        f("EVENT_VALUE", ["null", "float"]),
        f("ITEM_ID"),
        f("TIMESTAMP", "long"),
        f("EVENT_TYPE"),
        f("DEVICE", ["string", "null"], categorical=True),
    )
    assert required_fields(schema, "interactions") == (
        "USER_ID",
        "ITEM_ID",
        "TIMESTAMP",
        "EVENT_TYPE",
    )


def test_required_fields_checks_dataset_type() -> None:
    with refused('"Nope"'):
        required_fields(parse_schema(avro(*USERS)), "Nope")


def test_domain_reserved_keywords_have_fixed_types() -> None:
    shop_items = (f("ITEM_ID"), f("PRICE", "float"), f("CATEGORY_L1", categorical=True))
    check(
        "Items",
        *shop_items,
        f("CATEGORY_L2", ["null", "string"], categorical=True),
        f("PRODUCT_DESCRIPTION", ["null", "string"], textual=True),
        f("CREATION_TIMESTAMP", "float"),  # the guide types it both long and float
        domain="ECOMMERCE",
    )
    with refused("CATEGORY_L2", "categorical"):
        check("Items", *shop_items, f("CATEGORY_L2"), domain="ECOMMERCE")
    with refused("PRODUCT_DESCRIPTION", "textual"):
        check("Items", *shop_items, f("PRODUCT_DESCRIPTION"), domain="ECOMMERCE")
    with refused("GENDER", "categorical"):
        check("Items", *shop_items, f("GENDER", ["null", "string"]), domain="ECOMMERCE")
    # A custom dataset group has no such keywords: the same field is plain metadata there.
    check("Items", *shop_items, f("CATEGORY_L2"))
    videos = (f("ITEM_ID"), f("GENRES", categorical=True), f("CREATION_TIMESTAMP", "long"))
    check("Items", *videos, f("DURATION", ["null", "float"]), domain="VIDEO_ON_DEMAND")
    with refused("DURATION", "float"):
        check("Items", *videos, f("DURATION", "string"), domain="VIDEO_ON_DEMAND")
    with refused("SUBSCRIPTION_MODEL", "categorical"):
        check("Users", f("USER_ID"), f("SUBSCRIPTION_MODEL"), domain="VIDEO_ON_DEMAND")
