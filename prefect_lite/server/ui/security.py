"""The UI's side of auth: the caller's role, CSRF tokens, and reading a posted form.

The auth middleware (``prefect_lite.server.auth``) authenticates the request, from the
``Authorization`` header or the ``prefect_lite_key`` cookie the login page sets, and puts
the caller's role in ``request.state.role``; with no keys configured every caller is
``admin``. Pages use the role to decide which buttons to show, and every action checks it
again here (``require``) before it changes anything.

Every form carries a CSRF token: an HMAC, under a secret made when the app starts, of the
caller's session (the login cookie, or ``anonymous`` with auth off). A token is bound to
its session, so one taken from another session (or forged) is refused, and a cross-site
form cannot read a valid one. After a server restart old pages' tokens no longer match;
reloading the page fixes that.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Annotated
from urllib.parse import parse_qs

from fastapi import Depends, Request

from prefect_lite.exceptions import UserError
from prefect_lite.server.auth import COOKIE_NAME as COOKIE
from prefect_lite.server.auth import allows

CSRF_FIELD = "csrf_token"
MAX_FORM_BYTES = 256 * 1024


class Forbidden(UserError):
    """The caller's role does not allow this action (HTTP 403)."""


class BadForm(UserError):
    """A form without a valid CSRF token, or too large (HTTP 400)."""


def role_of(request: Request) -> str:
    """The caller's role ('' for an anonymous caller of an open page such as /login)."""
    return str(getattr(request.state, "role", "admin"))


def can(request: Request, needed: str) -> bool:
    return allows(role_of(request), needed)


def require(request: Request, needed: str) -> None:
    """Refuse the action unless the caller's role allows ``needed``."""
    role = role_of(request)
    if not allows(role, needed):
        raise Forbidden(f"this needs the {needed!r} role; you are signed in as {role!r}")


class Csrf:
    """Issues and checks the CSRF tokens of one app (its secret lives in memory only)."""

    def __init__(self, secret: bytes | None = None) -> None:
        self._secret = secret or secrets.token_bytes(32)

    def token(self, request: Request) -> str:
        session = request.cookies.get(COOKIE) or "anonymous"
        return hmac.new(self._secret, session.encode(), hashlib.sha256).hexdigest()

    def check(self, request: Request, given: str | None) -> None:
        if not given or not hmac.compare_digest(given, self.token(request)):
            raise BadForm(
                "the form's security token is missing or stale: reload the page and try again"
            )


async def read_form(request: Request) -> dict[str, list[str]]:
    """A posted ``application/x-www-form-urlencoded`` body, bounded in size."""
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise BadForm(f"the form is {len(body)} bytes; the limit is {MAX_FORM_BYTES}")
    try:
        text = body.decode()
    except UnicodeDecodeError as exc:
        raise BadForm("the form is not valid UTF-8") from exc
    return parse_qs(text, keep_blank_values=True, max_num_fields=1000)


class Form:
    """A posted form, or why it could not be read (raised by ``check``)."""

    def __init__(self, values: dict[str, list[str]], error: str | None = None) -> None:
        self.values = values
        self.error = error

    def get(self, name: str, default: str = "") -> str:
        found = self.values.get(name)
        return found[0] if found else default

    def check(self, request: Request, csrf: Csrf) -> None:
        if self.error:
            raise BadForm(self.error)
        csrf.check(request, self.get(CSRF_FIELD) or None)


async def posted_form(request: Request) -> Form:
    """FastAPI dependency: the request's form (errors kept for the handler to raise)."""
    try:
        return Form(await read_form(request))
    except (BadForm, ValueError) as exc:
        return Form({}, str(exc))


FormDep = Annotated[Form, Depends(posted_form)]
