"""Baseline: Prefect's own set_flow_run_state round trip (its default local API)."""

from __future__ import annotations

import sys

import harness
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.states import Running


@flow
def noop() -> None:
    pass


def main() -> None:
    repeat = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    with get_client(sync_client=True) as client:
        run = client.create_flow_run(noop)
        stats = harness.measure(
            lambda: client.set_flow_run_state(run.id, Running(), force=True),
            repeat=repeat,
            warmup=20,
        )
    harness.emit({"set_state": stats.as_dict()})


if __name__ == "__main__":
    main()
