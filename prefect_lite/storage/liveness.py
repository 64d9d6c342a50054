"""What Redis itself knows about liveness: its own identity, and who is connected.

- ``store_identity()``: the server's run id and start time (``INFO server``). A new run id
  means Redis restarted; the reaper then gives every lease a fresh grace period.
- ``connected_owners()``: the lease holders with at least one open connection (from the
  names in ``CLIENT LIST``). Redis drops a connection when its process dies (the kernel
  closes the socket), so an owner missing here is gone; one present but silent may be cut
  off and alive. None when ``CLIENT LIST`` is not allowed (ACLs): nothing is then "gone".
- ``probe(timeout)``: a bounded PING on a fresh connection, for health checks.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import redis

from prefect_lite.storage import keys
from prefect_lite.storage.connection import (
    CONNECTION_ERRORS,
    get_redis,
    probe_client,
    translate_errors,
    unreachable_message,
)


@dataclass(frozen=True)
class StoreIdentity:
    run_id: str
    started_at: float  # wall-clock timestamp, to the second


def store_identity() -> StoreIdentity:
    with translate_errors():
        info = get_redis().info("server")
    uptime = float(info.get("uptime_in_seconds", 0))
    return StoreIdentity(run_id=str(info.get("run_id", "")), started_at=time.time() - uptime)


def connected_owners() -> set[str] | None:
    """Owner ids with an open connection now (None: CLIENT LIST is not permitted)."""
    marker = keys.owner_client_prefix()
    try:
        with translate_errors():
            clients = get_redis().client_list(_type="normal")
    except redis.ResponseError:
        return None
    names = (str(c.get("name") or "") for c in clients)
    return {name[len(marker) :] for name in names if name.startswith(marker)}


def probe(timeout: float) -> str | None:
    """None when Redis answers a PING within ``timeout`` seconds, else why not (one line)."""
    client = probe_client(timeout)
    try:
        client.ping()
    except CONNECTION_ERRORS as exc:
        return unreachable_message(_describe(client), exc)
    except redis.RedisError as exc:
        return f"Redis answered with an error: {' '.join(str(exc).split())}"
    finally:
        client.close()
    return None


def _describe(client: redis.Redis) -> str:
    from prefect_lite.storage.connection import describe

    return describe(client)
