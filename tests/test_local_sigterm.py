"""A flow run in a plain Python process stopped by a signal ends settled, not Running.

Real processes and real signals: ``kill``/``timeout``/``docker stop`` send SIGTERM, Ctrl-C
sends SIGINT.
"""

from __future__ import annotations

import signal
from typing import Any

import pytest

from prefect_lite.client import get_client
from tests.helpers import spawn_python, wait_for

LOCAL_FLOW = """
import time
from prefect_lite import flow

@flow(name="stays-up")
def stays_up() -> None:
    time.sleep(300)

stays_up()
"""


def _running_run(client: Any) -> Any:
    found = client.read_flow_runs(flow_name="stays-up", states=["RUNNING"])
    return found[0] if found else None


@pytest.mark.parametrize(
    ("signum", "words"),
    [
        (signal.SIGTERM, "received SIGTERM"),
        (signal.SIGINT, "aborted by an interrupt signal"),  # unchanged: KeyboardInterrupt
    ],
)
def test_a_signalled_local_flow_run_ends_crashed_naming_why(signum: int, words: str) -> None:
    proc = spawn_python(LOCAL_FLOW)
    try:
        with get_client(sync_client=True) as client:
            run = wait_for(lambda: _running_run(client), timeout=60, message="never ran")
            proc.send_signal(signum)
            _out, err = proc.communicate(timeout=20)
            assert proc.returncode != 0
            done = client.read_flow_run(run.id)
        assert done.state_name == "Crashed", err[-2000:]
        assert words in (done.state.message or "")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
