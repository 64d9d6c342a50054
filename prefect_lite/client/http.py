"""HTTP transport: the same operations as the local transport, over httpx.

Requests are built from the API registry entry: path parameters are substituted (URL
quoted), the others go as the JSON body (POST/PATCH/PUT) or the query string (GET/DELETE;
values too structured for a query string travel as JSON text, see ``query_friendly``).
Answers are parsed into the handler's declared return type, so a remote call returns
exactly what a local one does. Error statuses become the typed exceptions the handlers
raise (401: ``AuthenticationError``; 403, a key whose role does not allow the call:
``PermissionDenied``); an unreachable server is one ``StoreUnavailable`` naming the API
URL. The key sent is ``PREFECT_LITE_API_KEY``, as ``Authorization: Bearer <key>``.
"""

from __future__ import annotations

import datetime
import enum
import inspect
import re
import time
import types
import typing
import uuid
from dataclasses import dataclass
from functools import cache
from typing import Any
from urllib.parse import quote

import httpx
import pydantic_core
from pydantic import SecretStr, TypeAdapter

from prefect_lite.api.registry import Operation, all_operations
from prefect_lite.exceptions import (
    AuthenticationError,
    ObjectAlreadyExists,
    ObjectNotFound,
    PayloadTooLarge,
    PermissionDenied,
    PrefectLiteError,
    StoreUnavailable,
    TooManyRequests,
    UserError,
    ValidationError,
)

PATH_PARAM = re.compile(r"{(\w+)}")
BODY_METHODS = frozenset({"POST", "PATCH", "PUT"})
RETRIES_ON_429 = 5
_SCALARS = (str, int, float, bool, uuid.UUID, datetime.datetime, datetime.date, enum.Enum)
_JSON = {"content-type": "application/json"}


def query_friendly(hint: Any) -> bool:
    """True for types a query string carries as-is: scalars, lists of scalars, optionals.

    The server declares other GET/DELETE parameters as JSON-encoded text; both sides use
    this one rule.
    """
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return len(args) == 1 and query_friendly(args[0])
    if origin in (list, set, tuple):
        return len(args) == 1 and _is_scalar(args[0])
    return _is_scalar(hint)


def _is_scalar(hint: Any) -> bool:
    if typing.get_origin(hint) is typing.Literal:
        return True
    return isinstance(hint, type) and issubclass(hint, _SCALARS)


@dataclass(frozen=True)
class _Shape:
    """How one operation's arguments travel and how its answer is read."""

    path_names: tuple[str, ...]
    json_query: frozenset[str]
    none_default: frozenset[str]
    returns: TypeAdapter[Any] | None


@cache
def _shape(op: Operation) -> _Shape:
    hints = typing.get_type_hints(op.fn)
    ret = hints.pop("return", None)
    params = inspect.signature(op.fn).parameters
    return _Shape(
        path_names=tuple(PATH_PARAM.findall(op.path)),
        json_query=frozenset(n for n in params if not query_friendly(hints.get(n, Any))),
        none_default=frozenset(n for n, p in params.items() if p.default is None),
        returns=None if ret in (None, type(None)) else TypeAdapter(ret),
    )


class HTTPTransport:
    """Calls a prefect-lite server's REST API (``PREFECT_LITE_API_URL``, ending in /api)."""

    is_local = False

    def __init__(
        self,
        api_url: str,
        api_key: SecretStr | str | None = None,
        timeout: float = 30.0,
        http_client: httpx.Client | None = None,
    ) -> None:
        headers = {}
        key = api_key.get_secret_value() if isinstance(api_key, SecretStr) else api_key
        if key:
            headers["Authorization"] = f"Bearer {key}"
        self.api_url = api_url.rstrip("/")
        self._http = http_client or httpx.Client(
            base_url=self.api_url, headers=headers, timeout=timeout
        )
        self._operations = all_operations()

    def close(self) -> None:
        self._http.close()

    def call(self, operation: str, arguments: dict[str, Any]) -> Any:
        op = self._operations[operation]
        shape = _shape(op)
        args = dict(arguments)
        path = op.path
        for name in shape.path_names:
            path = path.replace(f"{{{name}}}", quote(str(args.pop(name)), safe=""))
        # None where None is the default: the same call without it, and a shorter request.
        args = {k: v for k, v in args.items() if not (v is None and k in shape.none_default)}
        try:
            if op.method in BODY_METHODS:
                request = self._http.build_request(
                    op.method, path, content=_to_json(operation, args), headers=_JSON
                )
            else:
                params = {k: _query_value(k in shape.json_query, v) for k, v in args.items()}
                request = self._http.build_request(op.method, path, params=params)
            response = self._send(request)
        except httpx.TimeoutException as exc:
            raise StoreUnavailable(
                f"the API at {self.api_url} did not answer in time ({type(exc).__name__})"
            ) from exc
        except httpx.TransportError as exc:
            raise StoreUnavailable(
                f"cannot reach the API at {self.api_url}: {exc or type(exc).__name__}. Is "
                "`prefect-lite server start` running there? (PREFECT_LITE_API_URL)"
            ) from exc
        if response.status_code >= 400:
            raise _error_for(response, self.api_url)
        if shape.returns is None or response.status_code == 204 or not response.content:
            return None
        return shape.returns.validate_json(response.content)

    def _send(self, request: httpx.Request) -> httpx.Response:
        """Send, waiting out a few "too many requests" answers (the server's cap on waits
        in progress) as long as the server's ``Retry-After`` says."""
        for _ in range(RETRIES_ON_429):
            response = self._http.send(request)
            if response.status_code != 429:
                return response
            response.close()
            time.sleep(_retry_after(response))
        return self._http.send(request)


def _retry_after(response: httpx.Response) -> float:
    try:
        return min(max(float(response.headers.get("retry-after", "1")), 0.1), 5.0)
    except ValueError:
        return 1.0


def _to_json(operation: str, payload: dict[str, Any]) -> bytes:
    try:
        return pydantic_core.to_json(payload)
    except pydantic_core.PydanticSerializationError as exc:
        raise ValidationError(f"{operation}: arguments are not JSON-serializable: {exc}") from exc


def _query_value(as_json: bool, value: Any) -> Any:
    if as_json:
        return pydantic_core.to_json(value).decode()
    jsonable = pydantic_core.to_jsonable_python(value)
    if isinstance(jsonable, bool):
        return "true" if jsonable else "false"
    return jsonable


def _error_for(response: httpx.Response, api_url: str) -> Exception:
    try:
        body = response.json()
        detail = body.get("detail", response.text) if isinstance(body, dict) else response.text
    except ValueError:
        detail = response.text
    if not isinstance(detail, str):
        detail = str(detail)
    status = response.status_code
    if status == 404 and detail == "Not Found":
        return ObjectNotFound(
            f"no such API route: {response.request.method} {response.request.url}. Is "
            f"PREFECT_LITE_API_URL ({api_url}) the server's /api URL?"
        )
    if status in (405, 501) or (status == 404 and not detail):
        return UserError(f"the API at {api_url} does not support {response.request.url.path}")
    if status == 404:
        return ObjectNotFound(detail)
    if status == 409:
        return ObjectAlreadyExists(detail)
    if status == 403:
        return PermissionDenied(
            f"the API at {api_url} refused: {detail or 'not allowed'} (PREFECT_LITE_API_KEY)"
        )
    if status == 401:
        return AuthenticationError(detail or "not authorized: check PREFECT_LITE_API_KEY")
    if status == 413:
        return PayloadTooLarge(detail)
    if status == 422:
        return ValidationError(detail)
    if status == 429:
        return TooManyRequests(detail)
    if status == 503:
        return StoreUnavailable(detail)
    if status < 500:
        return UserError(detail)
    return PrefectLiteError(f"server error {status} from {api_url}: {detail}")
