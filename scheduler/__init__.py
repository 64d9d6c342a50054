"""The scheduler: plan scheduled runs, promote due ones, mark late runs and reap lost leases.

``Scheduler().tick(now)`` runs the steps once; ``Scheduler().run(stop_event)`` loops
(``prefect-lite scheduler start``). See ``scheduler.service``.
"""

from scheduler.config import SchedulerConfig
from scheduler.service import Scheduler, TickReport, register_hook

__all__ = ["Scheduler", "SchedulerConfig", "TickReport", "register_hook"]
