"""API keys with roles, checked before any routing or body parsing.

The contract other parts of the server rely on:

- Roles: ``read``, ``run``, ``worker``, ``admin`` (``ROLES``), and
  ``allows(role, needed) -> bool``: ``admin`` allows everything, ``run`` and ``worker``
  each include ``read`` (and not each other). Defined in ``prefect_lite.api.roles``.
- Keys: ``PREFECT_LITE_API_KEYS="ROLE:KEY,ROLE:KEY"`` plus the single
  ``PREFECT_LITE_API_KEY``, which is an ``admin`` key. No key configured: auth is off.
- A key is taken from ``Authorization: Bearer <key>`` or, without that header, from the
  cookie ``prefect_lite_key`` (set by the web UI's ``/login``: HttpOnly, SameSite=Strict).
  Keys are compared in constant time (SHA-256 digests, every configured key compared).
- A request authenticated only by the cookie with an unsafe method (POST, PUT, PATCH,
  DELETE) must also be same-origin: ``Sec-Fetch-Site`` of ``same-origin`` or ``none``, or
  an ``Origin`` whose host:port equals the ``Host``; otherwise 403.
- Every request let through has the caller's role in ``scope["state"]["role"]``
  (``request.state.role``): the key's role, ``admin`` when auth is off, and ``""``
  (anonymous) on an open path requested without a valid key.
- Open paths (no key needed): ``/api/health``, ``/api/ready``, ``/login``, anything
  under ``/static/``.
- Without valid credentials: API paths (``/api`` and below) get a 401 JSON answer
  ``{"detail": ...}``; any other path gets a 303 redirect to ``/login?next=<path>``.
- Which role each API operation needs is declared in the registry and checked per route
  (``require_role``); a refusal is a 403 naming the missing role.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

from starlette.types import ASGIApp, Receive, Scope, Send

from prefect_lite.api.roles import ADMIN, READ, ROLES, RUN, WORKER, Role, allows
from prefect_lite.exceptions import ConfigurationError
from prefect_lite.settings import Settings

__all__ = [
    "ADMIN",
    "COOKIE_NAME",
    "READ",
    "ROLES",
    "RUN",
    "WORKER",
    "AuthMiddleware",
    "KeyRing",
    "Role",
    "allows",
]

COOKIE_NAME = "prefect_lite_key"
OPEN_PATHS = frozenset({"/api/health", "/api/ready", "/login"})
OPEN_PREFIXES = ("/static/",)
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_MISSING = "missing API key: send 'Authorization: Bearer <key>' (PREFECT_LITE_API_KEY)"
_WRONG = "invalid API key: check PREFECT_LITE_API_KEY"
_CROSS_SITE = "cross-site request refused: a cookie-authenticated change must be same-origin"


def _digest(key: str | bytes) -> bytes:
    return hashlib.sha256(key.encode() if isinstance(key, str) else key).digest()


@dataclass(frozen=True)
class KeyRing:
    """The configured keys, as (SHA-256 digest, role) pairs; never the keys themselves."""

    entries: tuple[tuple[bytes, str], ...]

    @classmethod
    def from_settings(cls, settings: Settings) -> KeyRing:
        """Parse ``api_keys`` (``ROLE:KEY,...``) and the legacy ``api_key`` (admin).

        ``ConfigurationError`` for an unknown role, an empty key or a key given twice;
        the message never contains a key.
        """
        pairs: list[tuple[str, str]] = []
        if settings.api_keys is not None:
            pairs.extend(parse_keys(settings.api_keys.get_secret_value()))
        if settings.api_key is not None and settings.api_key.get_secret_value():
            pairs.append((ADMIN, settings.api_key.get_secret_value()))
        digests = [_digest(key) for _, key in pairs]
        if len(set(digests)) != len(digests):
            raise ConfigurationError("an API key is configured twice (PREFECT_LITE_API_KEYS)")
        return cls(tuple(zip(digests, (role for role, _ in pairs), strict=True)))

    def __bool__(self) -> bool:
        return bool(self.entries)

    def role_of(self, key: bytes) -> str | None:
        """The role of ``key``; every entry is compared, in constant time each."""
        given = _digest(key)
        found = None
        for digest, role in self.entries:
            if hmac.compare_digest(given, digest):
                found = role
        return found


def parse_keys(text: str) -> list[tuple[str, str]]:
    """``"run:K1, worker:K2"`` -> ``[("run", "K1"), ("worker", "K2")]``."""
    pairs: list[tuple[str, str]] = []
    for number, item in enumerate(text.split(","), start=1):
        item = item.strip()
        if not item:
            continue
        role, sep, key = item.partition(":")
        role, key = role.strip(), key.strip()
        if not sep or role not in ROLES:
            raise ConfigurationError(
                f"PREFECT_LITE_API_KEYS entry {number}: expected ROLE:KEY with ROLE one of "
                f"{', '.join(ROLES)}"
            )
        if not key:
            raise ConfigurationError(f"PREFECT_LITE_API_KEYS entry {number}: the key is empty")
        pairs.append((role, key))
    return pairs


class AuthMiddleware:
    """Authenticate every HTTP request (see the module docstring) and record its role."""

    def __init__(self, app: ASGIApp, keys: KeyRing) -> None:
        self.app = app
        self.keys = keys

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket" and self.keys:
            await self._websocket(scope, receive, send)
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        if not self.keys:
            state["role"] = ADMIN
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        bearer, key, role = self._authenticate(headers)
        path: str = scope["path"]
        if role is None and is_open_path(path):
            state["role"] = ""
            await self.app(scope, receive, send)
            return
        if role is None:
            await _refuse(scope, send, _MISSING if key is None else _WRONG)
            return
        if bearer is None and scope["method"] in UNSAFE_METHODS and not same_origin(headers):
            await send_json(send, 403, _CROSS_SITE)
            return
        state["role"] = role
        await self.app(scope, receive, send)

    def _authenticate(
        self, headers: dict[bytes, bytes]
    ) -> tuple[bytes | None, bytes | None, str | None]:
        """(the Authorization header, the key sent, its role): the header wins over the
        cookie; any of them None when absent or, for the role, not a configured key."""
        bearer = headers.get(b"authorization")
        key = _bearer_key(bearer) if bearer is not None else _cookie(headers, COOKIE_NAME)
        return bearer, key, self.keys.role_of(key) if key is not None else None

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        """No endpoint uses websockets today; one added later gets the same keys (bearer
        or cookie, and a same-origin handshake for the cookie) instead of none."""
        headers = _headers(scope)
        bearer, _key, role = self._authenticate(headers)
        if role is None or (bearer is None and not same_origin(headers)):
            await send({"type": "websocket.close", "code": 1008})
            return
        scope.setdefault("state", {})["role"] = role
        await self.app(scope, receive, send)


def is_open_path(path: str) -> bool:
    return path in OPEN_PATHS or path.startswith(OPEN_PREFIXES)


def is_api_path(path: str) -> bool:
    return path == "/api" or path.startswith("/api/")


def same_origin(headers: dict[bytes, bytes]) -> bool:
    """A browser says the request comes from this site (or was typed by the user)."""
    site = headers.get(b"sec-fetch-site")
    if site is not None:
        return site in (b"same-origin", b"none")
    origin, host = headers.get(b"origin"), headers.get(b"host")
    if origin is None or host is None:
        return False
    try:
        parts = urlsplit(origin.decode("latin-1"))
        origin_host = parts.netloc
    except ValueError:
        return False
    if parts.scheme not in ("http", "https") or not origin_host:
        return False
    return _with_port(origin_host, parts.scheme) == _with_port(host.decode("latin-1"), parts.scheme)


def _with_port(netloc: str, scheme: str) -> str:
    netloc = netloc.lower()
    host_end = netloc.rfind("]") if netloc.startswith("[") else -1
    if ":" in netloc[host_end + 1 :]:
        return netloc
    return f"{netloc}:{443 if scheme == 'https' else 80}"


def _headers(scope: Scope) -> dict[bytes, bytes]:
    """Request headers (names lower case, as ASGI gives them); the first of repeats."""
    found: dict[bytes, bytes] = {}
    for name, value in scope.get("headers", ()):
        found.setdefault(bytes(name), bytes(value))
    return found


def _bearer_key(value: bytes) -> bytes:
    scheme, _, key = value.strip().partition(b" ")
    return key.strip() if scheme.lower() == b"bearer" else b""


def _cookie(headers: dict[bytes, bytes], name: str) -> bytes | None:
    raw = headers.get(b"cookie")
    if raw is None:
        return None
    for part in raw.split(b";"):
        key, sep, value = part.strip().partition(b"=")
        if sep and key == name.encode():
            return value.strip().strip(b'"')
    return None


async def _refuse(scope: Scope, send: Send, detail: str) -> None:
    path: str = scope["path"]
    if is_api_path(path):
        await send_json(send, 401, detail, auth=True)
        return
    target = path
    if scope.get("query_string"):
        target += "?" + scope["query_string"].decode("latin-1")
    location = "/login?next=" + quote(target, safe="/")
    await send(
        {
            "type": "http.response.start",
            "status": 303,
            "headers": [(b"location", location.encode()), (b"content-length", b"0")],
        }
    )
    await send({"type": "http.response.body", "body": b""})


async def send_json(send: Send, status: int, detail: str, *, auth: bool = False) -> None:
    """Answer ``{"detail": detail}`` without involving the application."""
    body = json.dumps({"detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    if auth:
        headers.append((b"www-authenticate", b"Bearer"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def roles_summary(keys: KeyRing) -> str:
    """``2 keys (admin, run)``: for the server's start-up line (no key material)."""
    roles: Iterable[str] = sorted({role for _, role in keys.entries}, key=ROLES.index)
    count = len(keys.entries)
    return f"{count} key{'s' if count != 1 else ''} ({', '.join(roles)})"
