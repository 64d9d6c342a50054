"""When a schedule fires: cron, interval and rrule occurrences, pure functions of time.

A schedule is a ``schemas.Schedule`` record (exactly one of ``cron``, ``interval``,
``rrule``). Everything here is pure: no I/O, no clock. Callers pass the window.

Time zones and daylight saving time
-----------------------------------
Cron and rrule schedules are wall-clock rules in their IANA ``timezone``; they are expanded
in local wall-clock time and each local time is then mapped to one UTC instant:

* **skipped hour** (spring forward): a local time that does not exist runs **once, at the
  next valid instant** - the moment the clocks jump (02:30 in New York on the spring day
  runs at 03:00 EDT). Several skipped times collapse into that one run.
* **repeated hour** (fall back): a local time that happens twice runs **once**, at its
  first occurrence (01:30 EDT, not again at 01:30 EST).

Interval schedules keep a **fixed period in absolute time**: ``anchor + k * interval``. The
time zone only says how a naive ``anchor_date`` is read, so a daily interval anchored at
midnight in winter fires at 01:00 local in summer.

Catch-up after downtime (``Schedule.catchup``) is decided by ``keep_missed``: ``skip`` runs
nothing that was missed, ``latest`` only the most recent missed occurrence, ``all`` the most
recent ``max_catchup`` ones.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadDateError, croniter
from dateutil.rrule import rrule, rruleset, rrulestr

from prefect_lite import _time
from prefect_lite.exceptions import ValidationError
from prefect_lite.schemas import Schedule

DEFAULT_ANCHOR = datetime(2020, 1, 1)  # naive: read in the schedule's zone
MAX_DST_SHIFT = timedelta(hours=3)  # larger than any real UTC offset change
_ONE_US = timedelta(microseconds=1)


# ----------------------------------------------------------------------------- building


def Cron(cron: str, timezone: str | None = None, day_or: bool = True, **fields: Any) -> Schedule:
    """A cron schedule (``"0 9 * * 1-5"``) in ``timezone`` (IANA name, default UTC)."""
    return checked(Schedule(cron=cron, timezone=timezone or "UTC", day_or=day_or, **fields))


def Interval(
    interval: float | timedelta,
    anchor_date: datetime | str | None = None,
    timezone: str | None = None,
    **fields: Any,
) -> Schedule:
    """Every ``interval`` (seconds or timedelta) from ``anchor_date`` (default 2020-01-01)."""
    seconds = interval.total_seconds() if isinstance(interval, timedelta) else interval
    anchor = datetime.fromisoformat(anchor_date) if isinstance(anchor_date, str) else anchor_date
    return checked(
        Schedule(interval=seconds, anchor_date=anchor, timezone=timezone or "UTC", **fields)
    )


def RRule(rrule: str, timezone: str | None = None, **fields: Any) -> Schedule:
    """An iCalendar recurrence rule (``"FREQ=WEEKLY;BYDAY=MO;BYHOUR=9"``)."""
    zone = timezone or _rule_tzid(rrule) or "UTC"
    return checked(Schedule(rrule=rrule, timezone=zone, **fields))


def construct_schedule(
    cron: str | None = None,
    interval: float | timedelta | None = None,
    rrule: str | None = None,
    timezone: str | None = None,
    anchor_date: datetime | str | None = None,
    **fields: Any,
) -> Schedule:
    """One schedule from exactly one of ``cron``, ``interval``, ``rrule``."""
    options = (("cron", cron), ("interval", interval), ("rrule", rrule))
    given = [name for name, value in options if value is not None]
    if len(given) != 1:
        raise ValidationError("give exactly one of cron, interval or rrule for a schedule")
    if cron is not None:
        return Cron(cron, timezone=timezone, **fields)
    if interval is not None:
        return Interval(interval, anchor_date=anchor_date, timezone=timezone, **fields)
    assert rrule is not None
    return RRule(rrule, timezone=timezone, **fields)


# ----------------------------------------------------------------------------- checking


def zone(name: str) -> ZoneInfo:
    """The IANA time zone ``name``; ``ValidationError`` if it is unknown."""
    try:
        return _zone(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise ValidationError(f"unknown time zone {name!r} (use an IANA name such as "
                              "'Europe/Berlin' or 'UTC')") from None  # fmt: skip


@lru_cache(maxsize=512)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def checked(schedule: Schedule) -> Schedule:
    """``schedule`` if it is well formed, else ``ValidationError`` saying what is wrong."""
    kinds = [k for k in ("cron", "interval", "rrule") if getattr(schedule, k) is not None]
    if len(kinds) != 1:
        raise ValidationError(
            "a schedule needs exactly one of cron, interval or rrule"
            + (f" (got {', '.join(kinds)})" if kinds else "")
        )
    zone(schedule.timezone)
    if schedule.max_catchup < 1:
        raise ValidationError(f"max_catchup must be at least 1, not {schedule.max_catchup}")
    if schedule.jitter_seconds < 0:
        raise ValidationError(f"jitter_seconds must be >= 0, not {schedule.jitter_seconds}")
    if schedule.cron is not None:
        if not croniter.is_valid(schedule.cron):
            raise ValidationError(f"malformed cron expression {schedule.cron!r}")
    elif schedule.interval is not None:
        if not schedule.interval > 0:
            raise ValidationError(f"interval must be a positive number of seconds, "
                                  f"not {schedule.interval!r}")  # fmt: skip
    else:
        try:
            _parsed_rrule(str(schedule.rrule), schedule.timezone, _anchor_key(schedule))
        except (ValueError, TypeError, KeyError) as exc:
            raise ValidationError(f"malformed rrule {schedule.rrule!r}: {exc}") from None
    return schedule


def describe(schedule: Schedule) -> str:
    """One line for tables: ``cron '0 9 * * *' (Europe/Berlin)``."""
    if schedule.cron is not None:
        what = f"cron {schedule.cron!r}"
    elif schedule.interval is not None:
        what = f"every {_seconds_text(schedule.interval)}"
    else:
        what = f"rrule {schedule.rrule!r}"
    return f"{what} ({schedule.timezone})"


def _seconds_text(seconds: float) -> str:
    text = f"{seconds:g}"
    return f"{text} second" + ("" if seconds == 1 else "s")


# ----------------------------------------------------------------------------- occurrences


def occurrences(
    schedule: Schedule,
    start: datetime,
    end: datetime | None = None,
    limit: int | None = None,
) -> list[datetime]:
    """Fire times ``t`` with ``start <= t < end`` (UTC, ascending, unique), at most ``limit``.

    With neither ``end`` nor ``limit`` the answer would be unbounded: one is required.
    """
    if end is None and limit is None:
        raise ValueError("occurrences() needs an end or a limit")
    start = _time.ensure_utc(start)
    stop = _time.ensure_utc(end) if end is not None else None
    if limit is not None and limit <= 0:
        return []
    if schedule.interval is not None:
        return _expand(schedule, start, stop, limit)
    # Many deployments share a rule and are planned at the same instant: expand it once.
    return list(_expand_rule(_rule_key(schedule), start, stop, limit))


def _rule_key(schedule: Schedule) -> tuple[str | None, str | None, str, bool, str]:
    return schedule.cron, schedule.rrule, schedule.timezone, schedule.day_or, _anchor_key(schedule)


@lru_cache(maxsize=256)
def _expand_rule(
    key: tuple[str | None, str | None, str, bool, str],
    start: datetime,
    stop: datetime | None,
    limit: int | None,
) -> tuple[datetime, ...]:
    cron, rrule_text, tz_name, day_or, anchor = key
    schedule = Schedule(
        cron=cron,
        rrule=rrule_text,
        timezone=tz_name,
        day_or=day_or,
        anchor_date=datetime.fromisoformat(anchor) if anchor else None,
    )
    return tuple(_expand(schedule, start, stop, limit))


def _expand(
    schedule: Schedule, start: datetime, stop: datetime | None, limit: int | None
) -> list[datetime]:
    out: list[datetime] = []
    for when in _forward(schedule, start):
        if stop is not None and when >= stop:
            break
        out.append(when)
        if limit is not None and len(out) >= limit:
            break
    return out


def next_times(schedule: Schedule, after: datetime, count: int) -> list[datetime]:
    """The next ``count`` fire times at or after ``after``."""
    return occurrences(schedule, after, limit=count)


def last_occurrences(
    schedule: Schedule, start: datetime, end: datetime, count: int
) -> list[datetime]:
    """The last ``count`` fire times in ``[start, end)``, ascending."""
    start, end = _time.ensure_utc(start), _time.ensure_utc(end)
    if count <= 0 or end <= start:
        return []
    if schedule.interval is not None:
        first = _interval_index(schedule, start)
        last = _interval_index(schedule, end) - 1
        lo = max(first, last - count + 1)
        return [_interval_time(schedule, k) for k in range(lo, last + 1)]
    found: list[datetime] = []
    for when in _backward(schedule, end):
        if when < start:
            break
        found.append(when)
        if len(found) >= count:
            break
    found.reverse()
    return found


def keep_missed(schedule: Schedule, when: datetime, cutoff: datetime) -> bool:
    """Whether a run missed at ``when`` (``when <= cutoff``) runs under the catch-up policy.

    ``cutoff`` is the newest time that counts as missed. ``latest`` keeps a run when no
    later occurrence is also missed; ``all`` keeps the ``max_catchup`` most recent ones.
    """
    if schedule.catchup == "skip":
        return False
    allowed = 1 if schedule.catchup == "latest" else schedule.max_catchup
    later = occurrences(schedule, when + _ONE_US, cutoff + _ONE_US, limit=allowed)
    return len(later) < allowed


def jitter_offset(run_id: uuid.UUID, max_seconds: float) -> float:
    """A delay in ``[0, max_seconds]`` derived from the run id alone (same on every replica)."""
    if max_seconds <= 0:
        return 0.0
    digest = hashlib.sha256(run_id.bytes).digest()
    fraction = int.from_bytes(digest[:8], "big") / float(1 << 64)
    return round(fraction * max_seconds, 3)


# ----------------------------------------------------------------------------- expansion


def _forward(schedule: Schedule, start: datetime) -> Iterator[datetime]:
    if schedule.interval is not None:
        k = _interval_index(schedule, start)
        while True:
            yield _interval_time(schedule, k)
            k += 1
    tz = zone(schedule.timezone)
    local_start = start.astimezone(tz).replace(tzinfo=None)
    last: datetime | None = None
    for naive in _local_forward(schedule, local_start):
        when = resolve_local(naive, tz)
        if when < start or (last is not None and when <= last):
            continue  # repeated-hour second pass, or collapsed skipped-hour times
        last = when
        yield when


def _backward(schedule: Schedule, end: datetime) -> Iterator[datetime]:
    """Fire times strictly before ``end``, newest first (cron and rrule)."""
    tz = zone(schedule.timezone)
    # Start past any DST fold: local times after ``end`` can map to instants before it.
    local_end = (end + MAX_DST_SHIFT).astimezone(tz).replace(tzinfo=None)
    last: datetime | None = None
    for naive in _local_backward(schedule, local_end):
        when = resolve_local(naive, tz)
        if when >= end or (last is not None and when >= last):
            continue
        last = when
        yield when


def _local_forward(schedule: Schedule, local_start: datetime) -> Iterator[datetime]:
    if schedule.cron is not None:
        it = croniter(schedule.cron, local_start - _ONE_US, day_or=schedule.day_or)
        while True:
            try:
                yield it.get_next(datetime)
            except CroniterBadDateError:
                return
    rule = _parsed_rrule(str(schedule.rrule), schedule.timezone, _anchor_key(schedule))
    yield from rule.xafter(local_start, inc=True)


def _local_backward(schedule: Schedule, local_end: datetime) -> Iterator[datetime]:
    if schedule.cron is not None:
        it = croniter(schedule.cron, local_end, day_or=schedule.day_or)
        while True:
            try:
                yield it.get_prev(datetime)
            except CroniterBadDateError:
                return
    rule = _parsed_rrule(str(schedule.rrule), schedule.timezone, _anchor_key(schedule))
    cursor: datetime | None = rule.before(local_end)
    while cursor is not None:
        yield cursor
        cursor = rule.before(cursor)


def resolve_local(naive: datetime, tz: ZoneInfo) -> datetime:
    """The UTC instant of local wall time ``naive`` under the DST policy above."""
    first = naive.replace(tzinfo=tz, fold=0).astimezone(UTC)
    if first.astimezone(tz).replace(tzinfo=None) == naive:
        return first  # exists; for a repeated time this is its first occurrence
    # Skipped: the clocks jumped between these two readings; find the jump.
    lo = naive.replace(tzinfo=tz, fold=1).astimezone(UTC)
    hi = first
    lo_s, hi_s = int(lo.timestamp()), int(hi.timestamp()) + 1
    while lo_s < hi_s:
        mid = (lo_s + hi_s) // 2
        if _time.from_timestamp(mid).astimezone(tz).replace(tzinfo=None) >= naive:
            hi_s = mid
        else:
            lo_s = mid + 1
    return _time.from_timestamp(lo_s)


# ----------------------------------------------------------------------------- intervals


def _anchor_utc(schedule: Schedule) -> datetime:
    anchor = schedule.anchor_date or DEFAULT_ANCHOR
    if anchor.tzinfo is None:
        return resolve_local(anchor, zone(schedule.timezone))
    return anchor.astimezone(UTC)


def _period_us(schedule: Schedule) -> int:
    return max(1, round(float(schedule.interval or 0) * 1_000_000))


def _interval_index(schedule: Schedule, at: datetime) -> int:
    """Smallest k with ``anchor + k * interval >= at``."""
    elapsed = (at - _anchor_utc(schedule)) // _ONE_US
    period = _period_us(schedule)
    return -((-elapsed) // period)


def _interval_time(schedule: Schedule, k: int) -> datetime:
    return _anchor_utc(schedule) + timedelta(microseconds=k * _period_us(schedule))


# ----------------------------------------------------------------------------- rrules

_DTSTART = re.compile(r"^DTSTART(?:;TZID=([^:;]+))?:(\d{8}(?:T\d{6})?)(Z?)$", re.IGNORECASE)
_UNTIL = re.compile(r"UNTIL=(\d{8}(?:T\d{6})?)Z", re.IGNORECASE)


def _rule_tzid(text: str) -> str | None:
    for line in text.strip().splitlines():
        match = _DTSTART.match(line.strip())
        if match and match.group(1):
            return match.group(1)
    return None


def _anchor_key(schedule: Schedule) -> str:
    anchor = schedule.anchor_date
    if anchor is None:
        return ""
    if anchor.tzinfo is not None:
        anchor = anchor.astimezone(zone(schedule.timezone)).replace(tzinfo=None)
    return anchor.isoformat()


def _parse_stamp(text: str) -> datetime:
    fmt = "%Y%m%dT%H%M%S" if "T" in text.upper() else "%Y%m%d"
    return datetime.strptime(text.upper(), fmt)


@lru_cache(maxsize=1024)
def _parsed_rrule(text: str, tz_name: str, anchor: str) -> rrule | rruleset:
    """The rule expanded in naive local time of ``tz_name`` (UTC stamps converted to it)."""
    tz = zone(tz_name)

    def to_local(stamp: str) -> str:
        utc = _parse_stamp(stamp).replace(tzinfo=UTC)
        return utc.astimezone(tz).strftime("%Y%m%dT%H%M%S")

    lines: list[str] = []
    dtstart: datetime | None = None
    for raw in text.strip().splitlines():
        line = raw.strip()
        match = _DTSTART.match(line)
        if match:
            tzid, stamp, utc_mark = match.groups()
            if tzid and tzid != tz_name:
                raise ValueError(f"DTSTART's TZID {tzid} differs from the timezone {tz_name}")
            dtstart = _parse_stamp(to_local(stamp) if utc_mark else stamp)
            continue
        lines.append(_UNTIL.sub(lambda m: "UNTIL=" + to_local(m.group(1)), line))
    if not lines:
        raise ValueError("no RRULE in the text")
    if dtstart is None:
        dtstart = datetime.fromisoformat(anchor) if anchor else DEFAULT_ANCHOR
    return rrulestr("\n".join(lines), dtstart=dtstart, cache=True, forceset=True)
