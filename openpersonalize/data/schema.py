"""Dataset schemas: parse the Avro record JSON CreateSchema receives and check it per dataset type.

Two stages, as in Amazon Personalize: ``parse_schema`` applies the rules every schema obeys
(CreateSchema), ``check_schema_for_dataset`` the rules of one dataset type and dataset-group
domain (CreateDataset). Every violation raises ``InvalidInputException`` naming the field at
fault and the rule it broke.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from openpersonalize.errors import InvalidInputException

DATASET_TYPES = ("Interactions", "Items", "Users", "Actions", "Action_Interactions")
DOMAINS = ("ECOMMERCE", "VIDEO_ON_DEMAND")
PRIMITIVE_TYPES = ("string", "int", "long", "float", "double", "boolean")

_FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_COMPLEX_TYPES = ("record", "enum", "array", "map", "fixed", "bytes")
_FLAGS = ("categorical", "textual", "itemName")

# Metadata-field quotas (fields that are neither required nor reserved).
_MAX_METADATA = {"Interactions": 5, "Items": 100, "Users": 25, "Actions": 10}
_MIN_METADATA = {"Items": 1, "Users": 1, "Actions": 1}
_MAX_TEXTUAL_FIELDS = 1


@dataclass(frozen=True)
class Field:
    """One column of a dataset: its Avro primitive type and Personalize attributes."""

    name: str
    type: str  # one of PRIMITIVE_TYPES
    nullable: bool  # the Avro type was a union with "null"
    categorical: bool = False
    textual: bool = False
    item_name: bool = False  # "itemName": true, the item title used by Semantic-Similarity


@dataclass(frozen=True)
class Schema:
    """A parsed schema: its fields in declaration order (the CSV column order)."""

    fields: tuple[Field, ...]

    def field(self, name: str) -> Field | None:
        """The field with this name, ignoring case (as the service matches CSV headers and
        filter fields); parse_schema refuses two names that differ only in case."""
        key = name.casefold()
        for f in self.fields:
            if f.name.casefold() == key:
                return f
        return None

    def exact_field(self, name: str) -> Field | None:
        """The field spelled exactly so: reserved names (USER_ID, EVENT_TYPE, ...) are upper
        case, and a field spelled otherwise is plain metadata."""
        for f in self.fields:
            if f.name == name:
                return f
        return None

    @property
    def names(self) -> tuple[str, ...]:
        """Field names in declaration order."""
        return tuple(f.name for f in self.fields)


@dataclass(frozen=True)
class _Rule:
    """What a required or reserved field must be."""

    types: tuple[str, ...]
    nullable: bool = False  # may the field be a union with "null"
    categorical: bool = False  # True: must be categorical; False: must not be
    textual: bool = False  # True: must be textual


_STRING = _Rule(("string",))
_STRING_OR_NULL = _Rule(("string",), nullable=True)
_LONG = _Rule(("long",))
_LONG_OR_NULL = _Rule(("long",), nullable=True)
_REAL = _Rule(("float", "double"))
_REAL_OR_NULL = _Rule(("float", "double"), nullable=True)
_CATEGORICAL = _Rule(("string",), categorical=True)
_CATEGORICAL_OR_NULL = _Rule(("string",), nullable=True, categorical=True)
_TEXTUAL_OR_NULL = _Rule(("string",), nullable=True, textual=True)

# Required fields per dataset type (custom dataset groups).
_REQUIRED: dict[str, dict[str, _Rule]] = {
    "Interactions": {"USER_ID": _STRING, "ITEM_ID": _STRING, "TIMESTAMP": _LONG},
    "Items": {"ITEM_ID": _STRING},
    "Users": {"USER_ID": _STRING},
    "Actions": {"ACTION_ID": _STRING},
    "Action_Interactions": {
        "USER_ID": _STRING,
        "ACTION_ID": _STRING,
        "TIMESTAMP": _LONG,
        "EVENT_TYPE": _STRING,
    },
}

# Reserved keywords: optional, but of a fixed type when present; not counted as metadata.
_RESERVED: dict[str, dict[str, _Rule]] = {
    "Interactions": {
        "EVENT_TYPE": _STRING,
        "EVENT_VALUE": _REAL_OR_NULL,
        "IMPRESSION": _STRING_OR_NULL,
        "RECOMMENDATION_ID": _STRING_OR_NULL,
        "EVENT_ATTRIBUTION_SOURCE": _STRING_OR_NULL,
    },
    "Items": {"CREATION_TIMESTAMP": _LONG},
    "Users": {},
    "Actions": {
        "CREATION_TIMESTAMP": _LONG,
        "VALUE": _LONG_OR_NULL,
        "TYPE": _STRING_OR_NULL,
        # The guide names the expiration field both ways; accept either spelling.
        "EXPIRATION_TIMESTAMP": _LONG_OR_NULL,
        "ACTION_EXPIRATION_TIMESTAMP": _LONG_OR_NULL,
        "REPEAT_FREQUENCY": _LONG_OR_NULL,
    },
    "Action_Interactions": {
        "IMPRESSION": _STRING_OR_NULL,
        "RECOMMENDATION_ID": _STRING_OR_NULL,
    },
}

# Extra required fields in a domain dataset group, by (domain, dataset type).
_DOMAIN_REQUIRED: dict[tuple[str, str], dict[str, _Rule]] = {
    ("ECOMMERCE", "Interactions"): {"EVENT_TYPE": _STRING},
    ("VIDEO_ON_DEMAND", "Interactions"): {"EVENT_TYPE": _STRING},
    ("ECOMMERCE", "Items"): {"PRICE": _REAL, "CATEGORY_L1": _CATEGORICAL},
    ("VIDEO_ON_DEMAND", "Items"): {"GENRES": _CATEGORICAL, "CREATION_TIMESTAMP": _LONG},
}


# Reserved keywords of a domain's datasets (optional; of this type when present), spec §2.2.
_DOMAIN_RESERVED: dict[tuple[str, str], dict[str, _Rule]] = {
    ("ECOMMERCE", "Items"): {
        "CATEGORY_L2": _CATEGORICAL_OR_NULL,
        "CATEGORY_L3": _CATEGORICAL_OR_NULL,
        "PRODUCT_DESCRIPTION": _TEXTUAL_OR_NULL,
        # The guide types it long in one table and float in another: either is accepted.
        "CREATION_TIMESTAMP": _Rule(("long", "float", "double")),
        "AGE_GROUP": _CATEGORICAL_OR_NULL,
        "ADULT": _CATEGORICAL_OR_NULL,
        "GENDER": _CATEGORICAL_OR_NULL,
    },
    ("VIDEO_ON_DEMAND", "Items"): {
        "PRICE": _REAL_OR_NULL,
        "DURATION": _REAL_OR_NULL,
        "AVERAGE_RATING": _REAL_OR_NULL,
        "GENRE_L2": _CATEGORICAL_OR_NULL,
        "GENRE_L3": _CATEGORICAL_OR_NULL,
        "CONTENT_OWNER": _CATEGORICAL_OR_NULL,
        "CONTENT_CLASSIFICATION": _CATEGORICAL_OR_NULL,
        "PRODUCT_DESCRIPTION": _TEXTUAL_OR_NULL,
    },
    ("VIDEO_ON_DEMAND", "Users"): {"SUBSCRIPTION_MODEL": _CATEGORICAL_OR_NULL},
}


def event_type_key(event_type: str) -> str:
    """The form in which event types are compared: the service ignores their case (and only
    theirs) wherever it matches them, in filters and in a solution's training data."""
    return event_type.lower()


#: The action-interaction event types, canonically spelled.
ACTION_EVENT_TYPES = ("TAKEN", "NOT_TAKEN", "VIEWED")


def action_event_type(event_type: str | None) -> str | None:
    """TAKEN, NOT_TAKEN or VIEWED for any spelling of one ("Taken", "Not Taken", "not_taken",
    "NOT TAKEN": the guide writes them all), ignoring case, spaces and underscores; None for
    any other value."""
    if not isinstance(event_type, str):
        return None
    key = re.sub(r"[\s_]+", "_", event_type.strip()).upper()
    return key if key in ACTION_EVENT_TYPES else None


def _invalid(message: str) -> InvalidInputException:
    return InvalidInputException(message)


def _name_key(name: str) -> str:
    """The form in which two field names may not coincide: alphanumerics only, lower case."""
    return re.sub(r"[^0-9A-Za-z]", "", name).lower()


def _quote_all(names: Iterable[str]) -> str:
    return ", ".join(f'"{n}"' for n in names)


def _dataset(dataset_type: str) -> str:
    """'an Items dataset' / 'a Users dataset', for messages."""
    article = "an" if dataset_type[0] in "AEIOU" else "a"
    return f"{article} {dataset_type} dataset"


def _check_domain(domain: str | None) -> str | None:
    if domain is None:
        return None
    if domain not in DOMAINS:
        raise _invalid(f'Domain "{domain}" is not valid; it must be one of {_quote_all(DOMAINS)}')
    return domain


def _primitive(avro_type: Any, where: str) -> str:
    """The primitive name of one Avro type (bare name or ``{"type": name}``), else refuse."""
    if isinstance(avro_type, Mapping):
        inner = avro_type.get("type")
        if set(avro_type) == {"type"} and isinstance(inner, str) and inner in PRIMITIVE_TYPES:
            return inner
        kind = inner if isinstance(inner, str) else "nested"
        raise _invalid(
            f'{where} has a complex type "{kind}"; only the primitive types '
            f"{_quote_all(PRIMITIVE_TYPES)} are supported (schemas are flat)"
        )
    if not isinstance(avro_type, str):
        raise _invalid(f"{where} has a type that is not a type name")
    if avro_type in PRIMITIVE_TYPES:
        return avro_type
    if avro_type == "null":
        raise _invalid(
            f'{where} has type "null" alone; "null" is only allowed in a union with one '
            "primitive type"
        )
    if avro_type in _COMPLEX_TYPES:
        raise _invalid(
            f'{where} has type "{avro_type}"; only the primitive types '
            f"{_quote_all(PRIMITIVE_TYPES)} are supported (schemas are flat)"
        )
    raise _invalid(
        f'{where} has unknown type "{avro_type}"; it must be one of {_quote_all(PRIMITIVE_TYPES)}'
    )


def _field_type(avro_type: Any, where: str) -> tuple[str, bool]:
    """(primitive type, nullable) of a field's Avro type."""
    if not isinstance(avro_type, list):
        return _primitive(avro_type, where), False
    # A union of one type (["string"]) is that type; with "null" (either order) it is nullable.
    non_null = [t for t in avro_type if t != "null"]
    nulls = len(avro_type) - len(non_null)
    if len(non_null) != 1 or nulls > 1:
        raise _invalid(
            f"{where} has an unsupported union type; a union must be one primitive type, "
            'optionally with "null"'
        )
    return _primitive(non_null[0], where), nulls == 1


def _flag(spec: Mapping[str, Any], key: str, where: str) -> bool:
    value = spec.get(key, False)
    if not isinstance(value, bool):
        raise _invalid(f'{where} has a "{key}" attribute that is not a boolean (true or false)')
    return value


def _parse_field(spec: Any, index: int) -> Field:
    if not isinstance(spec, Mapping):
        raise _invalid(f"Schema field #{index + 1} is not a JSON object")
    name = spec.get("name")
    if not isinstance(name, str) or not name:
        raise _invalid(f'Schema field #{index + 1} has no "name"')
    where = f'Schema field "{name}"'
    if not _FIELD_NAME.fullmatch(name):
        raise _invalid(
            f"{where} has an invalid name; a field name must start with a letter or underscore "
            "and contain only letters, digits and underscores"
        )
    if "type" not in spec:
        raise _invalid(f'{where} has no "type"')
    type_, nullable = _field_type(spec["type"], where)
    categorical, textual, item_name = (_flag(spec, key, where) for key in _FLAGS)
    for key, on in zip(_FLAGS, (categorical, textual, item_name), strict=True):
        if on and type_ != "string":
            raise _invalid(
                f'{where} has "{key}": true but type "{type_}"; only string fields may have it'
            )
    if categorical and textual:
        raise _invalid(f"{where} is both categorical and textual; a field may be only one of them")
    return Field(name, type_, nullable, categorical, textual, item_name)


def parse_schema(text: str, domain: str | None = None) -> Schema:
    """Parse and check an Avro record schema as CreateSchema receives it (type-independent)."""
    _check_domain(domain)
    try:
        doc = json.loads(text)
    except RecursionError:
        raise _invalid("The schema is nested too deeply to be an Avro record") from None
    except (TypeError, ValueError) as exc:
        raise _invalid(f"The schema is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise _invalid("The schema must be a JSON object describing an Avro record")
    if doc.get("type") != "record":
        raise _invalid('The schema\'s top-level "type" must be "record"')
    if not isinstance(doc.get("name"), str) or not doc["name"]:
        raise _invalid('The schema must have a "name" (a non-empty string)')
    raw_fields = doc.get("fields")
    if not isinstance(raw_fields, list) or not raw_fields:
        raise _invalid('The schema must have "fields", a non-empty list of fields')
    fields = tuple(_parse_field(spec, i) for i, spec in enumerate(raw_fields))
    seen: dict[str, str] = {}
    for f in fields:
        key = _name_key(f.name)
        other = seen.get(key)
        if other is None:
            seen[key] = f.name
            continue
        if other == f.name:
            raise _invalid(f'Schema field "{f.name}" is defined more than once')
        raise _invalid(
            f'Schema field "{f.name}" clashes with field "{other}"; field names must be unique '
            "ignoring case and non-alphanumeric characters"
        )
    return Schema(fields)


def normalize_dataset_type(value: str) -> str:
    """Case-insensitive match to one of DATASET_TYPES, returned in canonical spelling."""
    if isinstance(value, str):
        for canonical in DATASET_TYPES:
            if value.lower() == canonical.lower():
                return canonical
    raise _invalid(
        f'Dataset type "{value}" is not valid; it must be one of {_quote_all(DATASET_TYPES)}'
    )


def _check_rule(schema: Schema, name: str, rule: _Rule, dataset: str) -> None:
    f = schema.exact_field(name)
    if f is None:
        return
    where = f'Schema field "{name}"'
    if f.type not in rule.types:
        wanted = " or ".join(f'"{t}"' for t in rule.types)
        raise _invalid(f"{where} must be of type {wanted} for {dataset}")
    if f.nullable and not rule.nullable:
        raise _invalid(f'{where} must not be nullable (a union with "null") for {dataset}')
    if rule.categorical and not f.categorical:
        raise _invalid(f'{where} must be categorical ("categorical": true) for {dataset}')
    if rule.textual and not f.textual:
        raise _invalid(f'{where} must be textual ("textual": true) for {dataset}')
    if not rule.categorical and f.categorical:
        raise _invalid(f"{where} is a reserved field and must not be categorical for {dataset}")


def _require(schema: Schema, name: str, rule: _Rule, dataset: str) -> None:
    if schema.exact_field(name) is None:
        types = " or ".join(f'"{t}"' for t in rule.types)
        hint = ""
        near = [f.name for f in schema.fields if _name_key(f.name) == _name_key(name)]
        if near:
            hint = f' (found "{near[0]}"; reserved field names are upper case)'
        raise _invalid(
            f'Schema for {dataset} is missing the required field "{name}" of type {types}{hint}'
        )
    _check_rule(schema, name, rule, dataset)


def check_schema_for_dataset(schema: Schema, dataset_type: str, domain: str | None = None) -> None:
    """Rules that depend on the dataset type (and the dataset group's domain)."""
    kind = normalize_dataset_type(dataset_type)
    domain = _check_domain(domain)
    dataset = _dataset(kind)
    if domain is not None and kind in ("Actions", "Action_Interactions"):
        raise _invalid(
            f"Dataset type {kind} is not allowed in a domain dataset group (domain {domain}); "
            "actions need a Custom dataset group"
        )

    required = dict(_REQUIRED[kind])
    reserved = dict(_RESERVED[kind])
    if domain is not None:
        required.update(_DOMAIN_REQUIRED.get((domain, kind), {}))
        reserved.update(_DOMAIN_RESERVED.get((domain, kind), {}))
    reserved = {k: v for k, v in reserved.items() if k not in required}
    for name, rule in required.items():
        _require(schema, name, rule, dataset)
    for name, rule in reserved.items():
        _check_rule(schema, name, rule, dataset)

    # Domain-required fields (PRICE, GENRES, ...) are metadata: they count toward the quotas.
    special = set(_REQUIRED[kind]) | set(_RESERVED[kind])
    metadata = [f for f in schema.fields if f.name not in special]
    low, high = _MIN_METADATA.get(kind, 0), _MAX_METADATA.get(kind)
    if len(metadata) < low:
        raise _invalid(
            f"Schema for {dataset} must have at least {low} metadata field besides "
            f"{_quote_all(_REQUIRED[kind])} and the reserved fields"
        )
    if high is not None and len(metadata) > high:
        raise _invalid(
            f"Schema for {dataset} has {len(metadata)} metadata fields "
            f"({_quote_all(f.name for f in metadata)}); at most {high} are allowed"
        )

    textual = [f.name for f in schema.fields if f.textual]
    if textual and kind != "Items":
        raise _invalid(
            f'Schema field "{textual[0]}" is textual; textual fields are allowed only in an '
            f"Items dataset, not in {dataset}"
        )
    if len(textual) > _MAX_TEXTUAL_FIELDS:
        raise _invalid(
            f"Schema fields {_quote_all(textual)} are textual; {dataset} allows at most "
            f"{_MAX_TEXTUAL_FIELDS} textual field"
        )

    item_names = [f.name for f in schema.fields if f.item_name]
    if item_names and kind != "Items":
        raise _invalid(
            f'Schema field "{item_names[0]}" has "itemName"; it is allowed only in an Items '
            f"dataset, not in {dataset}"
        )
    if len(item_names) > 1:
        raise _invalid(
            f'Schema fields {_quote_all(item_names)} have "itemName"; at most one field may '
            "be the item name"
        )


def required_fields(schema: Schema, dataset_type: str) -> tuple[str, ...]:
    """Names of the fields a CSV import must provide a column for: the non-nullable fields."""
    normalize_dataset_type(dataset_type)
    return tuple(f.name for f in schema.fields if not f.nullable)
