"""Run logging: the cost of one log call, and of getting a burst of records into the store.

Rows:
- ``run logger call (p50)``: ``get_run_logger().info(...)`` inside a flow run: format,
  console line, queue for the store. Measured against Prefect's run logger in a flow.
- ``10k records emitted``: wall time of 10,000 calls in a row (the caller's cost).
- ``10k records stored``: the same burst until ``flush_logs()`` says all are in the store
  (Prefect: until ``APILogHandler.flush()`` returns).

Console output goes to /dev/null on our side and to a pipe on Prefect's, so terminals do
not set the pace. prefect_lite uses its embedded Redis in a temporary PREFECT_LITE_HOME.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import harness

REPEAT = 2000
BURST = 10_000


def main() -> list[harness.Row]:
    home = Path(tempfile.mkdtemp(prefix="bench-logging-"))
    os.environ.pop("PREFECT_LITE_REDIS_URL", None)
    os.environ["PREFECT_LITE_HOME"] = str(home)
    from prefect_lite.client import get_client
    from prefect_lite.context import FlowRunContext
    from prefect_lite.logging import flush_logs, get_run_logger
    from prefect_lite.settings import get_settings, reload_settings
    from prefect_lite.storage.embedded import EmbeddedRedis

    reload_settings()
    try:
        client = get_client(sync_client=True)
        run = client.create_flow_run("bench-logging")
        with (
            open(os.devnull, "w") as devnull,
            contextlib.redirect_stderr(devnull),
            FlowRunContext(flow_run=run),
        ):
            logger = get_run_logger()
            counter = itertools.count()
            call = harness.measure(lambda: logger.info("line %d", next(counter)), repeat=REPEAT)
            flush_logs(timeout=60)
            started = time.perf_counter()
            for i in range(BURST):
                logger.info("burst %d", i)
            emitted = time.perf_counter()
            flush_logs(timeout=60)
            stored = time.perf_counter()
        count = _count_logs(client, run.id)
        expected = REPEAT + REPEAT // 10 + BURST
        if count != expected:
            print(f"warning: {count} records stored, expected {expected}", file=sys.stderr)
    finally:
        EmbeddedRedis(get_settings().home).stop()
        shutil.rmtree(home, ignore_errors=True)

    baseline: dict[str, object] = {}
    if harness.prefect_available():
        baseline = harness.run_in_prefect_venv(
            harness.BENCH_DIR / "baselines" / "prefect_logging.py", [str(REPEAT), str(BURST)]
        )
    base_call = baseline.get("call")
    return [
        {
            "name": "run logger call (p50)",
            "prefect_lite": call.p50_us,
            "baseline": harness.Stats.from_dict(base_call).p50_us  # type: ignore[arg-type]
            if base_call
            else None,
            "unit": "us",
            "call": call.as_dict(),
        },
        {
            "name": f"{BURST // 1000}k records emitted",
            "prefect_lite": (emitted - started) * 1000,
            "baseline": _ms(baseline.get("burst_emit_s")),
            "unit": "ms",
        },
        {
            "name": f"{BURST // 1000}k records stored",
            "prefect_lite": (stored - started) * 1000,
            "baseline": _ms(baseline.get("burst_stored_s")),
            "unit": "ms",
            "stored": count,
        },
    ]


def _ms(seconds: object) -> float | None:
    return float(seconds) * 1000 if isinstance(seconds, int | float) else None


def _count_logs(client: Any, run_id: Any, page: int = 10_000) -> int:
    """Every stored record of the run, read a page (the API's largest limit) at a time."""
    count = 0
    while True:
        found = len(client.read_logs(run_id, offset=count, limit=page))
        count += found
        if found < page:
            return count


if __name__ == "__main__":
    harness.report(main(), "logging")
