"""The filter expression language: grammar and parser, static checks, compiled item masks."""

from openpersonalize.filters.compiled import CompiledFilter, UserContext
from openpersonalize.filters.expression import (
    Condition,
    CurrentItemField,
    Expression,
    Filter,
    Placeholder,
    check_filter,
    parse_filter,
    parse_filter_values,
    resolve_fields,
)

__all__ = [
    "CompiledFilter",
    "Condition",
    "CurrentItemField",
    "Expression",
    "Filter",
    "Placeholder",
    "UserContext",
    "check_filter",
    "parse_filter",
    "parse_filter_values",
    "resolve_fields",
]
