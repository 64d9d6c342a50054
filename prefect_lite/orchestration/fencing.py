"""The fencing rule: when a lease holder must stop, and when a reaper may take over.

A worker alone cannot tell "Redis is down for everyone" from "I am cut off"; the reaper
can, from the store's identity and its own connection history. So the rule has two sides,
with L = ``lease_seconds`` (6 s), T = ``store_outage_seconds`` (30 s, the outage
tolerance):

- **The holder fences itself.** A process holding a lease renews it every L/3. If no
  renewal has succeeded for ``fence_after`` = T + L (36 s) since the last one that did,
  it stops the run's process (SIGKILL): it may be cut off, and someone may take the run.
- **A silent holder is taken over only once it must have stopped**: not before its last
  renewal + ``fence_after`` + ``FENCE_MARGIN_SECONDS`` (5 s: the holder's fence check
  period, the kill, clock skew between machines). The lease's expiry is its last renewal
  + L, so that is ``expiry - L + fence_after + margin`` (41 s after the last renewal).
- **A gone holder is settled at once.** Every connection of a holder carries its name
  (``CLIENT SETNAME``); the kernel closes a dead process's sockets and Redis drops them.
  A holder with no connection left for ``GONE_CONFIRM_SECONDS`` is gone: its runs are
  taken over without waiting for the lease to expire (its run processes, which share
  the name, are gone too).
- **An outage changes no outcome.** After the store restarts (new run id) or after the
  reaper itself lost contact for longer than ``contact_gap``, nothing is taken over for a
  grace period of L: holders reconnect and renew within L/3. A holder renewing within T
  of its last renewal never fenced, so an outage shorter than T changes nothing.

Past the tolerance (an outage longer than T), holders stop their runs; once the store is
back each such run ends CRASHED (or AwaitingRetry), said by its holder or by the reaper.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from prefect_lite.settings import Settings, get_settings

FENCE_MARGIN_SECONDS = 5.0
GONE_CONFIRM_SECONDS = 1.0
WATCH_INTERVAL_SECONDS = 0.5  # how often the reaper looks at who is connected


def fence_after(settings: Settings | None = None) -> float:
    """A holder stops its run after this long without a successful renewal."""
    s = settings or get_settings()
    return s.store_outage_seconds + s.lease_seconds


def silent_takeover_delay(settings: Settings | None = None) -> float:
    """How long past its expiry a silent holder's lease is left alone."""
    s = settings or get_settings()
    return fence_after(s) + FENCE_MARGIN_SECONDS - s.lease_seconds


def grace_seconds(settings: Settings | None = None) -> float:
    """After the store (or the reaper's contact with it) comes back: no take-over."""
    return (settings or get_settings()).lease_seconds


def contact_gap(settings: Settings | None = None) -> float:
    """A pause this long between the reaper's contacts with the store counts as an outage."""
    s = settings or get_settings()
    return max(2.0, s.reaper_interval_seconds * 2, s.socket_timeout_seconds)


@dataclass
class StoreWatch:
    """The reaper's view of the store: since when it has been continuously reachable.

    ``observe(identity)`` after every successful contact; ``lost()`` after a failed one.
    ``may_take_over(now)`` is False during the grace period after any outage it saw.
    """

    run_id: str | None = None
    healthy_since: float = 0.0
    last_contact: float | None = None  # monotonic
    outages: int = 0
    _down: bool = field(default=False, repr=False)

    def observe(self, run_id: str, started_at: float, now: float) -> bool:
        """Record a contact; True when it ends an outage (a restart or a gap)."""
        mono = time.monotonic()
        restarted = self.run_id is not None and run_id != self.run_id
        gap = self.last_contact is not None and mono - self.last_contact > contact_gap()
        back = restarted or gap or self._down
        if self.run_id is None:
            self.healthy_since = started_at  # a fresh reaper trusts the store's own uptime
        if back:
            self.healthy_since = now
            self.outages += 1
        self.healthy_since = max(self.healthy_since, started_at)
        self.run_id, self.last_contact, self._down = run_id, mono, False
        return back

    def lost(self) -> None:
        self._down = True

    def may_take_over(self, now: float) -> bool:
        return not self._down and now >= self.healthy_since + grace_seconds()
