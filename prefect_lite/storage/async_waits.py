"""Waiting without a thread: many long polls multiplexed on one pub/sub connection.

The HTTP server answers waits (a run's next state change, an input to arrive, a paused
run to resume) on its event loop. A ``ChangeHub`` per event loop holds one asyncio Redis
connection subscribed to the channels someone waits on (one SUBSCRIBE per channel, however
many wait on it) and one reader task that wakes the waiters of a channel when a message
arrives. A waiter subscribes, waits for Redis to confirm the subscription, then checks the
store: a change made before the subscription is seen there, one made after arrives as a
message, so none is missed.

``MAX_WAITERS`` (``PREFECT_LITE_MAX_CONCURRENT_WAITS``) caps the waits in progress; one
more is ``TooManyRequests`` (429) at once, never queued. The synchronous waits in
``run_changes`` and ``inputs`` stay for in-process callers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import redis.asyncio as aredis

from prefect_lite.exceptions import StoreUnavailable, TooManyRequests
from prefect_lite.settings import get_settings
from prefect_lite.storage import keys
from prefect_lite.storage.connection import CONNECTION_ERRORS, redis_url, unreachable_message

logger = logging.getLogger("prefect_lite.storage")

_CONFIRM_SECONDS = 5.0
_READ_SLICE_SECONDS = 1.0
# The waits' short reads share a few connections (the subscription holds one of them):
# a burst of waits queues for a connection rather than opening one each.
_POOL_CONNECTIONS = 16
_POOL_WAIT_SECONDS = 10.0
_hubs: dict[int, tuple[asyncio.AbstractEventLoop, ChangeHub]] = {}


class ChangeHub:
    """One pub/sub connection and reader task serving every wait on one event loop."""

    def __init__(self, url: str) -> None:
        self.url = url
        pool = aredis.BlockingConnectionPool.from_url(
            url,
            decode_responses=True,
            socket_connect_timeout=get_settings().connect_timeout_seconds,
            max_connections=_POOL_CONNECTIONS,
            timeout=_POOL_WAIT_SECONDS,
        )
        self.pool = pool
        self.client = aredis.Redis(connection_pool=pool)
        self.pubsub = self.client.pubsub()
        self.waiters: dict[str, set[asyncio.Event]] = {}
        self.confirmed: dict[str, asyncio.Event] = {}
        self.pending: dict[str, int] = {}
        self.active = 0
        self.reader: asyncio.Task[None] | None = None
        self.broken = False

    @contextlib.asynccontextmanager
    async def waiting(self, channel: str) -> AsyncIterator[asyncio.Event]:
        """An event set when ``channel`` gets a message; the subscription is confirmed first."""
        limit = get_settings().max_concurrent_waits
        if self.active >= limit:
            raise TooManyRequests(
                f"too many waits in progress on this server (the limit is {limit}, "
                "PREFECT_LITE_MAX_CONCURRENT_WAITS); retry shortly"
            )
        self.active += 1
        event = asyncio.Event()
        try:
            await self._subscribe(channel, event)
            yield event
        finally:
            self.active -= 1
            await self._unsubscribe(channel, event)

    async def _subscribe(self, channel: str, event: asyncio.Event) -> None:
        waiters = self.waiters.get(channel)
        if waiters is None:
            waiters = self.waiters[channel] = set()
            self.confirmed[channel] = asyncio.Event()
            self.pending[channel] = self.pending.get(channel, 0) + 1
            await self._command(self.pubsub.subscribe(channel))
            self._start_reader()
        waiters.add(event)
        confirmed = self.confirmed[channel]
        try:
            await asyncio.wait_for(confirmed.wait(), _CONFIRM_SECONDS)
        except TimeoutError:
            raise StoreUnavailable(
                unreachable_message(self.url, "Redis did not confirm a subscription in time")
            ) from None

    async def _unsubscribe(self, channel: str, event: asyncio.Event) -> None:
        waiters = self.waiters.get(channel)
        if waiters is None:
            return
        waiters.discard(event)
        if not waiters:
            del self.waiters[channel]
            del self.confirmed[channel]
            if not self.broken:
                with contextlib.suppress(*CONNECTION_ERRORS):
                    await self.pubsub.unsubscribe(channel)

    async def _command(self, command: Awaitable[Any]) -> None:
        try:
            await command
        except CONNECTION_ERRORS as exc:
            self._break()
            raise StoreUnavailable(unreachable_message(self.url, exc)) from exc

    def _start_reader(self) -> None:
        if self.reader is None or self.reader.done():
            self.reader = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        """Dispatch messages until the connection fails (then every waiter is woken)."""
        try:
            while not self.broken:
                message = await self.pubsub.get_message(
                    ignore_subscribe_messages=False, timeout=_READ_SLICE_SECONDS
                )
                if message is not None:
                    self._dispatch(message)
        except CONNECTION_ERRORS as exc:
            logger.warning("wait hub lost its Redis connection: %s", exc)
            self._break()
        except asyncio.CancelledError:
            self._break()
            raise

    def _dispatch(self, message: dict[str, Any]) -> None:
        channel = message.get("channel")
        kind = message.get("type")
        if not isinstance(channel, str):
            return
        if kind == "subscribe":
            left = self.pending.get(channel, 1) - 1
            if left > 0:
                self.pending[channel] = left
                return
            self.pending.pop(channel, None)
            confirmed = self.confirmed.get(channel)
            if confirmed is not None:
                confirmed.set()
        elif kind == "message":
            for event in self.waiters.get(channel, ()):
                event.set()

    def _break(self) -> None:
        """Stop using this hub: wake everyone (they re-read the store); the next wait
        builds a new hub."""
        self.broken = True
        for event in (*self.confirmed.values(), *(e for s in self.waiters.values() for e in s)):
            event.set()
        for loop_id, (_, found) in list(_hubs.items()):
            if found is self:
                del _hubs[loop_id]

    async def close(self) -> None:
        self._break()
        if self.reader is not None:
            self.reader.cancel()
            with contextlib.suppress(BaseException):
                await self.reader
        with contextlib.suppress(Exception):
            await self.pubsub.aclose()
        with contextlib.suppress(Exception):
            await self.client.aclose()
        with contextlib.suppress(Exception):
            await self.pool.disconnect()


def hub() -> ChangeHub:
    """The running event loop's hub (built on first use, rebuilt after a failure)."""
    loop = asyncio.get_running_loop()
    entry = _hubs.get(id(loop))
    if entry is None or entry[0] is not loop or entry[1].broken:
        entry = _hubs[id(loop)] = (loop, ChangeHub(redis_url()))
    return entry[1]


async def close_hub() -> None:
    """Close the running loop's hub (server shutdown); waits still running are woken."""
    entry = _hubs.pop(id(asyncio.get_running_loop()), None)
    if entry is not None:
        await entry[1].close()


async def wait_until(channel: str, settled: Callable[[], Awaitable[bool]], timeout: float) -> bool:
    """Wait up to ``timeout`` seconds for ``settled()`` to be true, re-checking it after each
    message on ``channel``; whether it was."""
    deadline = time.monotonic() + max(0.0, timeout)
    current = hub()
    async with current.waiting(channel) as event:
        while True:
            event.clear()
            if await settled():
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0 or current.broken:
                return False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), remaining)


async def read_version(run_id: str) -> int | None:
    """A flow run's state version read on the hub's connection pool, None if no such run."""
    try:
        raw = await hub().client.hget(keys.flow_run(run_id), "ver")
    except CONNECTION_ERRORS as exc:
        raise StoreUnavailable(unreachable_message(redis_url(), exc)) from exc
    return None if raw is None else int(raw)


def run_channel(run_id: str) -> str:
    return keys.flow_run_changes(run_id)


def input_channel(run_id: str) -> str:
    return keys.flow_run_input_changes(run_id)
