"""Health and readiness, bounded even when the store hangs.

- ``GET /api/health`` (liveness, like Prefect's): always 200 while the server answers;
  its body is ``true`` when Redis answered the last probe, ``false`` when it did not.
- ``GET /api/ready`` (readiness, like Prefect's): 200 ``{"status": "ok", "store": "ok"}``,
  or 503 ``{"status": "degraded", "store": "<why>"}`` when Redis does not answer.

Both are unauthenticated and cheap: one PING on a fresh connection with a 1 s timeout
(connect and read, no retries), its answer shared by every request for half a second, so
a frozen Redis is reported within about a second and probes cannot pile up on it.
"""

from __future__ import annotations

import threading
import time

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from prefect_lite.exceptions import PrefectLiteError
from prefect_lite.storage import liveness

PROBE_TIMEOUT_SECONDS = 1.0
CACHE_SECONDS = 0.5


class StoreProbe:
    """The store's reachability, probed at most every ``CACHE_SECONDS``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._checked = -1e9
        self._problem: str | None = None

    def problem(self) -> str | None:
        """None when Redis answers, else why not (one line, no secrets)."""
        with self._lock:  # concurrent requests share one probe
            if time.monotonic() - self._checked >= CACHE_SECONDS:
                try:
                    self._problem = liveness.probe(PROBE_TIMEOUT_SECONDS)
                except PrefectLiteError as exc:  # e.g. a bad Redis URL
                    self._problem = str(exc)
                self._checked = time.monotonic()
            return self._problem


def install(app: FastAPI, prefix: str) -> None:
    probe = StoreProbe()

    @app.get(f"{prefix}/health", tags=["admin"], operation_id="health")
    def health() -> bool:
        """Liveness: 200 while the server answers; true when Redis answers too (within
        about a second), false when it does not (no authentication needed)."""
        return probe.problem() is None

    @app.get(
        f"{prefix}/ready",
        tags=["admin"],
        operation_id="ready",
        responses={503: {"description": "Redis does not answer"}},
    )
    def ready() -> JSONResponse:
        """Readiness: 200 when Redis answers within about a second, else 503 with why."""
        problem = probe.problem()
        if problem is None:
            return JSONResponse({"status": "ok", "store": "ok"})
        return JSONResponse({"status": "degraded", "store": problem}, status_code=503)
