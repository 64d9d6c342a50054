"""What bench_worker and its Prefect baseline share (standard library only).

- ``flow_source(package)``: the benchmark's flows, for ``prefect_lite`` or ``prefect``. The
  first thing each flow body does is send one UDP datagram ``"<tag> <time.time()> <pid>"`` to
  ``127.0.0.1:$BENCH_UDP_PORT``, so the moment a flow body starts is seen by the benchmark
  without polling anything.
- ``Probe``: the UDP listener (a thread) and ``wait(tag)`` for that moment.
- ``process_rss_mb`` / ``process_pss_mb``: memory of a process from ``/proc``.
"""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

_FLOWS = """
import os
import socket
import time

from {package} import flow


def _started(tag):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(f"{{tag}} {{time.time()!r}} {{os.getpid()}}".encode(),
                    ("127.0.0.1", int(os.environ["BENCH_UDP_PORT"])))


@flow
def bench_quick(tag: str = "") -> None:
    _started(tag)


@flow
def bench_sleep(tag: str = "", seconds: float = 600.0) -> None:
    _started(tag)
    time.sleep(seconds)
"""


def flow_source(package: str) -> str:
    return _FLOWS.format(package=package)


def write_flows(directory: Path, package: str) -> Path:
    path = directory / "bench_flows.py"
    path.write_text(flow_source(package))
    return path


class Probe:
    """Collects the flow bodies' start datagrams: ``tag -> wall time``."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = int(self.sock.getsockname()[1])
        self.started: dict[str, float] = {}
        self.pids: dict[str, int] = {}
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._listen, daemon=True)
        self._thread.start()

    def _listen(self) -> None:
        while True:
            try:
                data = self.sock.recv(256)
            except OSError:
                return
            tag, when, pid = data.decode().split()
            with self._cond:
                self.started[tag] = float(when)
                self.pids[tag] = int(pid)
                self._cond.notify_all()

    def wait(self, tag: str, timeout: float) -> float:
        """When the flow body tagged ``tag`` started (wall clock); raises on timeout."""
        with self._cond:
            if not self._cond.wait_for(lambda: tag in self.started, timeout):
                raise TimeoutError(f"flow {tag!r} did not start within {timeout} s")
            return self.started[tag]

    def close(self) -> None:
        self.sock.close()


def _status_field(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def process_rss_mb(pid: int) -> float:
    return _status_field(pid, "VmRSS")


def process_pss_mb(pid: int) -> float:
    """Proportional set size: shared pages split between the processes sharing them."""
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return 0.0
    for line in text.splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) / 1024
    return 0.0


def children_of(pid: int) -> list[int]:
    """Direct children of ``pid`` (Linux)."""
    found = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(entry.name))
    return found


def descendants_of(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        for child in children_of(todo.pop()):
            out.append(child)
            todo.append(child)
    return out


def wait_until(predicate: object, timeout: float, interval: float = 0.005) -> float | None:
    """Poll ``predicate()`` until true; the monotonic time it became true, or None."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return time.monotonic()
        time.sleep(interval)
    return None
