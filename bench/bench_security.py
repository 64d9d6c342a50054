"""Bounded work per request: the server stays responsive under waits and hostile schemas.

Our server runs as a user runs it (``prefect-lite server start --no-services``, embedded
Redis under a temporary home), in its own process.

- ``/api/health`` p50/p99 while ``--waits`` (500) run-change long polls are held open
  (``POST /api/flow_runs/{id}/wait``, re-sent as each one times out, from an asyncio
  client in this process), next to the same figure with no waits. Target: p99 <= 50 ms.
  ``--before PATH`` measures a server run from another checkout too (e.g. one from before
  waits were served on the event loop, where each wait held a thread): 5 health requests,
  each given 30 s.
- The hostile inputs, each answered with a clear 422, timed over HTTP (p50, max):
  a resume input ``'a' * 27 + '!'`` against the pattern ``^(a+)+$`` (and one of 100,000
  characters: linear), and storing a parameter schema of nested ``anyOf``/``$ref`` whose
  check would take ``10**levels`` steps. A schema stored before the checks existed is
  refused at run creation by the check's step budget: timed in-process. Target: <= 50 ms.

Prefect has no long-poll endpoint for a run's next state change (its clients poll
``GET /api/flow_runs/{id}``), so there is no equivalent load to hold open against its
server: the wait figures have no baseline. ``--prefect`` runs Prefect's server for the
schema checks: a deployment with the nested schema (enforced) and a run created from it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from bench import harness
from bench.bench_api import Server, _free_port, _running

WAITS = 500
HEALTH_SAMPLES = 300
BEFORE_SAMPLES = 5  # a starved server answers in tens of seconds, if at all
BEFORE_TIMEOUT = 30.0
SCHEMA_REPEAT = 20
NESTED_LEVELS = 6
BACKTRACKING = {"type": "string", "pattern": "^(a+)+$"}


def _server(repo: Path, home: Path) -> contextlib.AbstractContextManager[Server]:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_LITE_")}
    env.update(PREFECT_LITE_HOME=str(home), PYTHONPATH=str(repo))
    # -P: the checkout on PYTHONPATH, not the current directory, provides prefect_lite
    command = [sys.executable, "-P", "-m", "prefect_lite", "server", "start", "--port", str(port)]
    return _running("prefect_lite", [*command, "--no-services"], env, port)


# ---------------------------------------------------------------------------- waits held


class _HeldWaits:
    """``count`` long polls kept open on one run (each re-sent when it returns)."""

    def __init__(self, base: str, run_id: str, version: int, count: int) -> None:
        self.base, self.run_id, self.version, self.count = base, run_id, version, count
        self.statuses: dict[int | str, int] = {}
        self.started = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)
        self.thread.start()

    async def _run(self) -> None:
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
        timeout = httpx.Timeout(120.0)
        async with httpx.AsyncClient(base_url=self.base, limits=limits, timeout=timeout) as http:
            await asyncio.gather(*(self._one(http) for _ in range(self.count)))

    async def _one(self, http: httpx.AsyncClient) -> None:
        path = f"/api/flow_runs/{self.run_id}/wait"
        body = {"version": self.version, "timeout": 10}
        self.started += 1
        while not self.stop.is_set():
            try:
                status: int | str = (await http.post(path, json=body)).status_code
            except httpx.HTTPError as exc:
                status = type(exc).__name__
            self.statuses[status] = self.statuses.get(status, 0) + 1

    def close(self) -> None:
        self.stop.set()
        self.thread.join(130)


def _health(base: str, samples: int, timeout: float) -> tuple[harness.Stats, int]:
    """Health request latencies (a request that times out counts as the timeout) and how
    many timed out."""
    timeouts = 0
    with httpx.Client(base_url=base, timeout=timeout) as client:

        def once() -> None:
            nonlocal timeouts
            try:
                client.get("/api/health").raise_for_status()
            except httpx.TimeoutException:
                timeouts += 1

        stats = harness.measure(once, repeat=samples, warmup=0)
    return stats, timeouts


def _waits_figures(base: str, waits: int, samples: int, timeout: float) -> dict[str, Any]:
    with httpx.Client(base_url=base, timeout=60) as client:
        run = client.post("/api/flow_runs/", json={"flow_name": "bench-waits"})
        run.raise_for_status()
        run_id, version = run.json()["id"], run.json()["version"]
    idle, _ = _health(base, samples, timeout)
    held = _HeldWaits(base, run_id, version, waits)
    try:
        deadline = time.monotonic() + 30
        while held.started < waits and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(2.0)  # every wait sent and reaching the server
        loaded, timeouts = _health(base, samples, timeout)
    finally:
        held.close()
    return {"idle": idle, "loaded": loaded, "timeouts": timeouts, "statuses": dict(held.statuses)}


# ------------------------------------------------------------------------ hostile schemas


def nested_schema(levels: int, width: int = 10) -> dict[str, Any]:
    """``levels`` of ``anyOf`` over ``width`` references to the level below."""
    defs: dict[str, Any] = {"L0": {"allOf": [{"type": "integer"}, {"minimum": 0}]}}
    for level in range(1, levels + 1):
        defs[f"L{level}"] = {"anyOf": [{"$ref": f"#/definitions/L{level - 1}"}] * width}
    return {
        "type": "object",
        "properties": {"x": {"$ref": f"#/definitions/L{levels}"}},
        "definitions": defs,
    }


def _timed_422(client: httpx.Client, path: str, body: dict[str, Any]) -> harness.Stats:
    def once() -> None:
        answer = client.post(path, json=body)
        if answer.status_code != 422:
            raise RuntimeError(f"{path}: expected 422, got {answer.status_code}: {answer.text}")

    return harness.measure(once, repeat=SCHEMA_REPEAT, warmup=2)


def _schema_figures(base: str) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    with httpx.Client(base_url=base, timeout=120) as client:
        schema = nested_schema(NESTED_LEVELS)
        body = {"flow_name": "bench", "name": "nested", "parameter_openapi_schema": schema}
        figures["nested_store"] = _timed_422(client, "/api/deployments/", body)
        figures["nested_bytes"] = len(httpx.Request("POST", "/", json=schema).content)
        run_id = _paused_run(client)
        resume = f"/api/flow_runs/{run_id}/resume"
        figures["regex_27"] = _timed_422(client, resume, {"run_input": {"v": "a" * 27 + "!"}})
        long_input = {"run_input": {"v": "a" * 100_000 + "!"}}
        figures["regex_100k"] = _timed_422(client, resume, long_input)
    return figures


def _paused_run(client: httpx.Client) -> str:
    run = client.post("/api/flow_runs/", json={"flow_name": "bench-pause"}).raise_for_status()
    run_id = run.json()["id"]
    schema = {"type": "object", "properties": {"v": BACKTRACKING}, "required": ["v"]}
    client.post(
        f"/api/flow_runs/{run_id}/input", json={"key": "paused-b-schema", "value": schema}
    ).raise_for_status()
    running = {"type": "RUNNING", "name": "Running"}
    client.post(f"/api/flow_runs/{run_id}/set_state", json={"state": running}).raise_for_status()
    keyset = {"schema": "paused-b-schema", "response": "paused-b-response"}
    paused = {
        "type": "PAUSED",
        "name": "Paused",
        "state_details": {"pause_key": "b", "run_input_keyset": keyset},
    }
    client.post(f"/api/flow_runs/{run_id}/pause", json={"state": paused}).raise_for_status()
    return str(run_id)


def _budget_figure() -> harness.Stats:
    """A schema stored before the checks: refused by the check's step budget, in-process."""
    from prefect_lite.api.parameter_checks import check_parameters
    from prefect_lite.exceptions import ValidationError

    schema = nested_schema(8)

    def once() -> None:
        try:
            check_parameters({"x": "not a number"}, schema, "bench")
        except ValidationError:
            return
        raise RuntimeError("the budget did not stop the check")

    return harness.measure(once, repeat=SCHEMA_REPEAT, warmup=2)


# ------------------------------------------------------------------------------- main


@contextlib.contextmanager
def _our_server(repo: Path, tmp: str, name: str) -> Iterator[Server]:
    with _server(repo, Path(tmp) / name) as server:
        yield server


def main(argv: list[str] | None = None) -> list[harness.Row]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--waits", type=int, default=WAITS, help="long polls held at once")
    parser.add_argument("--samples", type=int, default=HEALTH_SAMPLES, help="health requests")
    parser.add_argument("--before", type=Path, help="also measure a server from this checkout")
    parser.add_argument("--prefect", action="store_true", help="Prefect's schema check too")
    args = parser.parse_args(argv if argv is not None else [])
    with tempfile.TemporaryDirectory(prefix="bench-security-") as tmp:
        with _our_server(harness.REPO_DIR, tmp, "ours") as server:
            waits = _waits_figures(server.base, args.waits, args.samples, 60)
            schemas = _schema_figures(server.base)
        before = None
        if args.before is not None:
            with _our_server(args.before.resolve(), tmp, "before") as server:
                before = _waits_figures(server.base, args.waits, BEFORE_SAMPLES, BEFORE_TIMEOUT)
        theirs = _prefect_schema(Path(tmp)) if args.prefect else None
    budget = _budget_figure()
    return _rows(args.waits, waits, before, schemas, budget, theirs)


def _prefect_schema(tmp: Path) -> dict[str, Any] | None:
    if not harness.prefect_available():
        return None
    from bench.bench_api import _prefects

    with _prefects(tmp / "prefect-home") as server:
        return _prefect_nested(server.base)


def _prefect_nested(base: str) -> dict[str, Any]:
    """Prefect's server: the same nested schema on an enforced deployment, one run."""
    levels = 4  # 10**6 would not finish in a bench run
    with httpx.Client(base_url=base, timeout=600) as client:
        flow = client.post("/api/flows/", json={"name": "bench"}).raise_for_status().json()
        deployment = client.post(
            "/api/deployments/",
            json={
                "name": "nested",
                "flow_id": flow["id"],
                "parameter_openapi_schema": nested_schema(levels),
                "enforce_parameter_schema": True,
            },
        )
        stored = deployment.status_code
        began = time.perf_counter()
        answer = client.post(
            f"/api/deployments/{deployment.json()['id']}/create_flow_run",
            json={"parameters": {"x": "not a number"}},
        )
        took = time.perf_counter() - began
    return {"levels": levels, "stored": stored, "run_status": answer.status_code, "ms": took * 1e3}


def _rows(
    count: int,
    waits: dict[str, Any],
    before: dict[str, Any] | None,
    schemas: dict[str, Any],
    budget: harness.Stats,
    theirs: dict[str, Any] | None,
) -> list[harness.Row]:
    ms = 1000.0
    rows: list[harness.Row] = [
        _row("/api/health p50, no waits", waits["idle"].p50_us / ms),
        _row("/api/health p99, no waits", waits["idle"].p99_us / ms),
        _row(f"/api/health p50, {count} waits held", waits["loaded"].p50_us / ms,
             wait_answers=waits["statuses"]),
        _row(f"/api/health p99, {count} waits held", waits["loaded"].p99_us / ms,
             target_ms=50, timed_out=waits["timeouts"]),
    ]  # fmt: skip
    if before is not None:
        rows += [
            _row(f"before: /api/health p50, {count} waits held", before["loaded"].p50_us / ms,
                 wait_answers=before["statuses"]),
            _row(f"before: /api/health max, {count} waits held", before["loaded"].p99_us / ms,
                 timed_out=before["timeouts"], timeout_s=BEFORE_TIMEOUT),
        ]  # fmt: skip
    nested = schemas["nested_store"]
    size = schemas["nested_bytes"]
    rows += [
        _row(f"store nested schema ({NESTED_LEVELS} levels, {size} B) -> 422 p50",
             nested.p50_us / ms, max=nested.p99_us / ms, target_ms=50),
        _row("resume input 'a'*27+'!' vs ^(a+)+$ -> 422 p50", schemas["regex_27"].p50_us / ms,
             max=schemas["regex_27"].p99_us / ms, target_ms=50),
        _row("resume input 'a'*100000+'!' vs ^(a+)+$ -> 422 p50",
             schemas["regex_100k"].p50_us / ms, max=schemas["regex_100k"].p99_us / ms),
        _row("stored 8-level schema at run creation: budget -> 422 p50 (in-process)",
             budget.p50_us / ms, max=budget.p99_us / ms, target_ms=50),
    ]  # fmt: skip
    if theirs is not None:
        rows.append(
            {
                "name": f"Prefect: run from enforced nested schema ({theirs['levels']} levels)",
                "prefect_lite": None,
                "baseline": theirs["ms"],
                "unit": "ms",
                "stored": theirs["stored"],
                "run_status": theirs["run_status"],
            }
        )
    return rows


def _row(name: str, value: float, unit: str = "ms", **extra: Any) -> harness.Row:
    return {"name": name, "prefect_lite": value, "baseline": None, "unit": unit, **extra}


if __name__ == "__main__":
    harness.report(main(sys.argv[1:]), "security")
