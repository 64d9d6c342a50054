"""Baseline: Prefect's run logger inside a flow (console plus its API log worker)."""

from __future__ import annotations

import sys
import time

import harness
from prefect import flow, get_run_logger
from prefect.logging.handlers import APILogHandler


@flow
def logging_flow(repeat: int, burst: int) -> dict[str, object]:
    logger = get_run_logger()
    counter = iter(range(10**9))
    call = harness.measure(lambda: logger.info("line %d", next(counter)), repeat=repeat)
    APILogHandler().flush()
    started = time.perf_counter()
    for i in range(burst):
        logger.info("burst %d", i)
    emitted = time.perf_counter()
    APILogHandler().flush()
    stored = time.perf_counter()
    return {
        "call": call.as_dict(),
        "burst_emit_s": emitted - started,
        "burst_stored_s": stored - started,
    }


def main() -> None:
    repeat = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    burst = int(sys.argv[2]) if len(sys.argv) > 2 else 10_000
    harness.emit(logging_flow(repeat, burst))


if __name__ == "__main__":
    main()
