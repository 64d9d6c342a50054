"""Schedules are pure: occurrences, the DST policy, catch-up, jitter and bad input."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from prefect_lite import schedules
from prefect_lite.exceptions import ValidationError
from prefect_lite.schedules import Cron, Interval, RRule
from prefect_lite.schemas import Schedule

TZID_RULE = "DTSTART;TZID=Europe/Berlin:20240101T000000\nRRULE:FREQ=DAILY"


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


# (schedule, window start, window end, expected UTC fire times)
DST_TABLE = [
    pytest.param(
        Cron("30 2 * * *", timezone="America/New_York"),
        utc(2024, 3, 9), utc(2024, 3, 12),
        [utc(2024, 3, 9, 7, 30), utc(2024, 3, 10, 7, 0), utc(2024, 3, 11, 6, 30)],
        id="new-york-spring-skipped-time-runs-at-the-jump",
    ),
    pytest.param(
        Cron("0 * * * *", timezone="America/New_York"),
        utc(2024, 3, 10, 5), utc(2024, 3, 10, 9),
        [utc(2024, 3, 10, 5), utc(2024, 3, 10, 6), utc(2024, 3, 10, 7), utc(2024, 3, 10, 8)],
        id="new-york-spring-hourly-02-and-03-collapse",
    ),
    pytest.param(
        Cron("*/30 * * * *", timezone="America/New_York"),
        utc(2024, 3, 10, 6), utc(2024, 3, 10, 8),
        [utc(2024, 3, 10, 6), utc(2024, 3, 10, 6, 30), utc(2024, 3, 10, 7),
         utc(2024, 3, 10, 7, 30)],
        id="new-york-spring-half-hourly-skipped-hour-runs-once",
    ),
    pytest.param(
        Cron("30 1 * * *", timezone="America/New_York"),
        utc(2024, 11, 2), utc(2024, 11, 5),
        [utc(2024, 11, 2, 5, 30), utc(2024, 11, 3, 5, 30), utc(2024, 11, 4, 6, 30)],
        id="new-york-fall-repeated-time-runs-once",
    ),
    pytest.param(
        Cron("0 * * * *", timezone="America/New_York"),
        utc(2024, 11, 3, 4), utc(2024, 11, 3, 8),
        [utc(2024, 11, 3, 4), utc(2024, 11, 3, 5), utc(2024, 11, 3, 7)],
        id="new-york-fall-hourly-repeated-hour-not-twice",
    ),
    pytest.param(
        Cron("30 2 * * *", timezone="Europe/Berlin"),
        utc(2024, 3, 30), utc(2024, 4, 2),
        [utc(2024, 3, 30, 1, 30), utc(2024, 3, 31, 1, 0), utc(2024, 4, 1, 0, 30)],
        id="berlin-spring-skipped-time-runs-at-the-jump",
    ),
    pytest.param(
        Cron("30 2 * * *", timezone="Europe/Berlin"),
        utc(2024, 10, 26), utc(2024, 10, 29),
        [utc(2024, 10, 26, 0, 30), utc(2024, 10, 27, 0, 30), utc(2024, 10, 28, 1, 30)],
        id="berlin-fall-repeated-time-runs-once",
    ),
    pytest.param(
        Cron("15 * * * *", timezone="Europe/Berlin"),
        utc(2024, 10, 26, 23), utc(2024, 10, 27, 3),
        [utc(2024, 10, 26, 23, 15), utc(2024, 10, 27, 0, 15), utc(2024, 10, 27, 2, 15)],
        id="berlin-fall-hourly-skips-the-second-pass",
    ),
    pytest.param(
        Interval(3600, anchor_date=datetime(2024, 3, 10), timezone="America/New_York"),
        utc(2024, 3, 10, 5), utc(2024, 3, 10, 9),
        [utc(2024, 3, 10, 5), utc(2024, 3, 10, 6), utc(2024, 3, 10, 7), utc(2024, 3, 10, 8)],
        id="new-york-interval-fixed-absolute-period-spring",
    ),
    pytest.param(
        Interval(86400, anchor_date=datetime(2024, 10, 26, 9), timezone="Europe/Berlin"),
        utc(2024, 10, 26), utc(2024, 10, 29),
        [utc(2024, 10, 26, 7), utc(2024, 10, 27, 7), utc(2024, 10, 28, 7)],
        id="berlin-daily-interval-keeps-24-hours-across-fall",
    ),
    pytest.param(
        RRule("FREQ=DAILY;BYHOUR=2;BYMINUTE=30;BYSECOND=0", timezone="America/New_York",
              anchor_date=datetime(2024, 3, 1)),
        utc(2024, 3, 9), utc(2024, 3, 12),
        [utc(2024, 3, 9, 7, 30), utc(2024, 3, 10, 7, 0), utc(2024, 3, 11, 6, 30)],
        id="new-york-rrule-spring-like-cron",
    ),
    pytest.param(
        RRule("DTSTART;TZID=Europe/Berlin:20241001T023000\nRRULE:FREQ=DAILY"),
        utc(2024, 10, 26), utc(2024, 10, 29),
        [utc(2024, 10, 26, 0, 30), utc(2024, 10, 27, 0, 30), utc(2024, 10, 28, 1, 30)],
        id="berlin-rrule-tzid-fall-repeated-time-runs-once",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("schedule", "start", "end", "expected"), DST_TABLE)
def test_dst_policy(
    schedule: Schedule, start: datetime, end: datetime, expected: list[datetime]
) -> None:
    assert schedules.occurrences(schedule, start, end) == expected


@pytest.mark.parametrize(("schedule", "start", "end", "expected"), DST_TABLE)
def test_backward_expansion_agrees_with_forward(
    schedule: Schedule, start: datetime, end: datetime, expected: list[datetime]
) -> None:
    assert schedules.last_occurrences(schedule, start, end, 100) == expected
    assert schedules.last_occurrences(schedule, start, end, 2) == expected[-2:]


def test_window_is_half_open_and_limited() -> None:
    every_minute = Cron("* * * * *")
    start = utc(2024, 1, 1, 12)
    got = schedules.occurrences(every_minute, start, start + timedelta(minutes=3))
    assert got == [start, start + timedelta(minutes=1), start + timedelta(minutes=2)]
    assert schedules.occurrences(every_minute, start, limit=2) == got[:2]
    assert schedules.next_times(every_minute, start + timedelta(seconds=1), 1) == [got[1]]
    with pytest.raises(ValueError, match="needs an end or a limit"):
        schedules.occurrences(every_minute, start)


def test_interval_anchor_defaults_and_sub_second_periods() -> None:
    every_second = Interval(1)
    start = utc(2024, 5, 5, 5, 5, 5, 500_000)
    got = schedules.occurrences(every_second, start, limit=3)
    assert got == [utc(2024, 5, 5, 5, 5, 6), utc(2024, 5, 5, 5, 5, 7), utc(2024, 5, 5, 5, 5, 8)]
    half = Interval(timedelta(milliseconds=500), anchor_date="2024-01-01T00:00:00")
    assert schedules.occurrences(half, start, limit=2) == [start, start + timedelta(seconds=0.5)]


def test_cron_that_never_matches_has_no_occurrences() -> None:
    assert schedules.occurrences(Cron("0 0 31 2 *"), utc(2024, 1, 1), limit=1) == []


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: Cron("61 * * * *"), "malformed cron expression '61 \\* \\* \\* \\*'"),
        (lambda: Cron("* * *"), "malformed cron expression"),
        (lambda: Cron("0 9 * * *", timezone="Mars/Olympus"), "unknown time zone 'Mars/Olympus'"),
        (lambda: Cron("0 9 * * *", timezone="../etc/passwd"), "unknown time zone"),
        (lambda: Interval(-5), "interval must be a positive number of seconds, not -5"),
        (lambda: Interval(0), "interval must be a positive"),
        (lambda: RRule("FREQ=SOMETIMES"), "malformed rrule 'FREQ=SOMETIMES'"),
        (lambda: RRule(TZID_RULE, timezone="UTC"), "differs from the timezone"),
        (lambda: schedules.checked(Schedule()), "exactly one of cron, interval or rrule"),
        (lambda: schedules.checked(Schedule(cron="* * * * *", interval=5)), "got cron, interval"),
        (lambda: Cron("* * * * *", max_catchup=0), "max_catchup must be at least 1"),
        (lambda: Cron("* * * * *", jitter_seconds=-1), "jitter_seconds must be >= 0"),
        (lambda: schedules.construct_schedule(), "exactly one of cron, interval or rrule"),
    ],
)
def test_bad_schedules_are_clear_errors(build: object, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        build()  # type: ignore[operator]


def test_construct_schedule_picks_the_kind() -> None:
    assert schedules.construct_schedule(cron="0 9 * * *", timezone="Europe/Berlin").cron
    assert schedules.construct_schedule(interval=timedelta(minutes=5)).interval == 300
    assert schedules.construct_schedule(rrule="FREQ=HOURLY").rrule == "FREQ=HOURLY"


def test_describe() -> None:
    assert schedules.describe(Cron("0 9 * * *", timezone="Europe/Berlin")) == (
        "cron '0 9 * * *' (Europe/Berlin)"
    )
    assert schedules.describe(Interval(90)) == "every 90 seconds (UTC)"
    assert schedules.describe(RRule("FREQ=DAILY")) == "rrule 'FREQ=DAILY' (UTC)"


@pytest.mark.parametrize(
    ("catchup", "max_catchup", "kept_minutes"),
    [("skip", 100, []), ("latest", 100, [9]), ("all", 100, list(range(10))), ("all", 3, [7, 8, 9])],
)
def test_catchup_policy(catchup: str, max_catchup: int, kept_minutes: list[int]) -> None:
    schedule = Cron("* * * * *", catchup=catchup, max_catchup=max_catchup)
    missed = [utc(2024, 1, 1, 0, m) for m in range(10)]
    cutoff = utc(2024, 1, 1, 0, 9, 30)
    kept = [t.minute for t in missed if schedules.keep_missed(schedule, t, cutoff)]
    assert kept == kept_minutes


def test_jitter_is_bounded_and_deterministic_from_the_run_id() -> None:
    ids = [uuid.uuid5(uuid.NAMESPACE_DNS, str(i)) for i in range(200)]
    offsets = [schedules.jitter_offset(i, 30) for i in ids]
    assert offsets == [schedules.jitter_offset(i, 30) for i in ids]
    assert all(0 <= o <= 30 for o in offsets)
    assert len(set(offsets)) > 150
    assert schedules.jitter_offset(ids[0], 0) == 0


def test_resolve_local_policy_directly() -> None:
    ny = schedules.zone("America/New_York")
    assert schedules.resolve_local(datetime(2024, 3, 10, 2, 30), ny) == utc(2024, 3, 10, 7)
    assert schedules.resolve_local(datetime(2024, 11, 3, 1, 30), ny) == utc(2024, 11, 3, 5, 30)
    assert schedules.resolve_local(datetime(2024, 7, 1, 12), ny) == utc(2024, 7, 1, 16)
