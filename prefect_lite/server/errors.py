"""Exceptions to HTTP answers: one status per exception type, body ``{"detail": "..."}``.

The HTTP client maps the same statuses back to the same exception types, so a remote
call raises what a local one would. Bad input is always a 4xx; a 5xx means a bug (500)
or an unreachable store (503).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import pydantic
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel

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

logger = logging.getLogger("prefect_lite.server")

# Most specific first: the first matching entry decides.
STATUS_FOR: tuple[tuple[type[BaseException], int], ...] = (
    (ObjectNotFound, 404),
    (ObjectAlreadyExists, 409),
    (ValidationError, 422),
    (PayloadTooLarge, 413),
    (PermissionDenied, 403),
    (AuthenticationError, 401),
    (TooManyRequests, 429),
    (StoreUnavailable, 503),
    (UserError, 400),
)


class ErrorBody(BaseModel):
    """What every error answer carries."""

    detail: str


def status_for(exc: BaseException) -> int:
    """The HTTP status of an exception raised by a handler (500 if unexpected)."""
    for exc_type, status in STATUS_FOR:
        if isinstance(exc, exc_type):
            return status
    return 500


def error_response(status: int, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


def describe_errors(errors: Sequence[Any], prefix: str = "") -> str:
    """pydantic/FastAPI error entries as one line: ``body.limit: Input should be ...``."""
    parts = []
    for error in list(errors)[:5]:
        loc = ".".join(str(p) for p in error.get("loc", ()) if p != "__root__")
        where = f"{prefix}{loc}" if loc else (prefix.rstrip(".") or "input")
        parts.append(f"{where}: {error.get('msg', 'invalid value')}")
    if len(errors) > 5:
        parts.append(f"and {len(errors) - 5} more")
    return "invalid request: " + "; ".join(parts) if parts else "invalid request"


async def _prefect_lite_error(request: Request, exc: Exception) -> JSONResponse:
    status = status_for(exc)
    if status >= 500 and status != 503:
        logger.error("unexpected error in %s %s", request.method, request.url.path, exc_info=exc)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    if status == 429:
        headers = {"Retry-After": "1"}
    return error_response(status, str(exc) or type(exc).__name__, headers)


async def _request_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return error_response(422, describe_errors(exc.errors()))


async def _pydantic_error(request: Request, exc: Exception) -> JSONResponse:
    """A record built from request data did not validate inside a handler: still bad input."""
    assert isinstance(exc, pydantic.ValidationError)
    return error_response(422, describe_errors(exc.errors(), prefix=f"{exc.title}."))


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    """A bug: still a JSON answer; the traceback goes to the server log (uvicorn logs it)."""
    return error_response(500, f"internal server error ({type(exc).__name__}); see the server log")


def install(app: FastAPI) -> None:
    """Register the handlers that turn exceptions into the statuses above."""
    app.add_exception_handler(Exception, _unexpected)
    app.add_exception_handler(PrefectLiteError, _prefect_lite_error)
    app.add_exception_handler(RequestValidationError, _request_validation_error)
    app.add_exception_handler(pydantic.ValidationError, _pydantic_error)
