"""Helpers for tests: condition waits, Python subprocesses, redis-server process discovery."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

REPO_ROOT = Path(__file__).resolve().parents[1]


def wait_for(
    predicate: Callable[[], T],
    timeout: float = 10.0,
    interval: float = 0.01,
    message: str = "condition not met",
) -> T:
    """Poll ``predicate`` until it returns something truthy (returned); AssertionError after
    ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{message} (waited {timeout} s)")
        time.sleep(interval)


def python_env(env: Mapping[str, str | None] | None = None) -> dict[str, str]:
    """``os.environ`` plus ``env`` (a None value unsets), with the repo importable."""
    merged = dict(os.environ)
    for name, value in (env or {}).items():
        if value is None:
            merged.pop(name, None)
        else:
            merged[name] = value
    merged["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(REPO_ROOT), merged.get("PYTHONPATH", "")) if p
    )
    return merged


def run_python(
    code: str, env: Mapping[str, str | None] | None = None, timeout: float = 60.0
) -> subprocess.CompletedProcess[str]:
    """Run ``code`` with this interpreter in a fresh process (environment inherited)."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=python_env(env),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def spawn_python(code: str, env: Mapping[str, str | None] | None = None) -> subprocess.Popen[str]:
    """Start ``code`` in a fresh process; the caller must ``communicate()`` with it."""
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=python_env(env),
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def pid_alive(pid: int) -> bool:
    """True while ``pid`` runs (an exited, not yet reaped zombie counts as dead)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


def redis_servers_under(directory: Path) -> list[int]:
    """Pids of live redis-server processes working in ``directory`` or below (Linux only)."""
    root = Path(directory).resolve()
    found = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            if b"redis-server" not in (entry / "cmdline").read_bytes():
                continue
            cwd = (entry / "cwd").resolve(strict=True)
        except OSError:
            continue
        if (cwd == root or root in cwd.parents) and pid_alive(int(entry.name)):
            found.append(int(entry.name))
    return sorted(found)


def kill_redis_servers_under(directory: Path) -> list[int]:
    """SIGKILL every redis-server working under ``directory``; their pids."""
    pids = redis_servers_under(directory)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    wait_for(
        lambda: not any(pid_alive(pid) for pid in pids),
        message=f"redis-server processes {pids} survived SIGKILL",
    )
    return pids
