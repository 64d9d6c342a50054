"""The HTTP API on loopback: create latency, read throughput and server memory.

Both servers run as they would for a user, each in its own process on a free port:
``prefect-lite server start --no-services`` (embedded Redis under a temporary home) and,
as the baseline, ``prefect server start --no-services --no-ui`` from Prefect's venv (its
SQLite database under a temporary PREFECT_HOME). The same client code measures both.

- ``create_flow_run p50``: one ``POST /api/flow_runs/`` at a time over a keep-alive httpx
  connection from this process (``harness.measure``). Also ``create_flow_run_from_deployment``
  (``POST /api/deployments/{id}/create_flow_run``) when prefect_lite has that route.
- ``read_flow_run req/s``: ``GET /api/flow_runs/{id}`` as fast as the server answers, for
  ``LOAD_SECONDS``, from ``LOAD_PROCESSES`` separate load-generator processes. Each runs a
  minimal HTTP/1.1 keep-alive client on a raw socket (one connection, one request in
  flight, every answer checked for 200), so the generator costs little CPU next to the
  server: on a 2-core machine they share the cores.
- ``server RSS``: resident memory of the server's process tree after the load (for
  prefect_lite the API process; its Redis is reported on its own row).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench import harness

CREATE_REPEAT = 400
LOAD_SECONDS = 5.0
LOAD_PROCESSES = 2
START_TIMEOUT = 180.0


@dataclass
class Server:
    name: str
    base: str
    proc: subprocess.Popen[bytes]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def _running(name: str, command: list[str], env: dict[str, str], port: int) -> Iterator[Server]:
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            yield Server(name, _wait_healthy(name, proc, log, port), proc)
        finally:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def _wait_healthy(name: str, proc: subprocess.Popen[bytes], log: Any, port: int) -> str:
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if proc.poll() is not None:
            log.seek(0)
            raise RuntimeError(f"{name} server exited:\n{log.read().decode()[-3000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{base}/api/health", timeout=2).status_code == 200:
                return base
        if time.monotonic() > deadline:
            raise RuntimeError(f"{name} server did not answer within {START_TIMEOUT} s")
        time.sleep(0.2)


def _ours(home: Path) -> contextlib.AbstractContextManager[Server]:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_LITE_")}
    env.update(PREFECT_LITE_HOME=str(home), PYTHONPATH=str(harness.REPO_DIR))
    command = [sys.executable, "-m", "prefect_lite", "server", "start", "--port", str(port)]
    return _running("prefect_lite", [*command, "--no-services"], env, port)


def _prefects(home: Path) -> contextlib.AbstractContextManager[Server]:
    port = _free_port()
    env = harness.prefect_env(
        {
            "PREFECT_HOME": str(home),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_SERVER_LOGGING_LEVEL": "WARNING",
            "PREFECT_LOGGING_LEVEL": "WARNING",
        }
    )
    command = [str(harness.PREFECT_VENV / "bin" / "prefect"), "server", "start"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--no-services", "--no-ui"]
    return _running("prefect", command, env, port)


# ------------------------------------------------------------------------- the two APIs


def _create_body(server: Server, client: httpx.Client) -> dict[str, Any]:
    if server.name == "prefect":
        flow = client.post("/api/flows/", json={"name": "bench"}).raise_for_status().json()
        return {"flow_id": flow["id"]}
    return {"flow_name": "bench"}


def _deployment_id(server: Server, client: httpx.Client, body: dict[str, Any]) -> str:
    if server.name == "prefect":
        payload = {"name": "bench-deployment", "flow_id": body["flow_id"]}
    else:
        payload = {"name": "bench-deployment", "flow_name": "bench"}
    return str(client.post("/api/deployments/", json=payload).raise_for_status().json()["id"])


def _has_route(client: httpx.Client, pattern: str) -> bool:
    paths = client.get("/api/openapi.json").json().get("paths", {})
    return any(re.fullmatch(pattern, path) for path in paths)


def _measure(server: Server, from_deployment: bool = True) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    with httpx.Client(base_url=server.base, timeout=30) as client:
        body = _create_body(server, client)

        def create() -> None:
            client.post("/api/flow_runs/", json=body).raise_for_status()

        figures["create"] = harness.measure(create, repeat=CREATE_REPEAT)
        # Prefect's API is a mounted sub-app: its OpenAPI paths leave out the /api prefix.
        route = r"(/api)?/deployments/\{\w+\}/create_flow_run"
        if from_deployment and _has_route(client, route):
            deployment = _deployment_id(server, client, body)

            def from_dep() -> None:
                path = f"/api/deployments/{deployment}/create_flow_run"
                client.post(path, json={}).raise_for_status()

            figures["from_deployment"] = harness.measure(from_dep, repeat=CREATE_REPEAT)
        run_id = client.post("/api/flow_runs/", json=body).raise_for_status().json()["id"]
        path = f"/api/flow_runs/{run_id}"
        figures["read_p50"] = harness.measure(
            lambda: client.get(path).raise_for_status(), repeat=CREATE_REPEAT
        )
    figures["rps"] = _load(server.base, path)
    figures["rss"] = _tree_rss_mb(server.proc.pid)
    return figures


# --------------------------------------------------------------------------- load generator


def _load(base: str, path: str) -> float:
    host, port = base.removeprefix("http://").split(":")
    start_at = time.time() + 1.0
    context = multiprocessing.get_context("spawn")
    with context.Pool(LOAD_PROCESSES) as pool:
        counts = pool.starmap(
            _hammer, [(host, int(port), path, start_at, LOAD_SECONDS)] * LOAD_PROCESSES
        )
    return sum(counts) / LOAD_SECONDS


def _hammer(host: str, port: int, path: str, start_at: float, seconds: float) -> int:
    """GET ``path`` over one keep-alive connection from ``start_at`` for ``seconds``."""
    request = f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: */*\r\n\r\n".encode()
    with socket.create_connection((host, port)) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        reader = sock.makefile("rb")
        _get(sock, reader, request)  # connect and warm up before the clock starts
        time.sleep(max(0.0, start_at - time.time()))
        deadline = start_at + seconds
        done = 0
        while time.time() < deadline:
            _get(sock, reader, request)
            done += 1
        return done


def _get(sock: socket.socket, reader: Any, request: bytes) -> None:
    sock.sendall(request)
    status = reader.readline()
    if b" 200 " not in status:
        raise RuntimeError(f"unexpected answer: {status!r}")
    length = 0
    chunked = False
    while True:
        line = reader.readline()
        if line in (b"\r\n", b""):
            break
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    if not chunked:
        reader.read(length)
        return
    while True:
        size = int(reader.readline().split(b";")[0], 16)
        reader.read(size + 2)
        if size == 0:
            return


# ------------------------------------------------------------------------------- memory


def _tree_rss_mb(pid: int) -> float:
    return sum(_rss_kib(p) for p in _tree(pid)) / 1024


def _tree(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").glob("[0-9]*"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            ppid = int(entry.joinpath("stat").read_text().rpartition(")")[2].split()[1])
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def _rss_kib(pid: int) -> int:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _redis_rss_mb(home: Path) -> float | None:
    pid_file = home / "redis" / "redis.pid"
    with contextlib.suppress(OSError, ValueError):
        return _rss_kib(int(pid_file.read_text().strip())) / 1024
    return None


# ----------------------------------------------------------------------------------- main


def main() -> list[harness.Row]:
    with tempfile.TemporaryDirectory(prefix="bench-api-") as tmp:
        ours_home = Path(tmp) / "prefect-lite-home"
        with _ours(ours_home) as server:
            ours = _measure(server)
            redis_rss = _redis_rss_mb(ours_home)
        theirs: dict[str, Any] = {}
        if harness.prefect_available():
            with _prefects(Path(tmp) / "prefect-home") as server:
                theirs = _measure(server, from_deployment="from_deployment" in ours)
    rows: list[harness.Row] = [
        _row("create_flow_run p50 (HTTP)", ours, theirs, "create", "ms"),
        _row("create_flow_run p90 (HTTP)", ours, theirs, "create", "ms", "p90_us"),
    ]
    if "from_deployment" in ours:
        rows.append(
            _row("create_flow_run_from_deployment p50", ours, theirs, "from_deployment", "ms")
        )
    rows += [
        _row("read_flow_run p50 (one client)", ours, theirs, "read_p50", "ms"),
        {
            "name": f"read_flow_run throughput ({LOAD_PROCESSES} load processes)",
            "prefect_lite": ours["rps"],
            "baseline": theirs.get("rps"),
            "unit": "req/s",
        },
        {
            "name": "server RSS after load",
            "prefect_lite": ours["rss"],
            "baseline": theirs.get("rss"),
            "unit": "MiB",
        },
        {"name": "embedded Redis RSS", "prefect_lite": redis_rss, "baseline": None, "unit": "MiB"},
    ]
    return rows


def _row(
    name: str,
    ours: dict[str, Any],
    theirs: dict[str, Any],
    key: str,
    unit: str,
    stat: str = "p50_us",
) -> harness.Row:
    baseline = theirs.get(key)
    return {
        "name": name,
        "prefect_lite": getattr(ours[key], stat) / 1000,
        "baseline": getattr(baseline, stat) / 1000 if baseline is not None else None,
        "unit": unit,
    }


if __name__ == "__main__":
    harness.report(main(), "api")
