"""Rendering: the Jinja2 environment (autoescaping on), filters, and page answers.

Every user-supplied string reaches a page through a template with autoescaping on, so
``<script>`` shows as text; templates never mark user data ``|safe``. Template syntax in
data (``{{7*7}}``) is inert because data is a value passed to a template, never a template.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ParamSpec
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from prefect_lite.exceptions import ObjectNotFound, StoreUnavailable, UserError, ValidationError
from prefect_lite.server.ui.security import BadForm, Csrf, Forbidden, can, role_of

HERE = Path(__file__).parent
P = ParamSpec("P")
# Pages may be framed by nothing, run only our own scripts and load nothing from outside.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
STATE_TYPES = (
    "SCHEDULED",
    "PENDING",
    "RUNNING",
    "PAUSED",
    "CANCELLING",
    "COMPLETED",
    "FAILED",
    "CRASHED",
    "CANCELLED",
)


def when(value: float | datetime | None) -> str:
    """A UTC time as ``2026-01-02 03:04:05Z`` ('-' for none)."""
    if value is None:
        return "-"
    moment = value if isinstance(value, datetime) else datetime.fromtimestamp(value, UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 120:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def short(value: object) -> str:
    return str(value)[:8]


def state_class(value: object) -> str:
    text = str(value or "").upper()
    return f"st-{text.lower()}" if text in STATE_TYPES else "st-none"


def level_name(level: int) -> str:
    for threshold, name in ((50, "CRITICAL"), (40, "ERROR"), (30, "WARNING"), (20, "INFO")):
        if level >= threshold:
            return name
    return "DEBUG"


def query(base: Mapping[str, Any], **changes: Any) -> str:
    """``?a=1&b=2``: ``base`` with ``changes`` applied (``None`` or '' removes a key)."""
    merged = {**base, **changes}
    pairs = [(k, v) for k, v in merged.items() if v not in (None, "")]
    return "?" + urlencode(pairs, doseq=True) if pairs else ""


@functools.cache
def environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(["html"], default_for_string=True, default=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        when=when, duration=duration, short=short, state_class=state_class, level=level_name
    )
    env.globals.update(query=query, STATE_TYPES=STATE_TYPES)
    return env


class Renderer:
    """Renders a template with what every page needs (role, CSRF token, the path)."""

    def __init__(self, csrf: Csrf, auth_on: bool) -> None:
        self.csrf = csrf
        self.auth_on = auth_on

    def html(
        self, request: Request, template: str, status: int = 200, **context: Any
    ) -> HTMLResponse:
        page = environment().get_template(template)
        text = page.render(
            request_path=request.url.path,
            role=role_of(request),
            can_run=can(request, "run"),
            can_admin=can(request, "admin"),
            csrf_token=self.csrf.token(request),
            auth_on=self.auth_on,
            **context,
        )
        return HTMLResponse(text, status_code=status, headers=SECURITY_HEADERS)

    def error(self, request: Request, exc: Exception) -> HTMLResponse:
        status = _status(exc)
        return self.html(request, "error.html", status=status, status_code=status, message=str(exc))


def _status(exc: Exception) -> int:
    for kind, status in (
        (Forbidden, 403),
        (BadForm, 400),
        (ObjectNotFound, 404),
        (ValidationError, 422),
        (StoreUnavailable, 503),
        (UserError, 400),
    ):
        if isinstance(exc, kind):
            return status
    raise exc


def parse_uuid(value: str, what: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise ObjectNotFound(f"no {what} with id {value!r}") from None


def guarded(renderer: Renderer) -> Callable[[Callable[P, Any]], Callable[P, Any]]:
    """Turn user errors a page raises into an HTML error page with the matching status."""

    def wrap(fn: Callable[P, Any]) -> Callable[P, Any]:
        @functools.wraps(fn)
        def page(*args: P.args, **kwargs: P.kwargs) -> Any:
            try:
                return fn(*args, **kwargs)
            except UserError as exc:
                request = kwargs.get("request")
                if not isinstance(request, Request):
                    raise
                return renderer.error(request, exc)

        return page

    return wrap
