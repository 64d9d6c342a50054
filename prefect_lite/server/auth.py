"""Bearer-token authentication for the whole API except ``/api/health`` and ``/api/ready``.

With ``PREFECT_LITE_API_KEY`` set, a request must carry ``Authorization: Bearer <key>``;
the key is compared in constant time. A plain ASGI middleware, so it runs before any
routing or body parsing and costs one header lookup per request.
"""

from __future__ import annotations

import hmac
import json

from starlette.types import ASGIApp, Receive, Scope, Send

OPEN_PATHS = frozenset({"/api/health", "/api/ready"})
_MISSING = "missing API key: send 'Authorization: Bearer <key>' (PREFECT_LITE_API_KEY)"
_WRONG = "invalid API key: check PREFECT_LITE_API_KEY"


class BearerAuthMiddleware:
    """Answer 401 unless the request carries the configured bearer token."""

    def __init__(self, app: ASGIApp, api_key: str) -> None:
        self.app = app
        self._expected = f"Bearer {api_key}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        given = authorization_header(scope)
        if given is not None and hmac.compare_digest(given, self._expected):
            await self.app(scope, receive, send)
            return
        await send_json(send, 401, _MISSING if given is None else _WRONG, auth=True)


def authorization_header(scope: Scope) -> bytes | None:
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            return bytes(value)
    return None


async def send_json(send: Send, status: int, detail: str, *, auth: bool = False) -> None:
    """Answer ``{"detail": detail}`` without involving the application."""
    body = json.dumps({"detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    if auth:
        headers.append((b"www-authenticate", b"Bearer"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
