"""The scheduler: plan scheduled runs, promote due ones, mark late runs and reap lost leases.

``Scheduler().tick(now)`` runs the steps once; ``Scheduler().run(stop_event)`` loops
(``prefect-lite scheduler start``, or in-process in ``prefect-lite server start``). See
``scheduler.service``.

Any number of replicas may run against one Redis without a lock: run ids derive from
(deployment id, nominal time) and are created if absent; planning claims deployments with
a lease on their score; admission, deletion of stale runs and late marking each re-check
the run inside one atomic step (a Lua script or a versioned state proposal).
"""

from scheduler.config import SchedulerConfig
from scheduler.service import Scheduler, TickReport, register_hook

__all__ = ["Scheduler", "SchedulerConfig", "TickReport", "register_hook"]
