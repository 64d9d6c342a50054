"""Caching: what a cache hit costs, against Prefect 3 in the same run.

Rows (the same workload on both sides, ``run_workload``):
- ``cache hit (p50)`` / ``(p90)``: one call of a ``cache_key_fn=task_input_hash`` task
  inside a flow run whose result is already cached: key computed, record looked up,
  result read back from local storage, task run recorded ``Cached``. Target: <= 1 ms.
- ``cache miss + persist (p50)``: the same task with new inputs: it runs, its result is
  written to local storage and its cache record to the store.

prefect_lite uses its embedded Redis in a temporary ``PREFECT_LITE_HOME``; Prefect its
default local API and storage, in a temporary ``PREFECT_HOME``. Console logs go to
/dev/null on both sides.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import harness

HITS = 2000
MISSES = 500
BASELINE_HITS = 300
BASELINE_MISSES = 100


def run_workload(
    flow: Any, task: Any, task_input_hash: Any, hits: int, misses: int
) -> dict[str, Any]:
    """Time cache hits and misses of one cached task inside a flow (either package)."""
    salt = uuid.uuid4().hex  # misses stay misses across benchmark runs
    fresh = itertools.count()

    @task(cache_key_fn=task_input_hash)
    def double(x: Any) -> Any:
        return x * 2

    @flow
    def cache_flow() -> dict[str, Any]:
        double(salt)  # the entry every hit finds
        hit = harness.measure(lambda: double(salt), repeat=hits)
        miss = harness.measure(lambda: double(f"{salt}-{next(fresh)}"), repeat=misses)
        return {
            "hit": hit.as_dict(),
            "miss": miss.as_dict(),
            "last_state": double(salt, return_state=True).name,
        }

    with open(os.devnull, "w") as devnull, contextlib.redirect_stderr(devnull):
        result: dict[str, Any] = cache_flow()
    return result


def main() -> list[harness.Row]:
    home = Path(tempfile.mkdtemp(prefix="bench-cache-"))
    os.environ.pop("PREFECT_LITE_REDIS_URL", None)
    os.environ["PREFECT_LITE_HOME"] = str(home)
    from prefect_lite import flow, task
    from prefect_lite.settings import get_settings, reload_settings
    from prefect_lite.storage.embedded import EmbeddedRedis
    from prefect_lite.tasks import task_input_hash

    reload_settings()
    try:
        ours = run_workload(flow, task, task_input_hash, HITS, MISSES)
    finally:
        EmbeddedRedis(get_settings().home).stop()
        shutil.rmtree(home, ignore_errors=True)
    if ours["last_state"] != "Cached":
        print(f"warning: the last call ended {ours['last_state']}", file=sys.stderr)

    base: dict[str, Any] = {}
    if harness.prefect_available():
        prefect_home = Path(tempfile.mkdtemp(prefix="bench-cache-prefect-"))
        try:
            base = harness.run_in_prefect_venv(
                harness.BENCH_DIR / "baselines" / "prefect_cache.py",
                [str(BASELINE_HITS), str(BASELINE_MISSES)],
                env={"PREFECT_HOME": str(prefect_home)},
            )
        finally:
            shutil.rmtree(prefect_home, ignore_errors=True)
    hit, miss = harness.Stats.from_dict(ours["hit"]), harness.Stats.from_dict(ours["miss"])
    base_hit = harness.Stats.from_dict(base["hit"]) if base else None
    base_miss = harness.Stats.from_dict(base["miss"]) if base else None
    return [
        {
            "name": "cache hit (p50)",
            "prefect_lite": hit.p50_us,
            "baseline": base_hit.p50_us if base_hit else None,
            "unit": "us",
            "target_us": 1000,
            "hit": ours["hit"],
            "baseline_hit": base.get("hit"),
            "baseline_last_state": base.get("last_state"),
        },
        {
            "name": "cache hit (p90)",
            "prefect_lite": hit.p90_us,
            "baseline": base_hit.p90_us if base_hit else None,
            "unit": "us",
        },
        {
            "name": "cache miss + persist (p50)",
            "prefect_lite": miss.p50_us,
            "baseline": base_miss.p50_us if base_miss else None,
            "unit": "us",
            "miss": ours["miss"],
            "baseline_miss": base.get("miss"),
        },
    ]


if __name__ == "__main__":
    harness.report(main(), "cache")
