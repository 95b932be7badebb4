"""The OpenAPI 3.1 document, from the routes as analysed when they were added.

Model schemas come from their library (pydantic's ``TypeAdapter.json_schema``,
``msgspec.json.schema_components``); with neither installed, dataclasses and
TypedDicts get a schema from their annotations. The 422 response and its
``HTTPValidationError``/``ValidationError`` components are FastAPI's.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import inspect
import re
import sys
import typing
from collections.abc import Callable
from typing import Any

from catzilla import convert, models
from catzilla.analysis import Dependant, ParamInfo
from catzilla.params import Undefined
from catzilla.rendering import NO_BODY

REF = "#/components/schemas/"
VALIDATION_ERROR = {
    "properties": {
        "loc": {"items": {"anyOf": [{"type": "string"}, {"type": "integer"}]}, "type": "array", "title": "Location"},
        "msg": {"type": "string", "title": "Message"},
        "type": {"type": "string", "title": "Error Type"},
        "input": {"title": "Input"},
        "ctx": {"type": "object", "title": "Context"},
    },
    "type": "object",
    "required": ["loc", "msg", "type"],
    "title": "ValidationError",
}
HTTP_VALIDATION_ERROR = {
    "properties": {"detail": {"items": {"$ref": REF + "ValidationError"}, "type": "array", "title": "Detail"}},
    "type": "object",
    "title": "HTTPValidationError",
}
HTTP_REASONS = {200: "Successful Response", 201: "Successful Response", 204: "Successful Response"}


def title(name: str) -> str:
    return name.replace("_", " ").title()


def operation_id(name: str, path: str, method: str) -> str:
    return re.sub(r"\W", "_", f"{name}{path}") + f"_{method.lower()}"


def jsonable(value: Any) -> Any:
    from catzilla.encoders import jsonable_encoder

    try:
        return jsonable_encoder(value)
    except TypeError:
        return None


class SchemaBuilder:
    """Collects component schemas while routes are described."""

    def __init__(self) -> None:
        self.components: dict[str, Any] = {}
        self.security_schemes: dict[str, Any] = {}
        self._seen: dict[Any, dict[str, Any]] = {}

    def for_type(self, tp: Any) -> dict[str, Any]:
        """A schema (usually a $ref) for a model type or container of models."""
        try:
            if tp in self._seen:
                return self._seen[tp]
        except TypeError:
            pass
        schema = self._build(tp)
        with contextlib.suppress(TypeError):  # unhashable types are not remembered
            self._seen[tp] = schema
        return schema

    def _hoist(self, schema: dict[str, Any], name: str | None) -> dict[str, Any]:
        for key, sub in schema.pop("$defs", {}).items():
            self.components.setdefault(key, sub)
        if (name and schema.get("type") == "object") or (name and "properties" in schema):
            self.components.setdefault(name, schema)
            return {"$ref": REF + name}
        return schema

    def _build(self, tp: Any) -> dict[str, Any]:
        name = tp.__name__ if convert.is_class(tp) else None
        if models.is_struct(tp) or (models._has_struct(tp)):
            ms = sys.modules["msgspec"]
            (schema,), comps = ms.json.schema_components([tp], ref_template=REF + "{name}")
            for key, sub in comps.items():
                self.components.setdefault(key, sub)
            return dict(schema)
        pd = sys.modules.get("pydantic")
        if pd is None and not convert.is_class(tp):
            try:
                import pydantic as pd
            except ImportError:
                pd = None
        if pd is not None:
            try:
                schema = pd.TypeAdapter(tp).json_schema(ref_template=REF + "{model}")
                return self._hoist(schema, name)
            except Exception:
                pass
        return self._hoist(self._plain(tp), name)

    def _plain(self, tp: Any) -> dict[str, Any]:
        """Without pydantic: dataclasses, TypedDicts, containers and scalars by their annotations."""
        if (convert.is_class(tp) and dataclasses.is_dataclass(tp)) or typing.is_typeddict(tp):
            hints = typing.get_type_hints(tp)
            if typing.is_typeddict(tp):
                required = sorted(tp.__required_keys__)
            else:
                required = [
                    f.name
                    for f in dataclasses.fields(tp)
                    if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
                ]
            props = {
                n: {**self.for_type(h), "title": title(n)} if not models.is_model_type(h) else self.for_type(h)
                for n, h in hints.items()
            }
            out: dict[str, Any] = {"type": "object", "title": tp.__name__, "properties": props}
            if required:
                out["required"] = required
            return out
        inner, optional = convert.unwrap_optional(tp)
        if optional:
            return {"anyOf": [self.for_type(inner), {"type": "null"}]}
        item = convert.list_item(tp)
        if item is not None:
            return {"type": "array", "items": self.for_type(item)}
        if tp is dict or typing.get_origin(tp) is dict:
            args = typing.get_args(tp)
            return {"type": "object", "additionalProperties": self.for_type(args[1]) if len(args) == 2 else {}}
        scalar = convert.scalar_for(tp)
        return dict(scalar.json_schema) if scalar is not None else {}

    def model_parameters(self, p: ParamInfo) -> list[dict[str, Any]]:
        """A parameter model's fields, one parameter each (as FastAPI lists them)."""
        pm = p.param_model
        schema = pm.adapter.json_schema_of() if hasattr(pm.adapter, "json_schema_of") else None
        if schema is None:
            import pydantic

            schema = pydantic.TypeAdapter(pm.model).json_schema(ref_template=REF + "{model}")
        for key, sub in schema.pop("$defs", {}).items():
            self.components.setdefault(key, sub)
        props = schema.get("properties", {})
        required = set(schema.get("required", []))
        out = []
        for f in pm.fields:
            prop = dict(props.get(f.alias, {}))
            entry: dict[str, Any] = {
                "name": f.key if pm.source == "header" else f.alias,
                "in": pm.source,
                "required": f.alias in required and not pm.optional,
                "schema": prop,
            }
            if "description" in prop:
                entry["description"] = prop["description"]
            if prop.get("deprecated"):
                entry["deprecated"] = True
            out.append(entry)
        return out

    def for_param(self, p: ParamInfo) -> dict[str, Any]:
        if p.adapter is not None:
            schema = self.for_type(p.inner)
        else:
            base = dict(p.scalar.json_schema) if p.scalar else {}
            base.update(constraints(p))
            if p.is_list:
                schema = {"type": "array", "items": base}
                if p.marker.min_length is not None:
                    schema["minItems"] = p.marker.min_length
                if p.marker.max_length is not None:
                    schema["maxItems"] = p.marker.max_length
            else:
                schema = base
        if p.optional:
            schema = {"anyOf": [schema, {"type": "null"}]}
        schema = dict(schema)
        if "$ref" not in schema:
            schema["title"] = p.marker.title or title(p.key)
        if p.marker.description and p.source in ("body", "form") and "$ref" not in schema:
            schema["description"] = p.marker.description
        if not p.required and p.default is not Undefined and p.marker.default_factory is None:
            default = jsonable(p.default)
            if default is not None or p.default is None:
                schema["default"] = default
        if p.marker.examples:
            schema["examples"] = jsonable(p.marker.examples)
        return schema


def constraints(p: ParamInfo) -> dict[str, Any]:
    m = p.marker
    kind = p.scalar.kind if p.scalar else "other"
    out: dict[str, Any] = {}
    if kind == "number":
        for key, name in (
            ("gt", "exclusiveMinimum"),
            ("ge", "minimum"),
            ("lt", "exclusiveMaximum"),
            ("le", "maximum"),
            ("multiple_of", "multipleOf"),
        ):
            if getattr(m, key) is not None:
                out[name] = getattr(m, key)
    if kind == "str":
        if m.min_length is not None and not p.is_list:
            out["minLength"] = m.min_length
        if m.max_length is not None and not p.is_list:
            out["maxLength"] = m.max_length
        if m.pattern is not None:
            out["pattern"] = m.pattern
    out.update(m.json_schema_extra)
    return out


def flatten(dependant: Dependant, extra: list[Dependant]) -> list[ParamInfo]:
    seen: set[tuple[str, str]] = set()
    out = []
    for d in [*extra, dependant]:
        for p in d.all_params():
            key = (p.source, p.key)
            if key not in seen and p.marker.include_in_schema:
                seen.add(key)
                out.append(p)
    return out


def security_of(dependant: Dependant, extra: list[Dependant], builder: SchemaBuilder) -> list[dict[str, list[str]]]:
    """The security requirements of a route: each security scheme (``catzilla.security``)
    among its dependencies, with the scopes its ``Security`` chain asks for (FastAPI's order)."""
    from catzilla.security import SecurityBase

    wanted: dict[str, list[str]] = {}
    todo = [*reversed([(d, False) for d in (*extra, *[sub for _, sub in dependant.deps])])]
    while todo:
        dep, _ = todo.pop()
        scheme = dep.declared if dep.declared is not None else dep.call
        if isinstance(scheme, SecurityBase):
            builder.security_schemes[scheme.scheme_name] = jsonable(scheme.model)
            scopes = wanted.setdefault(scheme.scheme_name, [])
            scopes.extend(s for s in dep.scopes if s not in scopes)
        todo.extend((sub, False) for _, sub in reversed(dep.deps))
    return [{name: scopes} for name, scopes in wanted.items()]


def describe_route(
    route: Any, method: str, builder: SchemaBuilder, unique_id: Callable[[Any], str] | None = None
) -> dict[str, Any]:
    binding = route.binding
    params = flatten(binding.dependant, binding.extra)
    endpoint = route.endpoint
    op: dict[str, Any] = {}
    if route.tags:
        op["tags"] = [tag.value if isinstance(tag, enum.Enum) else tag for tag in route.tags]
    op["summary"] = route.summary or title(route.name)
    doc = route.description or inspect.getdoc(endpoint)
    if doc:
        op["description"] = doc
    op["operationId"] = route.operation_id or (
        unique_id(route) if unique_id is not None else operation_id(route.name, route.path, method)
    )
    if route.deprecated:
        op["deprecated"] = True
    security = security_of(binding.dependant, binding.extra, builder)
    if security:
        op["security"] = security
    parameters = []
    for p in params:
        if p.param_model is not None:
            parameters.extend(builder.model_parameters(p))
            continue
        if p.source in ("path", "query", "header", "cookie"):
            entry: dict[str, Any] = {
                "name": p.key,
                "in": p.source,
                "required": p.source == "path" or p.required,
                "schema": builder.for_param(p),
            }
            if p.marker.description:
                entry["description"] = p.marker.description
            if p.marker.deprecated:
                entry["deprecated"] = True
            parameters.append(entry)
    if parameters:
        op["parameters"] = parameters
    body_params = [p for p in params if p.source == "body"]
    form_params = [p for p in params if p.source == "form"]
    if body_params:
        embed = len(body_params) > 1 or any(getattr(p.marker, "embed", False) for p in body_params)
        if embed:
            name = f"Body_{op['operationId']}"
            builder.components[name] = {
                "properties": {p.key: builder.for_param(p) for p in body_params},
                "type": "object",
                "title": name,
                **(
                    {"required": [p.key for p in body_params if p.required]}
                    if any(p.required for p in body_params)
                    else {}
                ),
            }
            schema: dict[str, Any] = {"$ref": REF + name}
            required = any(p.required for p in body_params)
        else:
            schema = builder.for_param(body_params[0])
            required = body_params[0].required
        media = getattr(body_params[0].marker, "media_type", "application/json")
        op["requestBody"] = {"content": {media: {"schema": schema}}, "required": required}
    elif form_params:
        if len(form_params) == 1 and form_params[0].adapter is not None:
            schema = builder.for_type(form_params[0].inner)
        else:
            name = f"Body_{op['operationId']}"
            builder.components[name] = {
                "properties": {p.key: builder.for_param(p) for p in form_params},
                "type": "object",
                "title": name,
                **(
                    {"required": [p.key for p in form_params if p.required]}
                    if any(p.required for p in form_params)
                    else {}
                ),
            }
            schema = {"$ref": REF + name}
        # A file among the fields makes the form multipart (as FastAPI says).
        is_file = any(getattr(p.marker, "media_type", "") == "multipart/form-data" for p in form_params)
        media = "multipart/form-data" if is_file else "application/x-www-form-urlencoded"
        op["requestBody"] = {"content": {media: {"schema": schema}}, "required": any(p.required for p in form_params)}
    status = route.status_code or 200
    ok: dict[str, Any] = {"description": route.response_description}
    if status not in NO_BODY:
        media = "application/json"
        response_class = route.response_class
        if response_class is not None and getattr(response_class, "media_type", None):
            media = response_class.media_type
        rm = binding.response_model
        ok["content"] = {media: {"schema": builder.for_type(rm) if rm is not None else {}}}
    responses: dict[str, Any] = {str(status): ok}
    if params:
        responses["422"] = {
            "description": "Validation Error",
            "content": {"application/json": {"schema": {"$ref": REF + "HTTPValidationError"}}},
        }
        builder.components.setdefault("ValidationError", VALIDATION_ERROR)
        builder.components.setdefault("HTTPValidationError", HTTP_VALIDATION_ERROR)
    for code, extra in route.responses.items():
        extra = dict(extra)
        model = extra.pop("model", None)
        entry = dict(responses.get(str(code), {}))
        entry.update(extra)
        entry.setdefault(
            "description",
            HTTP_REASONS.get(int(code), "Additional Response") if str(code).isdigit() else "Additional Response",
        )
        if model is not None:
            entry["content"] = {"application/json": {"schema": builder.for_type(model)}}
        responses[str(code)] = entry
    op["responses"] = responses
    if getattr(route, "openapi_extra", None):
        deep_update(op, route.openapi_extra)
    return op


def deep_update(target: dict[str, Any], extra: dict[str, Any]) -> None:
    """``extra`` merged into ``target``: dicts key by key, lists appended, the rest replaced."""
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            deep_update(target[key], value)
        elif isinstance(value, list) and isinstance(target.get(key), list):
            target[key] = target[key] + value
        else:
            target[key] = value


SCHEMA_KEYS = frozenset({"type", "anyOf", "oneOf", "allOf", "$ref", "title", "items", "properties"})


def drop_null_defaults(node: Any) -> None:
    """FastAPI leaves ``"default": null`` out of its schemas (a field that may be
    omitted says so by not being required)."""
    if isinstance(node, dict):
        if "default" in node and node["default"] is None and SCHEMA_KEYS.intersection(node):
            del node["default"]
        for value in node.values():
            drop_null_defaults(value)
    elif isinstance(node, list):
        for value in node:
            drop_null_defaults(value)


def build_openapi(app: Any) -> dict[str, Any]:
    builder = SchemaBuilder()
    paths: dict[str, dict[str, Any]] = {}
    for route in app.routes:
        if not route.include_in_schema or route.binding is None:
            continue
        path = re.sub(r"{([A-Za-z_][A-Za-z0-9_]*):path}", r"{\1}", route.path)
        item = paths.setdefault(path, {})
        for method in sorted(route.methods):
            item[method.lower()] = describe_route(
                route, method, builder, getattr(app, "generate_unique_id_function", None)
            )
    info: dict[str, Any] = {"title": app.title}
    if getattr(app, "summary", None):
        info["summary"] = app.summary
    if app.description:
        info["description"] = app.description
    for key, attr in (("termsOfService", "terms_of_service"), ("contact", "contact"), ("license", "license_info")):
        if getattr(app, attr, None):
            info[key] = getattr(app, attr)
    info["version"] = app.version
    doc: dict[str, Any] = {"openapi": "3.1.0", "info": info}
    if app.servers:
        doc["servers"] = app.servers
    doc["paths"] = paths
    components: dict[str, Any] = {}
    if builder.components:
        components["schemas"] = dict(sorted(builder.components.items()))
    if builder.security_schemes:
        components["securitySchemes"] = builder.security_schemes
    if components:
        doc["components"] = components
    if app.openapi_tags:
        doc["tags"] = app.openapi_tags
    drop_null_defaults(doc.get("paths"))
    drop_null_defaults(doc.get("components"))
    return doc
