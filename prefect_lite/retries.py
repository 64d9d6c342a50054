"""Retry policy as data: how many retries, and how long to wait before each one.

Pure functions, no I/O, so flows, tasks and the orchestrator agree on one reading of
``retries`` / ``retry_delay_seconds`` / ``retry_jitter_factor``:

- ``retry_delay_seconds`` is a number (the same delay every time), a list (delay before
  retry 1, 2, ...; the last one repeats) or a callable ``(retries) -> list`` such as
  ``exponential_backoff(backoff_factor=2)``, which is expanded once, at declaration time.
- ``delay_for_retry(delays, attempt)`` answers the delay before retry number ``attempt``.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from typing import Any

from prefect_lite.exceptions import DefinitionError

MAX_RETRY_DELAYS = 50  # as Prefect: a longer list is almost certainly a mistake

RetryDelay = float | list[float]


def exponential_backoff(backoff_factor: float) -> Callable[[int], list[float]]:
    """A ``retry_delay_seconds`` callable: ``backoff_factor * 2**n`` for retry ``n`` (0-based).

    >>> exponential_backoff(10)(3)
    [10.0, 20.0, 40.0]
    """
    if not _is_number(backoff_factor) or backoff_factor < 0:
        raise DefinitionError(
            f"exponential_backoff needs a backoff_factor >= 0, got {backoff_factor!r}"
        )

    def retry_backoff_delays(retries: int) -> list[float]:
        return [float(backoff_factor) * 2**n for n in range(retries)]

    return retry_backoff_delays


def check_retries(retries: Any, owner: str) -> int:
    """``retries`` as a non-negative int (None means 0); a clear error otherwise."""
    if retries is None:
        return 0
    if isinstance(retries, bool) or not isinstance(retries, int):
        raise DefinitionError(
            f"{owner}: retries must be a whole number >= 0, got {type(retries).__name__} "
            f"{retries!r}"
        )
    if retries < 0:
        raise DefinitionError(f"{owner}: retries must be >= 0, got {retries}")
    return retries


def normalize_retry_delay(value: Any, retries: int, owner: str) -> RetryDelay:
    """Validate ``retry_delay_seconds`` and expand a callable into its list of delays."""
    if value is None:
        return 0.0
    if callable(value):
        try:
            value = value(retries)
        except Exception as exc:
            raise DefinitionError(
                f"{owner}: the retry_delay_seconds callable failed for {retries} retries: {exc}"
            ) from exc
    if _is_number(value):
        return _non_negative(value, owner)
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        if len(value) > MAX_RETRY_DELAYS:
            raise DefinitionError(
                f"{owner}: at most {MAX_RETRY_DELAYS} retry delays can be given, got {len(value)}"
            )
        return [_non_negative(v, owner) for v in value]
    raise DefinitionError(
        f"{owner}: retry_delay_seconds must be a number, a list of numbers or a callable "
        f"returning one, got {type(value).__name__} {value!r}"
    )


def check_jitter(value: Any, owner: str) -> float | None:
    if value is None:
        return None
    if not _is_number(value) or value < 0:
        raise DefinitionError(f"{owner}: retry_jitter_factor must be >= 0, got {value!r}")
    return float(value)


def delay_for_retry(delays: RetryDelay, attempt: int, jitter_factor: float | None = None) -> float:
    """Seconds to wait before retry number ``attempt`` (1-based); the last delay repeats."""
    if isinstance(delays, list):
        delay = delays[min(attempt, len(delays)) - 1] if delays else 0.0
    else:
        delay = delays
    if jitter_factor and delay > 0:
        delay = clamped_poisson_interval(delay, jitter_factor)
    return delay


def clamped_poisson_interval(average: float, clamping_factor: float = 0.3) -> float:
    """A random interval around ``average``, never outside ``average * (1 +- factor)``."""
    upper = average * (1 + clamping_factor)
    lower = max(0.0, average * (1 - clamping_factor))
    value = -math.log(max(1.0 - random.random(), 1e-12)) * average
    return min(max(value, lower), upper)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _non_negative(value: Any, owner: str) -> float:
    if not _is_number(value) or value < 0 or math.isnan(value):
        raise DefinitionError(
            f"{owner}: retry delays must be numbers >= 0, got {type(value).__name__} {value!r}"
        )
    return float(value)
