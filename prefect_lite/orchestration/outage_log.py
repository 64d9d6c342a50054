"""Say once that the store is unreachable, and once that it is back.

Long-running processes (workers, schedulers) retry for as long as an outage lasts; a line
per attempt would drown their logs. ``OutageLog.failed(exc)`` logs the first failure of
an outage (a warning), ``OutageLog.ok()`` the recovery (with how long it lasted).
"""

from __future__ import annotations

import logging
import threading
import time


class OutageLog:
    def __init__(self, logger: logging.Logger, what: str) -> None:
        self.logger = logger
        self.what = what
        self._since: float | None = None
        self._lock = threading.Lock()

    @property
    def down(self) -> bool:
        return self._since is not None

    def failed(self, exc: BaseException) -> None:
        with self._lock:
            if self._since is not None:
                return
            self._since = time.monotonic()
        self.logger.warning("%s: Redis unavailable, retrying until it is back: %s", self.what, exc)

    def ok(self) -> None:
        if self._since is None:
            return
        with self._lock:
            since, self._since = self._since, None
        if since is not None:
            lasted = time.monotonic() - since
            self.logger.warning("%s: Redis reachable again after %.1f s", self.what, lasted)
