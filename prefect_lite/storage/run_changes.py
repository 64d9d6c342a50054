"""Waiting for a flow run to change, without polling.

``propose_state`` publishes a flow run's new version on ``keys.flow_run_changes`` (see
``scripts``). ``wait_for_change`` subscribes, waits for Redis to confirm the
subscription, then compares the stored version with the one the caller knows: a change
made before the subscription is seen in the hash, one made after arrives as a message.
The wait is one blocking read on a connection of its own, bounded by ``MAX_WAIT_SECONDS``
(well under the client's socket timeout): callers wait longer by calling again.
"""

from __future__ import annotations

import time
import uuid

import redis

from prefect_lite.storage import keys
from prefect_lite.storage.connection import get_redis, translate_errors

MAX_WAIT_SECONDS = 10.0
_CONFIRM_SECONDS = 5.0  # for Redis to acknowledge the SUBSCRIBE


def current_version(run_id: uuid.UUID | str) -> int | None:
    """The flow run's state version, None if there is no such run."""
    with translate_errors():
        raw = get_redis().hget(keys.flow_run(str(run_id)), "ver")
    return None if raw is None else int(raw)


def wait_for_change(
    run_id: uuid.UUID | str, known_version: int | None, timeout: float
) -> int | None:
    """Block until the run's version differs from ``known_version`` (None: from its version
    now) or ``timeout`` seconds pass; the version then, None if the run does not exist."""
    rid = str(run_id)
    timeout = max(0.0, min(timeout, MAX_WAIT_SECONDS))
    deadline = time.monotonic() + timeout
    if known_version is not None or timeout == 0:  # changed already? no subscription needed
        version = current_version(rid)
        if version is None or version != known_version or timeout == 0:
            return version
    client = get_redis()
    with translate_errors():
        pubsub = client.pubsub()
        try:
            pubsub.subscribe(keys.flow_run_changes(rid))
            _await_confirmation(pubsub)
            version = current_version(rid)
            if version is None or (known_version is not None and version != known_version):
                return version
            known = version
            while (remaining := deadline - time.monotonic()) > 0:
                message = pubsub.get_message(timeout=remaining)
                if message is not None and message.get("type") == "message":
                    return current_version(rid)  # versions only grow: this is a change
            return known
        finally:
            pubsub.close()


def _await_confirmation(pubsub: redis.client.PubSub) -> None:
    """Return once Redis has confirmed the SUBSCRIBE (a health-check pong may come first)."""
    confirm_by = time.monotonic() + _CONFIRM_SECONDS
    while True:
        message = pubsub.get_message(timeout=max(0.0, confirm_by - time.monotonic()))
        if message is not None and message.get("type") == "subscribe":
            return
        if time.monotonic() >= confirm_by:
            raise redis.ConnectionError("Redis did not confirm the subscription in time")
