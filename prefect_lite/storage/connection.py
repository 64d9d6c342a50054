"""Connections to Redis: the one place that builds redis-py clients.

``get_redis()`` (text) and ``get_redis_bytes()`` (bytes, for RQ) return a client cached per
process and URL, so a forked child builds its own pool and ``temporary_settings(redis_url=)``
switches servers. Clients retry refused or reset connections a few times with a short
exponential backoff, which rides out a Redis restart; a timeout (a frozen or cut-off
Redis) is not retried, so every call is bounded by ``socket_timeout_seconds`` (3 s) and
blocking commands block server-side for at most ``MAX_BLOCK_SECONDS``. Unreachable Redis
surfaces as ``StoreUnavailable`` with one line naming the URL (password masked); wrap
calls in ``translate_errors()``. Every process names its connections after its owner id
(``process_owner()``; a worker's run processes take their worker's, ``set_client_name``),
so the reaper can tell from ``CLIENT LIST`` whether the holder of a lease still lives.
"""

from __future__ import annotations

import contextlib
import os
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from prefect_lite.exceptions import ConfigurationError, StoreUnavailable
from prefect_lite.settings import Settings, get_settings, mask_url
from prefect_lite.storage import keys
from prefect_lite.storage.embedded import ensure_embedded

SCHEMES = ("redis", "rediss", "unix")
RETRY_ATTEMPTS = 5  # backoffs 0.1, 0.2, 0.4, 0.8, 1.0 s: about 2.5 s to ride out a restart
MAX_BLOCK_SECONDS = 2.0  # server-side block of BLPOP/XREAD: well under the socket timeout
HEALTH_CHECK_INTERVAL_SECONDS = 10
CONNECTION_ERRORS = (redis.ConnectionError, redis.TimeoutError)
RETRIED_ERRORS = (redis.ConnectionError,)  # a timeout is not retried: calls stay bounded
__all__ = ["mask_url"]  # re-exported: it lives with the settings it masks

_lock = threading.Lock()
_clients: dict[tuple[str, bool, int], redis.Redis] = {}
_embedded_urls: dict[tuple[Path, int], str] = {}
_client_name: str | None = None  # set explicitly; else the process owner's name
_owner: tuple[int, str] | None = None  # (pid, owner id)


def _after_fork_in_child() -> None:
    global _lock
    _lock = threading.Lock()  # the parent's may have been held by another thread


def process_owner() -> str:
    """This process's owner id: it names the leases the process holds and its
    connections (``keys.owner_client_name``). Redis drops a dead process's connections, so
    their absence from ``CLIENT LIST`` proves the holder is gone."""
    global _owner
    pid = os.getpid()
    if _owner is None or _owner[0] != pid:
        _owner = (pid, f"p{pid}-{uuid.uuid4().hex[:10]}")
    return _owner[1]


def set_client_name(name: str | None) -> None:
    """Name every connection this process opens from now on (``CLIENT SETNAME``): a
    worker's run process takes its worker's name, as it holds the worker's leases. Existing
    clients are closed so that no connection keeps the old name."""
    global _client_name
    if name == _client_name:
        return
    _client_name = name
    reset_connections()


os.register_at_fork(after_in_child=_after_fork_in_child)


def redis_url(settings: Settings | None = None) -> str:
    """The Redis URL to use: ``settings.redis_url``, else the embedded server's.

    The embedded server is found (or started) once per process and home, then remembered.
    """
    settings = settings or get_settings()
    if settings.redis_url:
        configured: str = settings.redis_url
        if urlsplit(configured).scheme not in SCHEMES:
            raise ConfigurationError(
                f"PREFECT_LITE_REDIS_URL={mask_url(configured)} must start with redis://, "
                "rediss:// or unix://."
            )
        return configured
    key = (settings.home, os.getpid())
    url = _embedded_urls.get(key)
    if url is None:
        url = _embedded_urls[key] = ensure_embedded(settings)
    return url


def get_redis() -> redis.Redis:
    """The process's client (``decode_responses=True``) for the configured Redis."""
    return _client(decode=True)


def get_redis_bytes() -> redis.Redis:
    """Like ``get_redis()`` but returning bytes, as RQ needs."""
    return _client(decode=False)


def _client(*, decode: bool) -> redis.Redis:
    settings = get_settings()
    url = redis_url(settings)
    key = (url, decode, os.getpid())
    client = _clients.get(key)
    if client is not None:
        return client
    # Built and checked outside the lock: with Redis frozen, threads that all need a
    # client each wait out their own timeout instead of queueing behind one another's.
    client = _build(url, decode, settings)
    try:
        check_connection(client, url)
    except BaseException:
        client.close()
        raise
    with _lock:
        kept = _clients.setdefault(key, client)
    if kept is not client:
        client.close()  # another thread's came first
    return kept


def probe_client(timeout: float) -> redis.Redis:
    """A fresh client for one bounded check (health): no retries, ``timeout`` for both
    connecting and reading. The caller closes it."""
    settings = get_settings()
    url = redis_url(settings)
    try:
        return redis.Redis.from_url(
            url,
            decode_responses=True,
            socket_connect_timeout=timeout,
            socket_timeout=timeout,
            retry=Retry(ExponentialBackoff(cap=1.0, base=0.05), 0, supported_errors=()),
        )
    except ValueError as exc:
        raise ConfigurationError(f"Invalid Redis URL {mask_url(url)}: {exc}") from exc


def _build(url: str, decode: bool, settings: Settings) -> redis.Redis:
    options: dict[str, object] = {}
    if not url.startswith("unix:"):
        options["socket_keepalive"] = True
    try:
        return redis.Redis.from_url(
            url,
            decode_responses=decode,
            socket_connect_timeout=settings.connect_timeout_seconds,
            socket_timeout=settings.socket_timeout_seconds,
            health_check_interval=HEALTH_CHECK_INTERVAL_SECONDS,
            # supported_errors: redis-py's default would retry timeouts too (each one a
            # full socket timeout, nested in health checks: minutes on a frozen Redis).
            retry=Retry(
                ExponentialBackoff(cap=1.0, base=0.05),
                RETRY_ATTEMPTS,
                supported_errors=RETRIED_ERRORS,
            ),
            retry_on_error=list(RETRIED_ERRORS),
            client_name=_client_name or keys.owner_client_name(process_owner()),
            **options,
        )
    except ValueError as exc:
        raise ConfigurationError(f"Invalid Redis URL {mask_url(url)}: {exc}") from exc


def reset_connections() -> None:
    """Close and forget every cached client (after settings changed)."""
    with _lock:
        clients = [c for (_, _, pid), c in _clients.items() if pid == os.getpid()]
        _clients.clear()
        _embedded_urls.clear()
    for client in clients:
        with contextlib.suppress(Exception):
            client.close()


def check_connection(client: redis.Redis, url: str | None = None) -> None:
    """PING ``client``; ``StoreUnavailable`` if Redis cannot be reached."""
    with translate_errors(url or describe(client)):
        client.ping()


@contextlib.contextmanager
def translate_errors(url: str | None = None) -> Iterator[None]:
    """Turn redis connection errors and timeouts into ``StoreUnavailable``.

    Works as ``with translate_errors(): ...`` and as a ``@translate_errors()`` decorator.
    """
    try:
        yield
    except CONNECTION_ERRORS as exc:
        raise StoreUnavailable(unreachable_message(url or _current_url(), exc)) from exc


def unreachable_message(url: str, error: BaseException | str) -> str:
    reason = " ".join(str(error).split()).rstrip(".") or type(error).__name__
    if get_settings().redis_url is None and url != "the configured Redis":
        hint = "Restart the embedded server or set PREFECT_LITE_REDIS_URL."
        return f"cannot reach the embedded Redis at {mask_url(url)}: {reason}. {hint}"
    return (
        f"cannot reach Redis at {mask_url(url)}: {reason}. Check PREFECT_LITE_REDIS_URL "
        "(unset it to use the embedded server)."
    )


def _current_url() -> str:
    settings = get_settings()
    if settings.redis_url:
        return settings.redis_url
    return _embedded_urls.get((settings.home, os.getpid()), "the configured Redis")


def describe(client: redis.Redis) -> str:
    """A password-free URL for the server ``client`` talks to."""
    pool = client.connection_pool
    kwargs = pool.connection_kwargs
    if "path" in kwargs:
        return f"unix://{kwargs['path']}?db={kwargs.get('db', 0)}"
    scheme = "rediss" if issubclass(pool.connection_class, redis.SSLConnection) else "redis"
    host = kwargs.get("host", "localhost")
    return f"{scheme}://{host}:{kwargs.get('port', 6379)}/{kwargs.get('db', 0)}"
