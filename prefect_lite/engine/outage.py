"""Riding out a store outage once a run has started.

A Redis restart or failover takes seconds; a run that is already executing should not
crash because a state write landed in that window. ``ride_out(call)`` retries a store
call on ``StoreUnavailable`` with a capped exponential backoff for up to
``settings.store_outage_seconds``, warning once, then lets the error through. Starting a
run is not retried: with the store down, a new run fails at once with a clear error.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from prefect_lite.exceptions import StoreUnavailable
from prefect_lite.settings import get_settings

T = TypeVar("T")
FIRST_PAUSE_SECONDS = 0.1
MAX_PAUSE_SECONDS = 2.0

logger = logging.getLogger("prefect_lite.engine")


def ride_out(call: Callable[[], T], what: str) -> T:
    """``call()``, retried while the store is unreachable (up to the outage window)."""
    try:
        return call()
    except StoreUnavailable as exc:
        latest = exc
    window = get_settings().store_outage_seconds
    deadline = time.monotonic() + window
    logger.warning("Store unreachable while %s; retrying for up to %g s: %s", what, window, latest)
    pause = FIRST_PAUSE_SECONDS
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise latest
        time.sleep(min(pause, left))
        pause = min(pause * 2, MAX_PAUSE_SECONDS)
        try:
            result = call()
        except StoreUnavailable as exc:
            latest = exc
            continue
        logger.info("Store reachable again; %s went through", what)
        return result
