"""Query, header and cookie parameter models (FastAPI's): a pydantic model read
from the query string, the headers or the cookies, one field per parameter::

    class FilterParams(BaseModel):
        limit: int = Field(100, gt=0, le=100)
        tags: list[str] = []

    def items(filters: Annotated[FilterParams, Query()]): ...

Each field is looked up by its alias (for headers, ``_`` becomes ``-`` unless
``Header(convert_underscores=False)``); list fields take every value of a
repeated key. The other keys go to the model too, so its ``extra`` policy
applies (``"forbid"`` refuses unknown parameters). An optional model
(``Model | None = None``) is None when none of its fields was sent.
Validation is pydantic's, errors located under ``("query", ...)``,
``("header", ...)`` or ``("cookie", ...)``, as FastAPI reports them.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass
from typing import Any

from catzilla import datastructures, models
from catzilla.params import Undefined
from catzilla.request import parse_cookies

SEQUENCES = (list, set, tuple, frozenset)


@dataclass(frozen=True)
class ModelField:
    name: str
    alias: str  # what the model validates
    key: str  # what the request is searched for (lowercased for headers)
    sequence: bool


@dataclass(frozen=True)
class ParamModel:
    source: str  # "query", "header", "cookie"
    model: Any
    adapter: models.Adapter
    fields: tuple[ModelField, ...]
    optional: bool  # Model | None: None when nothing of it was sent
    default: Any
    extra: str | None  # the model's extra policy

    def read(self, raw: Any) -> dict[str, Any]:
        """The request's values for this source, each key to a list of values."""
        if self.source == "query":
            qs = raw.query_string
            return datastructures.parse_query_multi(qs) if qs else {}
        if self.source == "header":
            return datastructures.header_multi(raw.headers)
        out: dict[str, list[str]] = {}
        for k, v in raw.headers:
            if k == "cookie":
                for name, value in parse_cookies(v).items():
                    out[name] = [value]
        return out

    def __call__(self, raw: Any) -> tuple[Any, list[dict[str, Any]] | None]:
        received = self.read(raw)
        values: dict[str, Any] = {}
        processed: set[str] = set()
        own_present = False
        for f in self.fields:
            got = received.get(f.key)
            processed.add(f.key)
            if self.source == "header":
                processed.add(f.alias.lower())  # an unconverted name is no extra header
            if got:
                own_present = True
                values[f.alias] = list(got) if f.sequence else got[0 if self.source == "header" else -1]
        for key, got in received.items():
            if key not in processed:
                values[key] = got[0] if len(got) == 1 else list(got)
        if self.optional and not (own_present or (self.extra in ("allow", "forbid") and values)):
            return (None if self.default is Undefined else self.default), None
        try:
            return self.adapter.validate_python(values, lax=True), None
        except models.ModelError as exc:
            errors = [dict(e, loc=[self.source, *e["loc"]]) for e in exc.errors]
            if self.source == "header":  # located by the header's name, as FastAPI does
                names = {f.alias: f.key for f in self.fields}
                for e in errors:
                    if len(e["loc"]) > 1 and e["loc"][1] in names:
                        e["loc"][1] = names[e["loc"][1]]
            return None, errors


def _is_sequence(annotation: Any) -> bool:
    from catzilla.calling.convert import unwrap_optional

    inner, _ = unwrap_optional(annotation)
    return inner in SEQUENCES or typing.get_origin(inner) in SEQUENCES


def param_model(source: str, model: Any, optional: bool, default: Any, convert_underscores: bool) -> ParamModel:
    fields = []
    for name, info in model.model_fields.items():
        alias = info.alias or name
        key = alias
        if source == "header":
            key = (alias.replace("_", "-") if convert_underscores else alias).lower()
        fields.append(ModelField(name, alias, key, _is_sequence(info.annotation)))
    return ParamModel(
        source=source,
        model=model,
        adapter=models.adapter_for(model),
        fields=tuple(fields),
        optional=optional,
        default=default,
        extra=model.model_config.get("extra"),
    )
