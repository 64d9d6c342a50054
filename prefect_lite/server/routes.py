"""REST routes generated from the API registry: one route per registered operation.

For an ``Operation(name, method, path, fn, status_code, tag)`` the route lives at
``/api{path}``. Path parameters come from ``{name}`` in the path; the function's other
parameters form the JSON body (POST/PATCH/PUT: a pydantic model named ``<Name>Body`` made
from their type hints and defaults) or the query string (GET/DELETE). The return
annotation is the response model, so the OpenAPI document describes every operation
exactly. A body is checked twice: by FastAPI for the route, then as strict JSON (no
``false`` for an int, no number for a date), so whatever the schema rejects is a 422.
Top-level integers are limited to ``MAX_INT``. Each route first checks the caller's role
(set by the auth middleware) against the operation's declared role, before any input is
validated, then the roles its ``elevated`` arguments need; a refusal is a 403. Handlers
are sync and do blocking Redis I/O: the endpoints are plain ``def`` functions, which
FastAPI runs in its threadpool. Waits are the exception: an operation with an async
handler (``served_async``) gets an ``async def`` endpoint that awaits it on the event
loop, so a long poll holds no thread.
"""

from __future__ import annotations

import functools
import inspect
import operator
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any

import pydantic
from fastapi import APIRouter, Body, Depends, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, create_model

from prefect_lite.api.registry import ASYNC_HANDLERS, Operation
from prefect_lite.api.roles import check_arguments, describe_needed, missing_role
from prefect_lite.client.http import BODY_METHODS, PATH_PARAM, query_friendly
from prefect_lite.exceptions import PermissionDenied, ValidationError
from prefect_lite.server.errors import ErrorBody, describe_errors

API_PREFIX = "/api"
ROLE_PARAM = "caller_role__"  # the endpoint's role argument; never a handler parameter name
# Integers a JSON client represents exactly; also keeps sums like offset + limit inside
# Redis's 64-bit range, so a huge number is a 422, not a storage error.
MAX_INT = 2**53
_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": text}
    for status, text in (
        (400, "Bad input"),
        (401, "Missing or wrong API key"),
        (403, "The key's role does not allow this"),
        (404, "Not found"),
        (409, "Conflict"),
        (413, "Payload too large"),
        (422, "Invalid request"),
        (429, "Too many requests"),
        (503, "Store unavailable"),
    )
}


@dataclass(frozen=True)
class _JsonQuery:
    """A GET/DELETE parameter too structured for a query string: sent as JSON text."""

    name: str
    adapter: TypeAdapter[Any]


def build_router(operations: Mapping[str, Operation]) -> APIRouter:
    """A router with one route per operation, in registration order."""
    router = APIRouter(prefix=API_PREFIX)
    for op in operations.values():
        add_operation(router, op)
    return router


def add_operation(router: APIRouter, op: Operation) -> None:
    hints = typing.get_type_hints(op.fn)
    returns = hints.pop("return", None)
    returns = None if returns is type(None) else returns
    signature = inspect.signature(op.fn)
    path_names = PATH_PARAM.findall(op.path)
    unknown = [n for n in path_names if n not in signature.parameters]
    if unknown:
        raise RuntimeError(f"{op.name}: path {op.path!r} names unknown parameter(s) {unknown}")

    params: list[inspect.Parameter] = [
        inspect.Parameter(
            ROLE_PARAM,
            inspect.Parameter.KEYWORD_ONLY,
            annotation=Annotated[str, Depends(require_role(*op.roles))],
        )
    ]
    params += [
        inspect.Parameter(
            name,
            inspect.Parameter.KEYWORD_ONLY,
            annotation=Annotated[hints.get(name, str), Path()],
        )
        for name in path_names
    ]
    others = {name: param for name, param in signature.parameters.items() if name not in path_names}
    body_fields: dict[str, str] = {}
    json_queries: list[_JsonQuery] = []
    body: type[BaseModel] | None = None
    if op.method in BODY_METHODS and others:
        body, body_fields = body_model(op, hints, others)
        required = any(p.default is inspect.Parameter.empty for p in others.values())
        params.append(
            inspect.Parameter(
                "body",
                inspect.Parameter.KEYWORD_ONLY,
                annotation=Annotated[body if required else body | None, Body()],
                default=inspect.Parameter.empty if required else None,
            )
        )
        params.append(
            inspect.Parameter(
                "raw_body",
                inspect.Parameter.KEYWORD_ONLY,
                annotation=Annotated[bytes, Depends(_raw_body)],
            )
        )
    else:
        for name, param in others.items():  # the query string
            hint = hints.get(name, Any)
            default = ... if param.default is inspect.Parameter.empty else param.default
            if query_friendly(hint):
                annotation: Any = Annotated[bounded(hint), Query()]
            else:  # absent: the handler's own default applies
                json_queries.append(_JsonQuery(name, TypeAdapter(hint)))
                annotation = Annotated[str | None, Query(description="JSON-encoded value")]
                default = ... if default is ... else None
            params.append(
                inspect.Parameter(
                    name,
                    inspect.Parameter.KEYWORD_ONLY,
                    annotation=annotation,
                    default=inspect.Parameter.empty if default is ... else default,
                )
            )

    endpoint = _endpoint(op, returns, body, body_fields, json_queries)
    endpoint.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    doc = inspect.getdoc(op.fn) or ""
    router.add_api_route(
        op.path,
        endpoint,
        methods=[op.method],
        status_code=op.status_code,
        response_model=returns,
        name=op.name,
        operation_id=op.name,
        summary=op.name.replace("_", " ").capitalize(),
        description=_with_roles(doc, op),
        openapi_extra={"x-required-roles": list(op.roles)},
        tags=[op.tag] if op.tag else None,
        responses=dict(_ERRORS),
    )


def _with_roles(doc: str, op: Operation) -> str:
    """The handler's docstring plus the role it needs, for the OpenAPI document."""
    plural = "s" if len(op.roles) > 1 else ""
    lines = [doc, "", f"Needs the {describe_needed(op.roles)} role{plural}."]
    for argument, needed in op.elevated:
        lines.append(f"`{argument}` needs the {describe_needed(needed)} role too.")
    return "\n".join(lines).strip()


def body_model(
    op: Operation, hints: Mapping[str, Any], params: Mapping[str, inspect.Parameter]
) -> tuple[type[BaseModel], dict[str, str]]:
    """The request body of ``op``: one field per parameter; unknown fields are rejected.

    Returns the model and a map from field attribute to parameter name (a parameter whose
    name clashes with a ``BaseModel`` attribute, e.g. ``schema``, gets a suffixed attribute
    and keeps its name on the wire as an alias).
    """
    fields: dict[str, Any] = {}
    names: dict[str, str] = {}
    for name, param in params.items():
        default = ... if param.default is inspect.Parameter.empty else param.default
        attribute = f"{name}_" if _clashes(name) else name
        fields[attribute] = (bounded(hints.get(name, Any)), Field(default, alias=name))
        names[attribute] = name
    model_name = "".join(part.capitalize() for part in op.name.split("_")) + "Body"
    model = create_model(
        model_name,
        __config__=ConfigDict(extra="forbid", populate_by_name=True),
        **fields,
    )
    return model, names


def _endpoint(
    op: Operation,
    returns: Any,
    body_model: type[BaseModel] | None,
    body_fields: Mapping[str, str],
    json_queries: list[_JsonQuery],
) -> Callable[..., Any]:
    adapter = TypeAdapter(returns) if returns is not None else None
    status = op.status_code
    fn = op.fn
    elevated = dict(op.elevated)

    def arguments(values: dict[str, Any]) -> dict[str, Any]:
        role = values.pop(ROLE_PARAM)
        values.pop("body", None)
        raw = values.pop("raw_body", b"")
        if body_model is not None:
            body = _strict_body(body_model, raw)
            for attribute, name in body_fields.items():
                values[name] = getattr(body, attribute)
        for query in json_queries:
            raw = values.pop(query.name, None)
            if raw is not None:
                values[query.name] = _parse_json_query(query, raw)
        refused = check_arguments(role, elevated, values) if elevated else None
        if refused:
            raise PermissionDenied(refused)
        return values

    def answer(result: Any) -> Response:
        if adapter is None or status == 204:
            return Response(status_code=status)
        content = adapter.dump_json(result)
        return Response(content, status_code=status, media_type="application/json")

    def endpoint(**values: Any) -> Response:
        return answer(fn(**arguments(values)))

    async_fn = ASYNC_HANDLERS.get(op.name)

    async def async_endpoint(**values: Any) -> Response:
        assert async_fn is not None
        return answer(await async_fn(**arguments(values)))

    chosen: Callable[..., Any] = endpoint if async_fn is None else async_endpoint
    chosen.__name__ = op.name
    chosen.__doc__ = op.fn.__doc__
    return chosen


def require_role(*needed: str) -> Callable[[Request], str]:
    """A dependency: the caller's role (from the auth middleware), if it allows one of
    ``needed``; ``PermissionDenied`` (403) naming the missing role otherwise."""

    def check(request: Request) -> str:
        role = str(getattr(request.state, "role", ""))
        refused = missing_role(role, needed)
        if refused:
            raise PermissionDenied(refused)
        return role

    return check


async def _raw_body(request: Request) -> bytes:
    """The request body as sent (FastAPI caches it, so it is read once)."""
    return await request.body()


def _strict_body(model: type[BaseModel], raw: bytes) -> BaseModel:
    """Validate the body as strict JSON (no ``false`` for an int, no number for a date).

    FastAPI has already validated it leniently for the route; this second pass makes
    every body that does not match the published schema a 422, as a client would expect.
    """
    if not raw.strip():
        return model()  # an optional body left out: every field has a default
    try:
        return model.model_validate_json(raw, strict=True)
    except pydantic.ValidationError as exc:
        raise ValidationError(describe_errors(exc.errors(), prefix="body.")) from exc


def _parse_json_query(query: _JsonQuery, raw: str) -> Any:
    try:
        return query.adapter.validate_json(raw)
    except pydantic.ValidationError as exc:
        raise ValidationError(describe_errors(exc.errors(), prefix=f"query.{query.name}.")) from exc


def bounded(hint: Any) -> Any:
    """``hint`` with plain ``int`` (alone, optional, or in a list) limited to ±MAX_INT."""
    if hint is int:
        return Annotated[int, Field(ge=-MAX_INT, le=MAX_INT)]
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType) and int in args:
        return functools.reduce(operator.or_, [bounded(a) for a in args])
    if origin is list and args == (int,):
        return list[bounded(int)]  # type: ignore[misc]
    return hint


def _clashes(name: str) -> bool:
    return name.startswith(("model_", "_")) or hasattr(BaseModel, name)
