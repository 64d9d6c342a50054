"""propose_state: one Lua round trip, measured against a raw SET and against Prefect.

Rows:
- ``propose_state vs raw SET``: ``storage.runs.propose`` (transition table, version and
  lease checks, history, indexes) against a redis-py ``SET`` on the same connection and
  server. The ratio is the whole cost of a state change in units of the cheapest command.
- ``round trips per proposal``: commands the server counted per proposal (INFO
  commandstats), against 1 for the SET.
- ``client.set_flow_run_state vs Prefect``: the public client call against Prefect's own
  ``set_flow_run_state`` on its default local API, same machine, same run.

prefect_lite uses its embedded Redis in a temporary PREFECT_LITE_HOME (stopped at the end).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from bench import harness

REPEAT = 3000


def _commands(r) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    """(EVALSHA calls, all commands incl. those run inside scripts) the server counted."""
    stats = r.info("commandstats")
    return int(stats["cmdstat_evalsha"]["calls"]), sum(int(v["calls"]) for v in stats.values())


def main() -> list[harness.Row]:
    home = Path(tempfile.mkdtemp(prefix="bench-propose-"))
    os.environ.pop("PREFECT_LITE_REDIS_URL", None)
    os.environ["PREFECT_LITE_HOME"] = str(home)
    from prefect_lite.client import get_client
    from prefect_lite.settings import get_settings, reload_settings
    from prefect_lite.states import Pending, Running
    from prefect_lite.storage import runs
    from prefect_lite.storage.connection import get_redis
    from prefect_lite.storage.embedded import EmbeddedRedis

    reload_settings()
    try:
        client = get_client(sync_client=True)
        run = client.create_flow_run("bench", state=Pending())
        r = get_redis()
        state = Running()
        proposal = runs.Proposal(state=state, force=True)
        set_stats = harness.measure(lambda: r.set("bench:x", "y"), repeat=REPEAT, warmup=200)
        propose_stats = harness.measure(
            lambda: runs.propose("flow", run.id, proposal), repeat=REPEAT, warmup=200
        )
        evals_before, all_before = _commands(r)
        for _ in range(100):
            runs.propose("flow", run.id, proposal)
        evals_after, all_after = _commands(r)
        per_call = (evals_after - evals_before) / 100
        inside_script = (all_after - all_before - 1) / 100 - per_call  # minus the INFO call
        client_stats = harness.measure(
            lambda: client.set_flow_run_state(run.id, state, force=True),
            repeat=REPEAT,
            warmup=200,
        )
    finally:
        EmbeddedRedis(get_settings().home).stop()
        shutil.rmtree(home, ignore_errors=True)

    baseline = None
    if harness.prefect_available():
        out = harness.run_in_prefect_venv(
            harness.BENCH_DIR / "baselines" / "prefect_set_state.py", ["300"]
        )
        baseline = harness.Stats.from_dict(out["set_state"]).p50_us
    return [
        {
            "name": "propose_state vs raw SET (p50)",
            "prefect_lite": propose_stats.p50_us,
            "baseline": set_stats.p50_us,
            "unit": "us",
            "propose": propose_stats.as_dict(),
            "set": set_stats.as_dict(),
        },
        {
            "name": "round trips per proposal vs SET",
            "prefect_lite": per_call,
            "baseline": 1.0,
            "unit": "RTs",
            "commands_inside_script": inside_script,
        },
        {
            "name": "client.set_flow_run_state vs Prefect (p50)",
            "prefect_lite": client_stats.p50_us,
            "baseline": baseline,
            "unit": "us",
            "client": client_stats.as_dict(),
        },
    ]


if __name__ == "__main__":
    harness.report(main(), "propose_state")
