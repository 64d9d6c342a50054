"""Baseline: bench_engine's workloads under Prefect 3 (its default local API)."""

from __future__ import annotations

import contextlib
import os
import sys

import harness
from prefect import flow, task

from bench.bench_engine import run_workload


def main() -> None:
    kind = sys.argv[1] if len(sys.argv) > 1 else "tasks"
    repeats = 3  # Prefect's runs are long; three samples keep the baseline under minutes
    with open(os.devnull, "w") as devnull, contextlib.redirect_stderr(devnull):
        result = run_workload(kind, flow, task, repeats=repeats)
    harness.emit(result)


if __name__ == "__main__":
    main()
