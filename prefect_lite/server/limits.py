"""Request body size limit (``max_payload_bytes``): 413 before any parsing.

A declared ``Content-Length`` over the limit is refused at once, without reading the body.
Otherwise (including chunked bodies, which declare no length) the body is read and
counted chunk by chunk up to the limit, then replayed to the application, so an
oversized body is never handed to a parser.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from prefect_lite.server.auth import send_json


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def _too_large(self) -> str:
        return f"request body larger than the {self.max_bytes}-byte limit (max_payload_bytes)"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await send_json(send, 413, self._too_large())
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # client went away
                await self.app(scope, _replay([], message, receive), send)
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await send_json(send, 413, self._too_large())
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        first: Message = {"type": "http.request", "body": b"".join(chunks), "more_body": False}
        await self.app(scope, _replay([first], None, receive), send)


def _replay(messages: list[Message], last: Message | None, receive: Receive) -> Receive:
    """A ``receive`` that hands out ``messages`` (then ``last``), then defers to ``receive``."""
    pending = [*messages, *([last] if last is not None else [])]

    async def replayed() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replayed


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
