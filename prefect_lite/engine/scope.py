"""What the task runs of one flow run share: its client, lineage map and run counters.

A ``FlowRunScope`` lives in ``FlowRunContext.extra["engine"]`` for the duration of a flow
run. ``engine_client()`` is the client used where no flow run provides one.
"""

from __future__ import annotations

import itertools
import os
import threading
import uuid
from collections.abc import Iterator
from typing import Any

from prefect_lite.context import FlowRunContext

SCOPE_KEY = "engine"

# Values whose identity says nothing about where they came from (interned singletons and
# small ints), so they are never linked to the task run that returned them.
_UNTRACKABLE = (bool, type(None), type(...), type(NotImplemented))


class FlowRunScope:
    """Per flow run engine state: results by identity (for lineage) and dynamic keys."""

    __slots__ = ("_counters", "cancel_reason", "client", "flow_run_id", "results")

    def __init__(self, flow_run_id: uuid.UUID, client: Any) -> None:
        self.flow_run_id = flow_run_id
        self.client = client
        # id(result) -> (result, task run id). Holding the result keeps its id unique.
        self.results: dict[int, tuple[Any, uuid.UUID]] = {}
        self._counters: dict[str, Iterator[int]] = {}
        self.cancel_reason: str | None = None

    def next_dynamic_key(self, task_key: str) -> int:
        """0, 1, 2... per task key within this flow run (thread-safe under the GIL)."""
        counter = self._counters.get(task_key)
        if counter is None:
            counter = self._counters.setdefault(task_key, itertools.count())
        return next(counter)

    def link_result(self, value: Any, task_run_id: uuid.UUID) -> None:
        if isinstance(value, _UNTRACKABLE) or (type(value) is int and -5 <= value <= 256):
            return
        self.results[id(value)] = (value, task_run_id)

    def producer_of(self, value: Any) -> uuid.UUID | None:
        """The task run that returned this very object, if any."""
        found = self.results.get(id(value))
        return found[1] if found is not None and found[0] is value else None


def current_scope() -> FlowRunScope | None:
    ctx = FlowRunContext.get()
    if ctx is None:
        return None
    scope = ctx.extra.get(SCOPE_KEY)
    return scope if isinstance(scope, FlowRunScope) else None


_clients: dict[tuple[str | None, str | None], Any] = {}
_clients_lock = threading.Lock()


def _forget_clients_after_fork() -> None:
    global _clients_lock
    _clients.clear()  # an HTTP client's connections belong to the parent
    _clients_lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_clients_after_fork)


def close_engine_clients() -> None:
    """Close and forget the reused clients (their HTTP connections), e.g. once the API
    they point at is gone. Only when no run of this process is using them."""
    with _clients_lock:
        clients = list(_clients.values())
        _clients.clear()
    for client in clients:
        try:
            client.close()
        except Exception:  # a client that cannot close cleanly is dropped all the same
            pass


def engine_client() -> Any:
    """A sync client for the current settings, reused across runs (transports are costly
    to build for HTTP, free to share locally)."""
    from prefect_lite.settings import get_settings

    settings = get_settings()
    key_secret = settings.api_key.get_secret_value() if settings.api_key else None
    key = (settings.api_url, key_secret)
    client = _clients.get(key)
    if client is None:
        from prefect_lite.client import get_client

        with _clients_lock:
            client = _clients.get(key)
            if client is None:
                client = _clients[key] = get_client(sync_client=True)
    return client
