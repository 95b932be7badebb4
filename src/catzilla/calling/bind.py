"""Turning a ``Dependant`` tree into one straight-line binder function, once per route.

The generated ``bind(raw, request=None)`` reads only the parts of the
``RawRequest`` the handler declared (path params, query string, headers,
body), converts each value inline with the constraints written out as
comparisons, collects every error, raises one 422 if any, then calls the
dependencies (each shared value once) and the handler. There is no loop
over parameter descriptions and no per-request dispatch on types: what a
request pays for is what its handler declares.

Set ``CATZILLA_DEBUG_BINDER=1`` to print the generated source.
"""

from __future__ import annotations

import copy
import functools
import json
import os
import re
import sys
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

from catzilla import _json, datastructures, models
from catzilla.background import BackgroundTasks
from catzilla.calling import convert, dependencies, render
from catzilla.calling.signature import Dependant, ParamInfo
from catzilla.exceptions import HTTPException, RequestValidationError
from catzilla.params import Undefined
from catzilla.request import HTTPConnection, Request, parse_cookies
from catzilla.security import SecurityScopes

_MISSING = object()
_EMPTY: dict[str, Any] = {}
IMMUTABLE = (str, int, float, bool, bytes, tuple, frozenset, type(None))


def _err(
    errors: list[dict[str, Any]] | None,
    kind: str,
    loc: tuple[Any, ...],
    msg: str,
    value: Any,
    ctx: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    if errors is None:
        errors = []
    item: dict[str, Any] = {"type": kind, "loc": list(loc), "msg": msg, "input": value}
    if ctx:
        item["ctx"] = ctx
    errors.append(item)
    return errors


def _merr(errors: list[dict[str, Any]] | None, new: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if errors is None:
        errors = []
    errors.extend(new)
    return errors


def _raise(errors: list[dict[str, Any]], raw: Any = None) -> None:
    seen: set[str] = set()
    unique = []
    for e in errors:
        key = repr((e["loc"], e["type"]))
        if key not in seen:
            seen.add(key)
            unique.append(e)
    raise RequestValidationError(unique, body=_request_body(raw))


def _request_body(raw: Any) -> Any:
    """The body as FastAPI's ``RequestValidationError.body`` has it: the parsed JSON,
    else the bytes; None without one."""
    try:
        body = raw.body if raw is not None else None
    except Exception:  # a streamed body, or a client that left
        return None
    if not body or not isinstance(body, (bytes, bytearray)):
        return None
    try:
        return json.loads(body)
    except ValueError:
        return bytes(body)


def _cookies(headers: list[tuple[str, str]]) -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in headers:
        if k == "cookie":
            out.update(parse_cookies(v))
    return out


def _form_values(form: dict[str, list[str]]) -> dict[str, Any]:
    return {k: v[0] if len(v) == 1 else v for k, v in form.items()}


def _model_errors(exc: BaseException, prefix: tuple[Any, ...]) -> list[dict[str, Any]]:
    assert isinstance(exc, models.ModelError)
    return [dict(e, loc=[*prefix, *e["loc"]]) for e in exc.errors]


def _json_error(body: bytes, prefix: tuple[Any, ...]) -> list[dict[str, Any]] | None:
    """FastAPI's error for a body that is not JSON (where Python's parser stops), or None."""
    try:
        json.loads(body)
    except json.JSONDecodeError as e:
        return [
            {"type": "json_invalid", "loc": [*prefix, e.pos], "msg": "JSON decode error", "input": {},
             "ctx": {"error": e.msg}}
        ]  # fmt: skip
    except ValueError:  # not UTF-8
        return None
    except Exception as exc:  # the parser itself failed: FastAPI's 400
        raise HTTPException(status_code=400, detail="There was an error parsing the body") from exc
    return None


def _body_errors(
    exc: BaseException,
    body: bytes,
    prefix: tuple[Any, ...],
    conv: Callable[[BaseException, tuple[Any, ...]], list[dict[str, Any]]],
    revalidate: Callable[[Any], Any] | None,
) -> list[dict[str, Any]]:
    """A body model's errors as FastAPI reports them: it parses the JSON first, then
    validates Python objects (pydantic's messages differ between the two modes, e.g.
    "a valid list" / "a valid array"). Only the error path pays for it."""
    broken = _json_error(body, prefix)
    if broken is not None:
        return broken
    if revalidate is not None:
        try:
            revalidate(json.loads(body))
        except models.ModelError as again:
            return [dict(e, loc=[*prefix, *e["loc"]]) for e in again.errors]
        except Exception:
            pass
    return conv(exc, prefix)


def _plural(n: Any, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


class Binder:
    """One route's binder, generated: ``build()`` returns ``bind(raw, request=None)``."""

    def __init__(
        self,
        root: Dependant,
        *,
        extra: list[Dependant] = (),  # type: ignore[assignment]
        finish: Callable[[Any], Any] | None = None,
        overrides: dict[Any, Any] | None = None,
        override_hook: Callable[..., Any] | None = None,
        run_background: Callable[[BackgroundTasks], None] | None = None,
        request_class: type[HTTPConnection] = Request,
        name: str = "bind",
        strict_content_type: bool = True,
        form_limits: dict[str, int] | None = None,
    ) -> None:
        if root.kind in ("generator", "asyncgen"):
            raise TypeError(f"handler {getattr(root.call, '__name__', root.call)!r} cannot be a generator")
        self.root = root
        self.extra = list(extra)
        self.finish = finish
        self.overrides = overrides
        self.override_hook = override_hook
        self.run_background = run_background
        self.name = name
        self.ns: dict[str, Any] = {
            "_err": _err,
            "_merr": _merr,
            "_raise": _raise,
            "_M": _MISSING,
            "_EMPTY": _EMPTY,
            "_unquote": unquote,
            "_pq": datastructures.parse_query,
            "_pqm": datastructures.parse_query_multi,
            "_hd": datastructures.header_dict,
            "_hdm": datastructures.header_multi,
            "_ck": _cookies,
            "_pform": functools.partial(datastructures.parse_body_form, limits=form_limits)
            if form_limits
            else datastructures.parse_body_form,
            "_isjson": datastructures.json_body_type_strict if strict_content_type else datastructures.json_body_type,
            "_formv": _form_values,
            "_loads": _json.loads,
            "_Request": request_class,
            "_Sub": render.SubResponse,
            "_merge": render.merge_sub_response,
            "_materialize": render.materialize,
            "_BG": BackgroundTasks,
            "_ModelError": models.ModelError,
            "_mconv": _model_errors,
            "_enter_sync": dependencies.enter_sync,
            "_enter_async": dependencies.enter_async,
            "_close_sync": dependencies.close_sync,
            "_unwind_sync": dependencies.unwind_sync,
            "_close_async": dependencies.close_async,
            "_unwind_async": dependencies.unwind_async,
            "_copy": copy.copy,
            "_jscalar": convert.from_json,
            "_ScalarError": convert.ScalarError,
            "_berr": _body_errors,
            "_jerr": _json_error,
        }
        self.consts = 0
        self.staged = False
        self.params: list[tuple[ParamInfo, str]] = []
        self.calls: list[tuple[Dependant, str, dict[str, str]]] = []
        self.cache: dict[Any, str] = {}
        self.specials: set[str] = set()
        self.own_params: dict[str, list[tuple[ParamInfo, str]]] = {}  # call var -> its own parameters
        self.sub_vars: dict[str, list[str]] = {}  # call var -> the vars of its dependencies

    # ---- planning ----------------------------------------------------------------------

    def const(self, value: Any, prefix: str = "_c") -> str:
        self.consts += 1
        name = f"{prefix}{self.consts}"
        self.ns[name] = value
        return name

    def plan(self, dep: Dependant, is_root: bool = False) -> str:
        key: Any = (dep.call, dep.scopes) if dep.use_cache and not is_root else id(dep)
        if key in self.cache:
            return self.cache[key]
        args: dict[str, str] = {}
        subs: list[str] = []
        for name, sub in dep.deps:
            args[name] = self.plan(sub)
            subs.append(args[name])
        own: list[tuple[ParamInfo, str]] = []
        for p in dep.params:
            var = f"p{len(self.params)}"
            self.params.append((p, var))
            own.append((p, var))
            args[p.name] = var
        for name, kind in dep.specials.items():
            self.specials.add(kind)
            if kind == "scopes":
                args[name] = self.const(SecurityScopes(list(dep.scopes)))
                continue
            args[name] = {"request": "request", "response": "sresp", "background": "bg"}[kind]
        var = "result" if is_root else f"d{len(self.calls)}"
        self.calls.append((dep, var, args))
        self.own_params[var] = own
        self.sub_vars[var] = subs
        self.cache[key] = var
        return var

    # ---- emitting ----------------------------------------------------------------------

    def build(self) -> Callable[..., Any]:
        for dep in self.extra:
            self.plan(dep)
        self.plan(self.root, is_root=True)
        deps = [c for c in self.calls if c[0] is not self.root]
        has_gens = any(d.kind in ("generator", "asyncgen") for d, _, _ in deps)
        async_deps = any(d.is_async for d, _, _ in deps)
        post = self.finish is not None or "response" in self.specials or "background" in self.specials
        needs_async_part = async_deps or (self.root.is_async and (post or has_gens))

        out: list[str] = [f"def {self.name}(raw, request=None):"]
        if deps and self.override_hook is not None:
            self.ns["_ov"] = self.overrides
            self.ns["_override"] = self.override_hook
            out.append("    if _ov: return _override(raw, request)")
        # With dependencies, FastAPI's order: each dependency's own parameters are
        # read, then it is called (unless they, or its dependencies, failed), and
        # the handler's own parameters last: a dependency's HTTPException wins over
        # the handler's 422.
        staged = bool(deps) and bool(self.params)
        if staged:
            self.staged = True
        elif self.params:
            out.append("    errors = None")
            out.extend(self.emit_extraction())
            out.append("    if errors is not None: _raise(errors, raw)")
        if "request" in self.specials:
            out.append("    if request is None: request = _Request(raw)")
        if "response" in self.specials:
            out.append("    sresp = _Sub()")
        if "background" in self.specials:
            out.append("    bg = _BG()")
        if needs_async_part:
            names = ["raw", "request"] + ([] if staged else [v for _, v in self.params])
            names += [n for n, k in (("sresp", "response"), ("bg", "background")) if k in self.specials]
            out.append(f"    return _run({', '.join(names)})")
            out.append("")
            out.append(f"async def _run({', '.join(names)}):")
            out.extend(self.emit_calls(deps, has_gens, post, in_async=True))
        else:
            out.extend(self.emit_calls(deps, has_gens, post, in_async=False))
        source = "\n".join(out) + "\n"
        if os.environ.get("CATZILLA_DEBUG_BINDER"):
            print(f"# binder for {self.root.call!r}\n{source}", file=sys.stderr)
        code = compile(source, f"<catzilla binder {getattr(self.root.call, '__qualname__', self.name)}>", "exec")
        exec(code, self.ns)
        fn = self.ns[self.name]
        fn.__catzilla_source__ = source
        return fn  # type: ignore[no-any-return]

    def call_expr(self, dep: Dependant, args: dict[str, str]) -> str:
        fn = self.const(dep.call, "_call")
        parts = []
        for name in dep.order:
            parts.append(f"{name}={args[name]}" if name in dep.keyword_only else args[name])
        return f"{fn}({', '.join(parts)})"

    def emit_calls(
        self, deps: list[tuple[Dependant, str, dict[str, str]]], has_gens: bool, post: bool, in_async: bool
    ) -> list[str]:
        ind = "        " if has_gens else "    "
        body: list[str] = []
        done: set[str] = set()
        if self.staged:
            body.append(f"{ind}errors = None")

        def stage(var: str) -> list[str]:
            return [ind[4:] + line for line in self.emit_params(self.own_params[var], done)]

        for dep, var, args in deps:
            expr = self.call_expr(dep, args)
            if dep.kind == "coroutine":
                call = f"{var} = await {expr}"
            elif dep.kind == "generator":
                call = f"{var} = _enter_sync({expr}, stack)"
            elif dep.kind == "asyncgen":
                call = f"{var} = await _enter_async({expr}, stack)"
            else:
                call = f"{var} = {expr}"
            if not self.staged:
                body.append(f"{ind}{call}")
                continue
            body.append(f"{ind}n = 0 if errors is None else len(errors)")
            body += stage(var)
            failed = " or ".join(
                ["(errors is not None and len(errors) > n)", *(f"f_{sub}" for sub in self.sub_vars[var])]
            )
            body += [f"{ind}f_{var} = {failed}", f"{ind}if not f_{var}:", f"{ind}    {call}"]
        if self.staged:
            body += stage("result")
            body.append(f"{ind}if errors is not None: _raise(errors, raw)")
        root_args = next(a for d, _, a in self.calls if d is self.root)
        expr = self.call_expr(self.root, root_args)
        if self.root.is_async and in_async:
            expr = f"await {expr}"
        if not post and not has_gens:
            body.append(f"{ind}return {expr}")
            return body
        body.append(f"{ind}result = {expr}")
        if self.finish is not None:
            self.ns["_finish"] = self.finish
            body.append(f"{ind}result = _finish(result)")
        if "response" in self.specials:
            body.append(f"{ind}result = _merge(result, sresp)")
        if has_gens:
            if self.finish is None and "response" not in self.specials:
                body.append(f"{ind}result = _materialize(result)")
            lines = ["    stack = []", "    try:", *body, "    except BaseException as exc:"]
            if in_async:
                lines += ["        raise await _unwind_async(stack, exc)", "    await _close_async(stack)"]
            else:
                lines += ["        raise _unwind_sync(stack, exc)", "    _close_sync(stack)"]
            body = lines
        if "background" in self.specials:
            self.ns["_run_bg"] = self.run_background
            body.append("    if bg.tasks: _run_bg(bg)")
        body.append("    return result")
        return body

    # ---- extraction ------------------------------------------------------------------

    def emit_extraction(self) -> list[str]:
        return self.emit_params(self.params, set())

    def emit_params(self, params: list[tuple[ParamInfo, str]], done: set[str]) -> list[str]:
        """Reading and converting ``params``; a source's mapping (the parsed query
        string, headers...) is made the first time (``done`` records which)."""
        out: list[str] = []
        by_source: dict[str, list[tuple[ParamInfo, str]]] = {}
        for p, var in params:
            by_source.setdefault(p.source, []).append((p, var))
        if "path" in by_source:
            if "path" not in done:
                out.append("    pp = raw.path_params")
            for p, var in by_source["path"]:
                out.append(f"    v = pp.get({p.key!r}, _M)")
                out.append("    if v is not _M and '%' in v: v = _unquote(v)")
                out.extend(self.emit_scalar(p, var, "    ", ("path", p.key)))
        if "query" in by_source:
            multi = any(p.is_list for p, _ in self.params if p.source == "query")
            if "query" not in done:
                parser = "_pqm" if multi else "_pq"
                out.append("    qs = raw.query_string")
                out.append(f"    query = {parser}(qs) if qs else _EMPTY")
            for p, var in by_source["query"]:
                out.extend(self.emit_lookup("query", p, var, multi))
        if "header" in by_source:
            multi = any(p.is_list for p, _ in self.params if p.source == "header")
            if "header" not in done:
                out.append(f"    hdrs = {'_hdm' if multi else '_hd'}(raw.headers)")
            for p, var in by_source["header"]:
                out.extend(self.emit_lookup("hdrs", p, var, multi))
        if "cookie" in by_source:
            if "cookie" not in done:
                out.append("    cookies = _ck(raw.headers)")
            for p, var in by_source["cookie"]:
                out.extend(self.emit_lookup("cookies", p, var, False))
        if "form" in by_source:
            if "form" not in done:
                out.append("    form = _pform(raw)")
            for p, var in by_source["form"]:
                if p.adapter is not None:
                    out.extend(self.emit_form_model(p, var))
                else:
                    out.extend(self.emit_lookup("form", p, var, True))
        if "body" in by_source and "body" not in done:
            # every body parameter at once: several are one JSON object
            out.extend(self.emit_body([(p, v) for p, v in self.params if p.source == "body"]))
        done.update(by_source)
        return out

    def emit_param_model(self, p: ParamInfo, var: str) -> list[str]:
        fn = self.const(p.param_model, "_pm")
        return [f"    {var}, errs = {fn}(raw)", "    if errs: errors = _merr(errors, errs)"]

    def emit_missing(self, p: ParamInfo, var: str, ind: str, loc: tuple[Any, ...]) -> list[str]:
        if p.marker.default_factory is not None:
            return [f"{ind}{var} = {self.const(p.marker.default_factory)}()"]
        if p.default is Undefined:
            return [f"{ind}errors = _err(errors, 'missing', {self.const(loc)}, 'Field required', None)"]
        if isinstance(p.default, IMMUTABLE):
            return [f"{ind}{var} = {self.const(p.default)}"]
        return [f"{ind}{var} = _copy({self.const(p.default)})"]

    def emit_lookup(self, mapping: str, p: ParamInfo, var: str, multi: bool) -> list[str]:
        if p.param_model is not None:
            return self.emit_param_model(p, var)
        source = "body" if p.source == "form" else p.source
        loc = (source, p.key)
        if p.is_list:
            out = [f"    vals = {mapping}.get({p.key!r})", "    if vals is None:"]
            out += self.emit_missing(p, var, "        ", loc)
            out += ["    else:", f"        {var} = []", "        for i, v in enumerate(vals):"]
            out += self.emit_scalar(p, "x", "            ", loc, index="i", append_to=var)
            out += self.emit_list_length(p, var, "        ", loc)
            return out
        if multi:
            out = [f"    v = {mapping}.get({p.key!r})", "    v = _M if v is None else v[-1]"]
        else:
            out = [f"    v = {mapping}.get({p.key!r}, _M)"]
        out.append("    if v is _M:")
        out += self.emit_missing(p, var, "        ", loc)
        out.append("    else:")
        out += self.emit_scalar(p, var, "        ", loc)
        return out

    def emit_scalar(
        self,
        p: ParamInfo,
        var: str,
        ind: str,
        loc: tuple[Any, ...],
        index: str | None = None,
        append_to: str | None = None,
    ) -> list[str]:
        """Convert ``v`` (a str) into ``var``, with the marker's constraints."""
        scalar = p.scalar
        assert scalar is not None
        loc_code = self.const(loc)
        if index is not None:
            loc_code = f"{loc_code} + ({index},)"
        out: list[str] = []
        checks = self.constraint_checks(p, var, loc_code)
        if scalar.convert is None:
            out.append(f"{ind}{var} = v")
            if checks:
                out += [f"{ind}{line}" for line in self.chain(checks)]
            if append_to:
                out.append(f"{ind}{append_to}.append({var})")
            return out
        conv = self.const(scalar.convert, "_conv")
        out += [
            f"{ind}try:",
            f"{ind}    {var} = {conv}(v)",
            f"{ind}except _ScalarError as e:",
            f"{ind}    errors = _err(errors, e.type, {loc_code}, e.msg, v, e.ctx)",
            f"{ind}except (ValueError, TypeError):",
        ]
        if scalar.error_type == "value_error":
            msg = scalar.error_msg or "Value error, invalid value"
            ctx = self.const(scalar.error_ctx) if scalar.error_ctx else "None"
            out.append(f"{ind}    errors = _err(errors, 'value_error', {loc_code}, {self.const(msg)}, v, {ctx})")
        else:
            ctx = self.const(scalar.error_ctx) if scalar.error_ctx else "None"
            out.append(
                f"{ind}    errors = _err(errors, {scalar.error_type!r}, {loc_code}, "
                f"{self.const(scalar.error_msg)}, v, {ctx})"
            )
        tail = list(self.chain(checks))
        if append_to:
            tail.append(f"{append_to}.append({var})")
        if tail:
            out.append(f"{ind}else:")
            out += [f"{ind}    {line}" for line in tail]
        return out

    @staticmethod
    def chain(checks: list[tuple[str, str]]) -> list[str]:
        out = []
        for i, (cond, action) in enumerate(checks):
            out.append(f"{'if' if i == 0 else 'elif'} {cond}: {action}")
        return out

    def constraint_checks(self, p: ParamInfo, var: str, loc: str) -> list[tuple[str, str]]:
        """(failing condition, error statement) for each constraint on a single value."""
        m = p.marker
        kind = p.scalar.kind if p.scalar else "other"
        checks: list[tuple[str, str]] = []

        def add(cond: str, etype: str, msg: str, ctx: dict[str, Any]) -> None:
            checks.append((cond, f"errors = _err(errors, {etype!r}, {loc}, {self.const(msg)}, v, {self.const(ctx)})"))

        if kind == "number":
            for key, op, etype, words in (
                ("gt", "<=", "greater_than", "greater than"),
                ("ge", "<", "greater_than_equal", "greater than or equal to"),
                ("lt", ">=", "less_than", "less than"),
                ("le", ">", "less_than_equal", "less than or equal to"),
            ):
                bound = getattr(m, key)
                if bound is not None:
                    add(f"{var} {op} {self.const(bound)}", etype, f"Input should be {words} {bound}", {key: bound})
            if m.multiple_of is not None:
                add(
                    f"{var} % {self.const(m.multiple_of)} != 0",
                    "multiple_of",
                    f"Input should be a multiple of {m.multiple_of}",
                    {"multiple_of": m.multiple_of},
                )
        if kind == "str" and not p.is_list:
            if m.min_length is not None:
                add(
                    f"len({var}) < {m.min_length}",
                    "string_too_short",
                    f"String should have at least {_plural(m.min_length, 'character')}",
                    {"min_length": m.min_length},
                )
            if m.max_length is not None:
                add(
                    f"len({var}) > {m.max_length}",
                    "string_too_long",
                    f"String should have at most {_plural(m.max_length, 'character')}",
                    {"max_length": m.max_length},
                )
        if m.pattern is not None and kind == "str":
            pat = self.const(re.compile(m.pattern))
            add(
                f"{pat}.search({var}) is None",
                "string_pattern_mismatch",
                f"String should match pattern '{m.pattern}'",
                {"pattern": m.pattern},
            )
        return checks

    def emit_list_length(self, p: ParamInfo, var: str, ind: str, loc: tuple[Any, ...]) -> list[str]:
        m = p.marker
        out = []
        loc_code = self.const(loc)
        if m.min_length is not None:
            n = m.min_length
            out.append(
                f"{ind}if len({var}) < {n}: errors = _err(errors, 'too_short', {loc_code}, "
                f"f'List should have at least {_plural(n, 'item')} after validation, not {{len({var})}}', "
                f"vals, {{'field_type': 'List', 'min_length': {n}, 'actual_length': len({var})}})"
            )
        if m.max_length is not None:
            n = m.max_length
            out.append(
                f"{ind}if len({var}) > {n}: errors = _err(errors, 'too_long', {loc_code}, "
                f"f'List should have at most {_plural(n, 'item')} after validation, not {{len({var})}}', "
                f"vals, {{'field_type': 'List', 'max_length': {n}, 'actual_length': len({var})}})"
            )
        return out

    def emit_form_model(self, p: ParamInfo, var: str) -> list[str]:
        assert p.adapter is not None
        vp = self.const(lambda obj, a=p.adapter: a.validate_python(obj, lax=True), "_vp")
        return [
            "    try:",
            f"        {var} = {vp}(_formv(form))",
            "    except _ModelError as e:",
            "        errors = _merr(errors, _mconv(e, ('body',)))",
        ]

    def emit_body(self, params: list[tuple[ParamInfo, str]]) -> list[str]:
        keys = {p.key for p, _ in params}
        embed = len(keys) > 1 or any(getattr(p.marker, "embed", False) for p, _ in params)
        # A body of another media type is not JSON (no CSRF through a simple
        # text/plain POST): refused as FastAPI does, never parsed.
        out = ["    body = raw.body", "    other = bool(body) and not _isjson(raw.headers)"]
        if not embed:
            for p, var in params:
                out.append("    if not body:")
                out += self.emit_missing(p, var, "        ", ("body",))
                out += [
                    "    elif other:",
                    "        errors = _err(errors, 'model_attributes_type', ('body',), "
                    "'Input should be a valid dictionary or object to extract fields from', "
                    "body.decode('utf-8', 'replace'))",
                ]
                out.append("    else:")
                if p.adapter is not None:
                    fn, exc_types, conv = p.adapter.json_entry()
                    again = p.adapter.validate_python if p.adapter.kind == "pydantic" else None
                    out += [
                        "        try:",
                        f"            {var} = {self.const(fn, '_vj')}(body)",
                        f"        except {self.const(exc_types, '_ex')} as e:",
                        f"            errors = _merr(errors, _berr(e, body, ('body',), {self.const(conv, '_econv')}, "
                        f"{self.const(again, '_vp')}))",
                    ]
                else:
                    out += [
                        "        try:",
                        "            v = _loads(body)",
                        "        except ValueError as e:",
                        "            errors = _merr(errors, _jerr(body, ('body',)) or "
                        "_err(None, 'json_invalid', ('body',), 'JSON decode error', {}, {'error': str(e)}))",
                        "        else:",
                    ]
                    out += self.emit_json_scalar(p, var, "            ", ("body",))
            return out
        out += [
            "    bj = _EMPTY",
            "    if body and not other:",
            "        try:",
            "            bj = _loads(body)",
            "        except ValueError as e:",
            "            errors = _merr(errors, _jerr(body, ('body',)) or "
            "_err(None, 'json_invalid', ('body',), 'JSON decode error', {}, {'error': str(e)}))",
            "            bj = None",
            "        else:",
            "            if not isinstance(bj, dict):",  # as FastAPI: nothing of it is found
            "                bj = _EMPTY",
            "    if bj is not None:",
        ]
        for p, var in params:
            loc = ("body", p.key)
            out.append(f"        v = bj.get({p.key!r}, _M)")
            out.append("        if v is _M:")
            out += self.emit_missing(p, var, "            ", loc)
            out.append("        else:")
            if p.adapter is not None:
                vp = self.const(p.adapter.validate_python, "_vp")
                out += [
                    "            try:",
                    f"                {var} = {vp}(v)",
                    "            except _ModelError as e:",
                    f"                errors = _merr(errors, _mconv(e, {self.const(loc)}))",
                ]
            else:
                out += self.emit_json_scalar(p, var, "            ", loc)
        return out

    def emit_json_scalar(self, p: ParamInfo, var: str, ind: str, loc: tuple[Any, ...]) -> list[str]:
        scalar = p.scalar
        assert scalar is not None
        etype, msg = (
            (scalar.error_type, scalar.error_msg)
            if scalar.error_type
            else ("string_type", "Input should be a valid string")
        )
        if p.optional:
            head = [f"{ind}if v is None:", f"{ind}    {var} = None", f"{ind}else:"]
            ind2 = ind + "    "
        else:
            head, ind2 = [], ind
        sc = self.const(scalar)
        out = [
            *head,
            f"{ind2}try:",
            f"{ind2}    {var} = _jscalar({sc}, v)",
            f"{ind2}except (ValueError, TypeError):",
            f"{ind2}    errors = _err(errors, {etype!r}, {self.const(loc)}, {self.const(msg)}, v)",
        ]
        checks = self.constraint_checks(p, var, self.const(loc))
        if checks:
            out.append(f"{ind2}else:")
            out += [f"{ind2}    {line}" for line in self.chain(checks)]
        return out
