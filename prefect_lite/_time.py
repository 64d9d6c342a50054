"""The only clock.

All code asks ``now()`` / ``monotonic()`` here, so tests and the scheduler's ``tick(now)``
can run on a fake clock (``frozen_time``). Times are timezone-aware UTC datetimes.
"""

from __future__ import annotations

import contextlib
import time as _time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

_frozen: datetime | None = None


def now() -> datetime:
    """Current UTC time (or the frozen time in tests)."""
    return _frozen if _frozen is not None else datetime.now(UTC)


def timestamp() -> float:
    """Current time as POSIX seconds."""
    return _frozen.timestamp() if _frozen is not None else _time.time()


def monotonic() -> float:
    return _time.monotonic()


def from_timestamp(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def ensure_utc(value: datetime) -> datetime:
    """Naive datetimes are taken as UTC; aware ones are converted."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


@contextlib.contextmanager
def frozen_time(at: datetime) -> Iterator[FrozenClock]:
    """Freeze ``now()`` at ``at``; the yielded clock can be moved forward."""
    global _frozen
    previous = _frozen
    _frozen = ensure_utc(at)
    try:
        yield FrozenClock()
    finally:
        _frozen = previous


class FrozenClock:
    def advance(self, seconds: float) -> datetime:
        global _frozen
        assert _frozen is not None
        _frozen = _frozen + timedelta(seconds=seconds)
        return _frozen

    def set(self, at: datetime) -> None:
        global _frozen
        _frozen = ensure_utc(at)
