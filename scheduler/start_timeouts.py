"""Start-timeout step: a run not started ``start_timeout_seconds`` after its scheduled time
ends ``TimedOut`` (a FAILED state), saying why.

Late runs otherwise wait forever (as in Prefect). A deployment may set
``start_timeout_seconds``; each tick this step reads the not-started runs whose scheduled
time is older than the smallest such timeout (from the due and admitted sets, both scored
by scheduled time), and proposes ``TimedOut`` to those past their own deployment's
deadline, with the version it read (a run claimed meanwhile is left alone). The
proposal releases any slot the run held. The scheduler ticks at least every
``loop_seconds`` (1 s), which bounds how late the deadline is enforced. Deployments'
timeouts are re-read every ``REFRESH_SECONDS``.
"""

from __future__ import annotations

import time
from datetime import datetime

from prefect_lite.states import State, StateType, TimedOut
from prefect_lite.storage import deployments, keys, runs, scheduling

REFRESH_SECONDS = 5.0
BATCH = 2000


def timed_out(timeout: float) -> State:
    return TimedOut(
        message=(
            f"Not started within its start timeout ({timeout:g} s after its scheduled "
            "time): no worker took it (none online, a paused pool or queue, or limits "
            "full)."
        ),
    )


class StartTimeouts:
    def __init__(self) -> None:
        self._timeouts: dict[str, float] = {}
        self._read_at = float("-inf")

    def expire(self, now: datetime) -> int:
        """End the runs past their start deadline; how many."""
        if time.monotonic() - self._read_at >= REFRESH_SECONDS:
            self._timeouts = {
                str(d.id): float(d.start_timeout_seconds)
                for d in deployments.list_deployments()
                if d.start_timeout_seconds
            }
            self._read_at = time.monotonic()
        if not self._timeouts:
            return 0
        at = now.timestamp()
        cutoff = at - min(self._timeouts.values())
        scheduled: dict[str, float] = {}
        for key in (keys.scheduled_due(), keys.scheduled_admitted()):
            scheduled.update(scheduling.scores_between(key, None, cutoff, BATCH))
        if not scheduled:
            return 0
        ids = list(scheduled)
        owners = {f.run_id: str(f.record.get("deployment_id")) for f in scheduling.read_facts(ids)}
        batch = runs.RunBatch()
        for rid, typ, _name, version, _state, _adm in scheduling.read_state_facts(ids):
            timeout = self._timeouts.get(owners.get(rid, ""))
            if typ != StateType.SCHEDULED.value or timeout is None:
                continue
            if at >= scheduled[rid] + timeout:
                state = timed_out(timeout)
                proposal = runs.Proposal(state=state, expected_version=version, force=True)
                batch.propose("flow", rid, proposal)
        results = batch.execute() if len(batch) else []
        return sum(1 for r in results if not isinstance(r, Exception) and r[0] == "ACCEPT")
