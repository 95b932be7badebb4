"""Record shapes: pydantic models whose JSON the C core writes itself.

Serializing a small model through ``__pydantic_serializer__.to_json`` costs
more than the rest of a typed request's Python work. For a *plain* model
(fields of str, int, float, bool, None and lists of them; no aliases,
serializers, computed or excluded fields, extra fields or serialization
settings) the output is fully determined by the field values, so the C core
writes ``instance.__dict__`` by the model's field order instead
(``cz_json_write_shape`` in ``csrc/python/py_json.h``). The C writer checks
every value against its declared kind per request and hands anything else
(a value of another type, a float pydantic spells differently, a string
that is not valid UTF-8) back to pydantic, so its bytes are pydantic's.

A shape is a tuple of ``(field name, kind)``; a kind is a short string read
left to right: ``s`` str, ``i`` int, ``f`` float, ``b`` bool, ``n`` "None or
what follows", ``l`` "a list of what follows" (so ``"lni"`` is
``list[int | None]``).
"""

from __future__ import annotations

from typing import Any

Shape = tuple[tuple[str, str], ...]

_SCALARS = {"str": "s", "int": "i", "float": "f", "bool": "b"}
# Schema keys that only constrain validation; any other key may change the output.
_VALIDATION_ONLY = {
    "type",
    "schema",
    "items_schema",
    "metadata",
    "ref",
    "strict",
    "default",
    "default_factory",
    "default_factory_takes_data",
    "validate_default",
    "min_length",
    "max_length",
    "pattern",
    "strip_whitespace",
    "to_lower",
    "to_upper",
    "regex_engine",
    "coerce_numbers_to_str",
    "gt",
    "ge",
    "lt",
    "le",
    "multiple_of",
    "allow_inf_nan",
    "fail_fast",
    "function",
    "validation_alias",
    "frozen",
    "on_error",
}
_MODEL_KEYS = {
    "type",
    "cls",
    "schema",
    "config",
    "custom_init",
    "root_model",
    "post_init",
    "ref",
    "metadata",
    "generic_origin",
}
_FIELDS_KEYS = {"type", "fields", "computed_fields", "model_name", "strict", "extra_behavior"}
# Config entries that change how the model is validated, never how it is written (for plain fields).
_CONFIG_KEYS = {
    "title",
    "extra_fields_behavior",
    "strict",
    "str_max_length",
    "str_min_length",
    "str_strip_whitespace",
    "str_to_lower",
    "str_to_upper",
    "allow_inf_nan",
    "validate_default",
    "from_attributes",
    "loc_by_alias",
    "revalidate_instances",
    "validate_assignment",
    "frozen",
    "populate_by_name",
    "validate_by_name",
    "validate_by_alias",
    "coerce_numbers_to_str",
    "regex_engine",
    "cache_strings",
    "hide_input_in_errors",
    "validation_error_cause",
    "use_enum_values",
}


def _kind(schema: dict[str, Any]) -> str | None:
    if not set(schema) <= _VALIDATION_ONLY:
        return None  # e.g. "serialization": a custom serializer
    t = schema["type"]
    if t in _SCALARS:
        return _SCALARS[t]
    if t in ("default", "function-after", "function-before"):
        return _kind(schema["schema"])
    if t in ("nullable", "list"):
        inner = _kind(schema["schema"] if t == "nullable" else schema.get("items_schema", {"type": "any"}))
        return None if inner is None else ("n" if t == "nullable" else "l") + inner
    return None


def pydantic_shape(schema: dict[str, Any], cls: type) -> Shape | None:
    """The shape of the pydantic model ``cls`` from its core schema, or None when it is not plain."""
    if schema.get("type") != "model" or schema.get("cls") is not cls or not set(schema) <= _MODEL_KEYS:
        return None
    if schema.get("root_model") or schema.get("config", {}).get("extra_fields_behavior") == "allow":
        return None
    if not set(schema.get("config", {})) <= _CONFIG_KEYS:
        return None
    inner = schema["schema"]
    if inner.get("type") != "model-fields" or inner.get("computed_fields") or not set(inner) <= _FIELDS_KEYS:
        return None
    if inner.get("extra_behavior") == "allow":
        return None
    shape = []
    for name, field in inner["fields"].items():
        if field.get("type") != "model-field" or not set(field) <= {
            "type",
            "schema",
            "metadata",
            "validation_alias",
            "frozen",
        }:
            return None  # serialization_alias, serialization_exclude, exclude_if, ...
        kind = _kind(field["schema"])
        if kind is None:
            return None
        shape.append((name, kind))
    return tuple(shape)
