"""Trusted-Host checking: answer 400 to a request whose ``Host`` is not ours.

A web page can make a victim's browser send requests to the server under a name the
attacker controls that resolves to the server's address (DNS rebinding); such requests
carry the attacker's name in ``Host``. Accepted names: loopback (``localhost``,
``127.0.0.1``, ``::1``), the address the server is bound to, and the names configured in
``PREFECT_LITE_SERVER_TRUSTED_HOSTS`` (comma-separated; ``*`` accepts any name and must
be given explicitly). A request without a ``Host`` (HTTP/1.0 probes) cannot come from a
browser and is let through.
"""

from __future__ import annotations

from collections.abc import Iterable

from starlette.types import ASGIApp, Receive, Scope, Send

from prefect_lite.server.auth import send_json

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})


def trusted_hosts(configured: str, bound_host: str | None = None) -> frozenset[str]:
    """Loopback names, the bound host and the configured names, lower case."""
    names = set(LOOPBACK_NAMES)
    if bound_host:
        names.add(_bare(bound_host))
    names.update(_bare(n) for n in configured.split(",") if n.strip())
    return frozenset(names)


def host_name(header: str) -> str:
    """The name part of a ``Host`` header: ``[::1]:4200`` -> ``::1``, ``A:80`` -> ``a``."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1 : header.find("]")] if "]" in header else header
    name, _, _port = header.partition(":")
    return name.rstrip(".")


def _bare(name: str) -> str:
    name = name.strip().lower()
    return name[1:-1] if name.startswith("[") and name.endswith("]") else name


class TrustedHostMiddleware:
    """Refuse (400, JSON detail) any HTTP request whose Host is not in ``allowed``."""

    def __init__(self, app: ASGIApp, allowed: Iterable[str]) -> None:
        self.app = app
        self.allowed = frozenset(allowed)
        self.any_host = "*" in self.allowed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or self.any_host:
            await self.app(scope, receive, send)
            return
        raw = next((v for k, v in scope.get("headers", ()) if k == b"host"), None)
        if raw is None or host_name(raw.decode("latin-1")) in self.allowed:
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        shown = raw.decode("latin-1")[:100].encode("unicode_escape").decode("ascii")
        await send_json(
            send,
            400,
            f"untrusted Host header {shown!r}: add the name to "
            "PREFECT_LITE_SERVER_TRUSTED_HOSTS if this server should answer to it",
        )
