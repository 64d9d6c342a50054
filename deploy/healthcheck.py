#!/usr/bin/env python3
"""Container health check for the prefect-lite image (exit 0: healthy, 1: not).

The API server (``prefect-lite server start`` as the container's process 1) is healthy when
``/api/health`` answers on its own port; a scheduler or worker when its Redis answers PING.
"""

from __future__ import annotations

import os
import sys
import urllib.request
from pathlib import Path


def _command() -> list[str]:
    try:
        return Path("/proc/1/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def _port(command: list[str]) -> str:
    for index, word in enumerate(command):
        if word == "--port" and index + 1 < len(command):
            return command[index + 1]
        if word.startswith("--port="):
            return word.split("=", 1)[1]
    return "4200"


def main() -> int:
    command = _command()
    if "server" in command:
        url = f"http://127.0.0.1:{_port(command)}/api/health"
        with urllib.request.urlopen(url, timeout=4) as response:  # loopback only
            return 0 if response.status == 200 else 1
    if not os.environ.get("PREFECT_LITE_REDIS_URL"):
        print("unhealthy: PREFECT_LITE_REDIS_URL is not set", file=sys.stderr)
        return 1  # never start an embedded Redis inside a health check
    from prefect_lite.storage.connection import get_redis

    return 0 if get_redis().ping() else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception as exc:  # a health check reports, never raises
        print(f"unhealthy: {type(exc).__name__}: {exc}", file=sys.stderr)
        sys.exit(1)
