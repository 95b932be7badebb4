"""The OpenAPI 3.1 document, from the routes as analysed when they were added.

Model schemas come from their library (pydantic's ``TypeAdapter.json_schema``,
``msgspec.json.schema_components``); with neither installed, dataclasses and
TypedDicts get a schema from their annotations. The 422 response and its
``HTTPValidationError``/``ValidationError`` components are FastAPI's.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import enum
import http.client
import inspect
import re
import sys
import typing
from collections.abc import Callable
from typing import Any

from catzilla import models, streams
from catzilla.calling import convert
from catzilla.calling.render import NO_BODY
from catzilla.calling.signature import Dependant, ParamInfo, split_annotated
from catzilla.params import Undefined
from catzilla.response import JSONResponse

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
STATUS_RANGES = {
    "1XX": "Information",
    "2XX": "Success",
    "3XX": "Redirection",
    "4XX": "Client Error",
    "5XX": "Server Error",
    "DEFAULT": "Default Response",
}


def class_status(response_class: Any) -> int:
    """The status a response class answers with by default (RedirectResponse: 307)."""
    if response_class is not None:
        with contextlib.suppress(TypeError, ValueError, KeyError):
            default = inspect.signature(response_class.__init__).parameters["status_code"].default
            if isinstance(default, int):
                return default
    return 200


def status_text(code: str) -> str:
    """An additional response's default description: the status phrase ("Not Found")."""
    if code.upper() in STATUS_RANGES:
        return STATUS_RANGES[code.upper()]
    if code.isdigit() and int(code) in http.client.responses:
        return http.client.responses[int(code)]
    return "Additional Response"


def title(name: str) -> str:
    return name.replace("_", " ").title()


PARAM_ORDER = {"path": 0, "query": 1, "header": 2, "cookie": 3}


def operation_id(name: str, path: str, method: str) -> str:
    path = re.sub(r"{([^{}:]+):[^{}]*}", r"{\1}", path)  # "{p:path}" is "{p}" in the document
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
        # a class of the app's is a component; a builtin (``dict``) is written in place
        name = tp.__name__ if convert.is_class(tp) and tp.__module__ != "builtins" else None
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
            # no annotation (or a bare ``list``): any value, as pydantic describes it
            declared = split_annotated(p.annotation)[0]
            untyped = declared is inspect.Parameter.empty or (p.is_list and not typing.get_args(declared))
            base = dict(p.scalar.json_schema) if p.scalar and not untyped else {}
            base.update(constraints(p))
            if isinstance(p.inner, type) and issubclass(p.inner, enum.Enum) and "enum" in base:
                # an Enum is a component of its own, as pydantic describes it
                name = p.inner.__name__
                self.components.setdefault(name, {**base, "title": name})
                base = {"$ref": REF + name}
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
        if p.marker.description and "$ref" not in schema:
            schema["description"] = p.marker.description
        if p.marker.deprecated and "$ref" not in schema:
            schema["deprecated"] = True
        if not p.required and p.default is not Undefined and p.marker.default_factory is None:
            default = jsonable(p.default)
            if default is not None or p.default is None:
                schema["default"] = default
        if p.marker.examples:
            schema["examples"] = jsonable(p.marker.examples)
        if p.adapter is None:  # the field's own, beside anyOf for an optional one (as pydantic places it)
            schema.update(p.marker.json_schema_extra)
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
    return out


def flatten(dependant: Dependant, extra: list[Dependant]) -> list[ParamInfo]:
    seen: set[tuple[str, str]] = set()
    out = []
    for d in [*extra, dependant]:
        for p in d.all_params():
            key = (p.source, p.key)
            if key not in seen:
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
    every = flatten(binding.dependant, binding.extra)  # hidden ones too: they can fail (422)
    params = [p for p in every if p.marker.include_in_schema]
    endpoint = route.endpoint
    op: dict[str, Any] = {}
    if route.tags:
        op["tags"] = [tag.value if isinstance(tag, enum.Enum) else tag for tag in route.tags]
    op["summary"] = route.summary or title(route.name)
    doc = route.description or inspect.getdoc(endpoint)
    if doc:
        doc = doc.split("\f")[0].strip()  # a form feed ends what the document shows (FastAPI's)
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
            if p.marker.openapi_examples:
                entry["examples"] = jsonable(p.marker.openapi_examples)
            parameters.append(entry)
    if parameters:
        # FastAPI's order: path, query, header, cookie (each as declared)
        op["parameters"] = sorted(parameters, key=lambda e: PARAM_ORDER.get(e["in"], 4))
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
        media_entry: dict[str, Any] = {"schema": schema}
        if not embed and body_params[0].marker.openapi_examples:
            media_entry["examples"] = jsonable(body_params[0].marker.openapi_examples)
        op["requestBody"] = {"content": {media: media_entry}, **({"required": True} if required else {})}
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
        required = any(p.required for p in form_params)
        op["requestBody"] = {"content": {media: {"schema": schema}}, **({"required": True} if required else {})}
    status = route.status_code or class_status(route.response_class)
    ok: dict[str, Any] = {"description": route.response_description}
    if status not in NO_BODY:
        content = response_content(route.response_class, binding, builder, op["operationId"])
        if content is not None:
            ok["content"] = content
    responses: dict[str, Any] = {str(status): ok}
    # responses=: merged into the route's own, FastAPI's way (a model's schema under
    # the route's media type, the status phrase as the default description)
    media = getattr(route.response_class, "media_type", None) or "application/json"
    for code, extra in route.responses.items():
        extra = copy.deepcopy(dict(extra))
        model = extra.pop("model", None)
        key = str(code).upper()
        key = "default" if key == "DEFAULT" else key
        entry = responses.setdefault(key, {})
        if model is not None:
            schema = extra.setdefault("content", {}).setdefault(media, {}).setdefault("schema", {})
            deep_update(schema, builder.for_type(model))
        description = extra.get("description") or entry.get("description") or status_text(key)
        deep_update(entry, extra)
        entry["description"] = description
    if every and not any(k in responses for k in ("422", "4XX", "default")):
        responses["422"] = {
            "description": "Validation Error",
            "content": {"application/json": {"schema": {"$ref": REF + "HTTPValidationError"}}},
        }
        builder.components.setdefault("ValidationError", VALIDATION_ERROR)
        builder.components.setdefault("HTTPValidationError", HTTP_VALIDATION_ERROR)
    op["responses"] = responses
    if getattr(route, "openapi_extra", None):
        deep_update(op, route.openapi_extra)
    return op


# FastAPI's schema of one server-sent event (OpenAPI 3.2's, for text/event-stream)
SSE_EVENT: dict[str, Any] = {
    "type": "object",
    "properties": {
        "data": {"type": "string"},
        "event": {"type": "string"},
        "id": {"type": "string"},
        "retry": {"type": "integer", "minimum": 0},
    },
}


def response_content(
    response_class: Any, binding: Any, builder: SchemaBuilder, unique_id: str
) -> dict[str, Any] | None:
    """The success response's ``content``, by FastAPI's rules: the route's media type
    (JSON by default) with the response model's schema (titled after the operation
    when it is no reference: ``"Response Read Items Items  Get"``), ``{"type":
    "string"}`` for a class that is not JSON, none for a class without a media type;
    a handler that yields gives its items' schema (``itemSchema``) under JSON Lines
    or event-stream."""
    stream = getattr(binding, "stream", None)
    if stream is not None and stream.media_type is not None:
        item = stream.item_type
        if stream.media_type == streams.JSONL:
            return {streams.JSONL: {"itemSchema": builder.for_type(item) if item is not None else {}}}
        event = copy.deepcopy(SSE_EVENT)
        if item is not None:
            event["properties"]["data"] = {
                "type": "string",
                "contentMediaType": "application/json",
                "contentSchema": builder.for_type(item),
            }
            event["required"] = ["data"]
        return {streams.EVENT_STREAM: {"itemSchema": event}}
    media = "application/json"
    if response_class is not None:
        media = getattr(response_class, "media_type", None) or ""
        if not media:
            return None
        if not issubclass(response_class, JSONResponse):
            return {media: {"schema": {"type": "string"}}}
    rm = binding.response_model
    if rm is None:
        return {media: {"schema": {}}}
    schema = builder.for_type(rm)
    if "$ref" not in schema:
        schema = {**schema, "title": f"Response_{unique_id}".title().replace("_", " ")}
    return {media: {"schema": schema}}


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
    unique_id = getattr(app, "generate_unique_id_function", None)
    for route in app.routes:
        if not route.include_in_schema or route.binding is None:
            continue
        path = re.sub(r"{([A-Za-z_][A-Za-z0-9_]*):path}", r"{\1}", route.path)
        item = paths.setdefault(path, {})
        for method in sorted(route.methods):
            item[method.lower()] = describe_route(route, method, builder, unique_id)
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
    webhooks: dict[str, dict[str, Any]] = {}
    hooks: Any = getattr(app, "webhooks", None)  # app.webhooks, or get_openapi's list of routes
    for route in hooks.routes if hasattr(hooks, "routes") else list(hooks or ()):
        if route.include_in_schema and route.binding is not None:
            item = webhooks.setdefault(route.path, {})
            for method in sorted(route.methods):
                item[method.lower()] = describe_route(route, method, builder, unique_id)
    if webhooks:
        doc["webhooks"] = webhooks
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
