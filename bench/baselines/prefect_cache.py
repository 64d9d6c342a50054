"""Baseline: bench_cache's workload under Prefect 3 (default local API and storage)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repo: `bench` package

import harness
from prefect import flow, task
from prefect.tasks import task_input_hash

from bench.bench_cache import run_workload


def main() -> None:
    hits = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    misses = int(sys.argv[2]) if len(sys.argv) > 2 else 100
    harness.emit(run_workload(flow, task, task_input_hash, hits, misses))


if __name__ == "__main__":
    main()
