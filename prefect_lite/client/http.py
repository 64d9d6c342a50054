"""HTTP transport: the same operations as the local transport, over httpx.

Requests are built from the API registry entry (method, path, parameters) and answers
are parsed into the handler's declared return type, so a remote call returns exactly
what a local one does. Error statuses become the typed exceptions the handlers raise.
"""

from __future__ import annotations

import inspect
import re
import typing
from functools import cache
from typing import Any

import httpx
from pydantic import BaseModel, SecretStr, TypeAdapter

from prefect_lite.api.registry import Operation, all_operations
from prefect_lite.exceptions import (
    AuthenticationError,
    ObjectAlreadyExists,
    ObjectNotFound,
    PayloadTooLarge,
    PrefectLiteError,
    StoreUnavailable,
    UserError,
    ValidationError,
)

_PATH_PARAM = re.compile(r"{(\w+)}")


def _jsonable(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return TypeAdapter(type(value)).dump_python(value, mode="json") if value is not None else None


@cache
def _return_adapter(op: Operation) -> TypeAdapter[Any] | None:
    hints = typing.get_type_hints(op.fn)
    ret = hints.get("return", inspect.Signature.empty)
    if ret in (None, type(None), inspect.Signature.empty):
        return None
    return TypeAdapter(ret)


class HTTPTransport:
    """Calls a prefect-lite server's REST API (``PREFECT_LITE_API_URL``)."""

    is_local = False

    def __init__(
        self, api_url: str, api_key: SecretStr | str | None = None, timeout: float = 30.0
    ) -> None:
        headers = {}
        key = api_key.get_secret_value() if isinstance(api_key, SecretStr) else api_key
        if key:
            headers["Authorization"] = f"Bearer {key}"
        self.api_url = api_url.rstrip("/")
        self._http = httpx.Client(base_url=self.api_url, headers=headers, timeout=timeout)
        self._operations = all_operations()

    def close(self) -> None:
        self._http.close()

    def call(self, operation: str, arguments: dict[str, Any]) -> Any:
        op = self._operations[operation]
        args = {k: v for k, v in arguments.items()}
        path = _PATH_PARAM.sub(lambda m: str(args.pop(m.group(1))), op.path)
        payload = {k: _jsonable(v) for k, v in args.items()}
        try:
            if op.method in ("GET", "DELETE"):
                params = {k: v for k, v in payload.items() if v is not None}
                response = self._http.request(op.method, path, params=params)
            else:
                response = self._http.request(op.method, path, json=payload)
        except httpx.TransportError as exc:
            raise StoreUnavailable(f"cannot reach the API at {self.api_url}: {exc}") from exc
        if response.status_code >= 400:
            raise _error_for(response)
        adapter = _return_adapter(op)
        if adapter is None or response.status_code == 204 or not response.content:
            return None
        return adapter.validate_python(response.json())


def _error_for(response: httpx.Response) -> Exception:
    try:
        detail = response.json().get("detail", response.text)
    except ValueError:
        detail = response.text
    if not isinstance(detail, str):
        detail = str(detail)
    status = response.status_code
    if status == 404:
        return ObjectNotFound(detail)
    if status == 409:
        return ObjectAlreadyExists(detail)
    if status in (401, 403):
        return AuthenticationError(detail or "not authorized: check PREFECT_LITE_API_KEY")
    if status == 413:
        return PayloadTooLarge(detail)
    if status == 422:
        return ValidationError(detail)
    if status < 500:
        return UserError(detail)
    return PrefectLiteError(f"server error {status}: {detail}")
