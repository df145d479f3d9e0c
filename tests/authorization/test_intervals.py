"""ISO 8601 repeating intervals of grant limits: every form, the repetition containing a
time (boundaries, not started, over, far from the start), and what is refused.

The cases of Rafiki's limits.test.ts are here with the same answers (`rafiki-*` ids);
where opase decides otherwise (month ends, offsets, R-1) the module docstring says why.
"""

from __future__ import annotations

import calendar
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from opase.authorization.intervals import (
    DATETIME_MAX_UTC,
    RepeatingInterval,
    parse_repeating_interval,
)


def t(text: str) -> datetime:
    """An aware time from ISO text ("Z" or an offset)."""
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    assert parsed.tzinfo is not None
    return parsed


def span(start: str, end: str) -> tuple[datetime, datetime]:
    return t(start), t(end)


# (interval, payment time, the repetition containing it or None), one row per question.
# fmt: off
CONTAINING = [
    # R/start/duration: unbounded, forward, calendar months.
    ("R/2026-01-01T00:00:00Z/P1M", "2026-01-01T00:00:00Z", span("2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z"), "at-start"),
    ("R/2026-01-01T00:00:00Z/P1M", "2026-01-31T23:59:59.999999Z", span("2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z"), "just-before-boundary"),
    ("R/2026-01-01T00:00:00Z/P1M", "2026-02-01T00:00:00Z", span("2026-02-01T00:00:00Z", "2026-03-01T00:00:00Z"), "at-boundary-is-next"),
    ("R/2026-01-01T00:00:00Z/P1M", "2026-03-15T12:00:00Z", span("2026-03-01T00:00:00Z", "2026-04-01T00:00:00Z"), "third-month"),
    ("R/2026-01-01T00:00:00Z/P1M", "2025-12-31T23:59:59Z", None, "not-started"),
    ("R-1/2026-01-01T00:00:00Z/P1M", "2030-03-15T12:00:00Z", span("2030-03-01T00:00:00Z", "2030-04-01T00:00:00Z"), "R-1-unbounded"),
    # The Open Payments spec's own example.
    ("R-1/P1Y2M10DT2H30M/2022-05-11T15:30:00Z", "2022-05-11T15:29:59Z", span("2021-03-01T13:00:00Z", "2022-05-11T15:30:00Z"), "R-1-spec-example"),
    ("R/2026-01-01T00:00:00Z/P1M", "2126-07-04T00:00:00Z", span("2126-07-01T00:00:00Z", "2126-08-01T00:00:00Z"), "century-later"),
    # Rn/start/duration: the first interval and n repetitions.
    ("R12/2026-01-01T00:00:00Z/P1M", "2027-01-15T00:00:00Z", span("2027-01-01T00:00:00Z", "2027-02-01T00:00:00Z"), "R12-thirteenth"),
    ("R12/2026-01-01T00:00:00Z/P1M", "2027-02-01T00:00:00Z", None, "R12-over"),
    ("R0/2026-01-01T00:00:00Z/P1D", "2026-01-01T12:00:00Z", span("2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"), "R0-first"),
    ("R0/2026-01-01T00:00:00Z/P1D", "2026-01-02T00:00:00Z", None, "R0-over-at-boundary"),
    ("R0/2026-01-01T00:00:00Z/P1D", "2025-12-31T12:00:00Z", None, "R0-not-started"),
    ("R1/2026-01-01T00:00:00Z/P1D", "2026-01-02T12:00:00Z", span("2026-01-02T00:00:00Z", "2026-01-03T00:00:00Z"), "R1-second"),
    ("R1/2026-01-01T00:00:00Z/P1D", "2026-01-03T00:00:00Z", None, "R1-over"),
    ("R3/2026-01-01T00:00:00Z/PT1H", "2026-01-01T02:00:00Z", span("2026-01-01T02:00:00Z", "2026-01-01T03:00:00Z"), "R3-hours-boundary"),
    ("R3/2026-01-01T00:00:00Z/PT1H", "2026-01-01T03:59:59Z", span("2026-01-01T03:00:00Z", "2026-01-01T04:00:00Z"), "R3-last"),
    ("R3/2026-01-01T00:00:00Z/PT1H", "2026-01-01T04:00:00Z", None, "R3-over"),
    ("R99999999999/2026-01-01T00:00:00Z/PT1M", "2026-06-01T00:00:30Z", span("2026-06-01T00:00:00Z", "2026-06-01T00:01:00Z"), "huge-count"),
    # Rn/duration/end: backward from the end, which closes the last interval.
    ("R2/P1D/2026-01-10T00:00:00Z", "2026-01-09T12:00:00Z", span("2026-01-09T00:00:00Z", "2026-01-10T00:00:00Z"), "backward-last"),
    ("R2/P1D/2026-01-10T00:00:00Z", "2026-01-08T00:00:00Z", span("2026-01-08T00:00:00Z", "2026-01-09T00:00:00Z"), "backward-boundary"),
    ("R2/P1D/2026-01-10T00:00:00Z", "2026-01-07T00:00:00Z", span("2026-01-07T00:00:00Z", "2026-01-08T00:00:00Z"), "backward-first"),
    ("R2/P1D/2026-01-10T00:00:00Z", "2026-01-06T23:59:59Z", None, "backward-not-started"),
    ("R2/P1D/2026-01-10T00:00:00Z", "2026-01-10T00:00:00Z", None, "backward-over-at-end"),
    ("R/P1M/2026-03-31T00:00:00Z", "2025-12-15T00:00:00Z", span("2025-11-30T00:00:00Z", "2025-12-31T00:00:00Z"), "backward-unbounded-month-ends"),
    ("R/P1M/2026-03-31T00:00:00Z", "2026-03-31T00:00:00Z", None, "backward-unbounded-over"),
    # R/start/end: the exact elapsed time repeats.
    ("R/2026-01-01T00:00:00Z/2026-01-08T00:00:00Z", "2026-01-01T00:00:00Z", span("2026-01-01T00:00:00Z", "2026-01-08T00:00:00Z"), "start-end-first"),
    ("R/2026-01-01T00:00:00Z/2026-01-08T00:00:00Z", "2026-01-14T23:59:59Z", span("2026-01-08T00:00:00Z", "2026-01-15T00:00:00Z"), "start-end-second"),
    ("R/2026-01-01T00:00:00Z/2026-01-08T00:00:00Z", "2026-01-15T00:00:00Z", span("2026-01-15T00:00:00Z", "2026-01-22T00:00:00Z"), "start-end-boundary"),
    ("R/2026-01-01T00:00:00Z/2026-01-08T00:00:00Z", "2025-12-31T00:00:00Z", None, "start-end-not-started"),
    ("R/2026-01-01T10:00:00Z/12:00", "2026-01-01T13:00:00Z", span("2026-01-01T12:00:00Z", "2026-01-01T14:00:00Z"), "concise-end"),
    # Weeks, fractions (a comma is a decimal sign too), dates, week and ordinal dates.
    ("R/2026-01-05T00:00:00Z/P1W", "2026-01-20T00:00:00Z", span("2026-01-19T00:00:00Z", "2026-01-26T00:00:00Z"), "week"),
    ("R/2026-01-01T00:00:00Z/P0.5D", "2026-01-02T13:00:00Z", span("2026-01-02T12:00:00Z", "2026-01-03T00:00:00Z"), "half-day"),
    ("R/2026-01-01T00:00:00Z/PT1,5H", "2026-01-01T01:30:00Z", span("2026-01-01T01:30:00Z", "2026-01-01T03:00:00Z"), "decimal-comma"),
    ("R/2026-01-01T00:00:00Z/P1DT12H", "2026-01-02T12:00:00Z", span("2026-01-02T12:00:00Z", "2026-01-04T00:00:00Z"), "days-and-hours"),
    ("R/2026-01-01/P1D", "2026-01-03T05:00:00Z", span("2026-01-03T00:00:00Z", "2026-01-04T00:00:00Z"), "date-is-midnight-utc"),
    ("R/2026-W02-1/P1W", "2026-01-05T00:00:00Z", span("2026-01-05T00:00:00Z", "2026-01-12T00:00:00Z"), "week-date"),
    ("R/2026-032/P1D", "2026-02-01T08:00:00Z", span("2026-02-01T00:00:00Z", "2026-02-02T00:00:00Z"), "ordinal-date"),
    # Month ends: each boundary from the start, clamped to the month's last day, no drift.
    ("R/2026-01-31T00:00:00Z/P1M", "2026-02-27T23:59:59Z", span("2026-01-31T00:00:00Z", "2026-02-28T00:00:00Z"), "month-end-january"),
    ("R/2026-01-31T00:00:00Z/P1M", "2026-02-28T00:00:00Z", span("2026-02-28T00:00:00Z", "2026-03-31T00:00:00Z"), "month-end-february"),
    ("R/2026-01-31T00:00:00Z/P1M", "2026-04-30T00:00:00Z", span("2026-04-30T00:00:00Z", "2026-05-31T00:00:00Z"), "month-end-april"),
    ("R/2026-01-31T00:00:00Z/P1M", "2028-02-29T00:00:00Z", span("2028-02-29T00:00:00Z", "2028-03-31T00:00:00Z"), "month-end-leap"),
    ("R/2024-02-29T00:00:00Z/P1Y", "2025-03-01T00:00:00Z", span("2025-02-28T00:00:00Z", "2026-02-28T00:00:00Z"), "leap-day-yearly"),
    ("R/2024-02-29T00:00:00Z/P1Y", "2028-02-29T00:00:00Z", span("2028-02-29T00:00:00Z", "2029-02-28T00:00:00Z"), "leap-day-back"),
    ("R/2026-01-31T00:00:00Z/P1M1D", "2026-03-15T00:00:00Z", span("2026-03-01T00:00:00Z", "2026-04-02T00:00:00Z"), "months-then-days"),
    # Offsets: the same instants in UTC; months counted on the offset's wall clock.
    ("R/2026-01-01T00:00:00+02:00/P1D", "2025-12-31T22:00:00Z", span("2025-12-31T22:00:00Z", "2026-01-01T22:00:00Z"), "offset-at-start"),
    ("R/2026-01-01T00:00:00+02:00/P1D", "2025-12-31T21:59:59Z", None, "offset-not-started"),
    ("R/2026-01-01T00:00:00-05:30/P1D", "2026-01-02T06:00:00+01:00", span("2026-01-01T05:30:00Z", "2026-01-02T05:30:00Z"), "offset-negative"),
    ("R/2026-01-31T01:00:00+02:00/P1M", "2026-02-27T23:00:00Z", span("2026-02-27T23:00:00Z", "2026-03-30T23:00:00Z"), "offset-month-end"),
    ("R/2026-01-01T00:00:00/P1D", "2026-01-01T00:00:00Z", span("2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"), "naive-is-utc"),
    # Far from the start: the repetition is computed, not walked to.
    ("R/1970-01-01T00:00:00Z/P1D", "2026-05-17T10:00:00Z", span("2026-05-17T00:00:00Z", "2026-05-18T00:00:00Z"), "daily-since-1970"),
    ("R/1970-01-01T00:00:00Z/PT1S", "2026-05-17T10:00:00.5Z", span("2026-05-17T10:00:00Z", "2026-05-17T10:00:01Z"), "seconds-since-1970"),
    ("R/0001-01-31T00:00:00Z/P1M", "9999-11-30T00:00:00Z", span("9999-11-30T00:00:00Z", "9999-12-31T00:00:00Z"), "monthly-since-year-1"),
    ("R/0001-01-01T00:00:00Z/P1M", "9999-12-15T00:00:00Z", (t("9999-12-01T00:00:00Z"), DATETIME_MAX_UTC), "end-beyond-9999"),
    # Rafiki's limits.test.ts.
    ("R2/2022-07-01T13:00:00Z/P1M", "2022-07-01T12:59:59Z", None, "rafiki-before-start"),
    ("R2/2022-07-01T13:00:00Z/P1M", "2022-08-10T13:00:00Z", span("2022-08-01T13:00:00Z", "2022-09-01T13:00:00Z"), "rafiki-second"),
    ("R2/2022-07-01T13:00:00Z/P1M", "2022-10-01T12:59:59Z", span("2022-09-01T13:00:00Z", "2022-10-01T13:00:00Z"), "rafiki-before-end"),
    ("R2/2022-07-01T13:00:00Z/P1M", "2022-10-01T13:00:00Z", None, "rafiki-at-end"),
    ("R2/P1M/2022-10-01T13:00:00Z", "2022-07-01T13:00:00Z", span("2022-07-01T13:00:00Z", "2022-08-01T13:00:00Z"), "rafiki-backward-at-start"),
    ("R2/P1M/2022-10-01T13:00:00Z", "2022-09-10T13:00:00Z", span("2022-09-01T13:00:00Z", "2022-10-01T13:00:00Z"), "rafiki-backward-third"),
    ("R2/2022-07-01T13:00:00Z/2022-08-01T13:00:00Z", "2022-10-02T12:59:59Z", span("2022-09-01T13:00:00Z", "2022-10-02T13:00:00Z"), "rafiki-start-end-31-days"),
    ("R2/2022-07-01T13:00:00Z/2022-08-01T13:00:00Z", "2022-10-02T13:00:00Z", None, "rafiki-start-end-at-end"),
    ("R/2022-07-01T13:00:00Z/P1M", "2032-01-10T13:00:00Z", span("2032-01-01T13:00:00Z", "2032-02-01T13:00:00Z"), "rafiki-far-future"),
]
# fmt: on


@pytest.mark.parametrize(
    ("text", "at", "expected"),
    [pytest.param(text, at, expected, id=case_id) for text, at, expected, case_id in CONTAINING],
)
def test_containing(text: str, at: str, expected: tuple[datetime, datetime] | None) -> None:
    found = parse_repeating_interval(text).containing(t(at))
    assert found == expected
    if found is not None:
        assert all(moment.tzinfo == UTC for moment in found)


# (text, a fragment of the error message)
INVALID = [
    ("", "starts with R"),
    ("P1M", "starts with R"),
    ("2026-01-01T00:00:00Z/P1M", "starts with R"),
    ("r/2026-01-01T00:00:00Z/P1D", "starts with R"),
    ("R/2026-01-01T00:00:00Z", "not an ISO 8601 repeating interval"),
    ("R/P1M", "not an ISO 8601 repeating interval"),
    ("R/P1D/P1D", "not an ISO 8601 repeating interval"),
    ("R/2026-01-01T00:00:00Z/P1D/2026-02-01T00:00:00Z", "not an ISO 8601 repeating interval"),
    ("R/2026-01-01T00:00:00Z/P1D ", "not an ISO 8601 repeating interval"),
    ("R/2026-01-01T00:00:00Z/-P1D", "not an ISO 8601 repeating interval"),
    ("R/2026-01-01T00:00:00Z/P1W1D", "not an ISO 8601 repeating interval"),
    ("R/2026-01-01T00:00:00Z/p1d", "not an ISO 8601 repeating interval"),
    ("R /2026-01-01T00:00:00Z/P1D", "repetition count"),
    ("R-2/2026-01-01T00:00:00Z/P1D", "write R/ for unbounded"),
    ("Rx/2026-01-01T00:00:00Z/P1D", "repetition count"),
    ("R1.5/2026-01-01T00:00:00Z/P1D", "repetition count"),
    ("R/2026-01-01T00:00:00Z/P0D", "must not be zero"),
    ("R/2026-01-01T00:00:00Z/PT0S", "must not be zero"),
    ("R/2026-01-01T00:00:00Z/PT0.0000001S", "must not be zero"),
    ("R/2026-01-01T00:00:00Z/P1.5M", "fractional years or months"),
    ("R/2026-01-01T00:00:00Z/P0.5Y", "fractional years or months"),
    ("R/2026-01-08T00:00:00Z/2026-01-01T00:00:00Z", "end after it starts"),
    ("R/2026-01-01T00:00:00Z/2026-01-01T00:00:00Z", "end after it starts"),
    ("R/2026-13-01T00:00:00Z/P1D", "not a valid repeating interval"),
    ("R/2026-02-30T00:00:00Z/P1D", "not a valid repeating interval"),
    ("R/2026-01-01T00:00:60Z/P1D", "not a valid repeating interval"),
    ("R/2026-01-01T00:00:00+25:00/P1D", "not a valid repeating interval"),
    ("R/2026-01-01T24:00:00Z/P1D", "24:00"),
    ("R/2026-01-01T10:00:00Z/24:00", "24:00"),
    ("R/9999-12-01T00:00:00Z/P1M", "beyond the years 1 to 9999"),
    ("R/P1M/0001-01-15T00:00:00Z", "beyond the years 1 to 9999"),
    ("R/2026-01-01T00:00:00Z/P" + "1" * 80 + "D", "at most 100 characters"),
]


@pytest.mark.parametrize(("text", "message"), INVALID, ids=[text[:40] for text, _ in INVALID])
def test_invalid_intervals_are_refused_saying_why(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_repeating_interval(text)


def test_parsed_interval() -> None:
    parsed = parse_repeating_interval("R2/P1M1DT1H/2026-03-01T00:00:00+01:00")
    assert parsed == RepeatingInterval(
        text="R2/P1M1DT1H/2026-03-01T00:00:00+01:00",
        anchor=datetime(2026, 3, 1, tzinfo=timezone(timedelta(hours=1))),
        months=1,
        exact=timedelta(days=1, hours=1),
        count=3,
        backward=True,
    )
    assert parse_repeating_interval("R/2026-01-01T00:00:00Z/P1Y2M").months == 14
    assert parse_repeating_interval("R/2026-01-01T00:00:00Z/P1M").count is None


def test_naive_payment_time_is_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        parse_repeating_interval("R/2026-01-01T00:00:00Z/P1D").containing(datetime(2026, 1, 2))


# --- properties -----------------------------------------------------------------------------


def _add_months(moment: datetime, months: int) -> datetime:
    """The test's own calendar step, to check the module's against."""
    year = moment.year + (moment.month - 1 + months) // 12
    month = (moment.month - 1 + months) % 12 + 1
    return moment.replace(
        year=year, month=month, day=min(moment.day, calendar.monthrange(year, month)[1])
    )


def _walked(
    anchor: datetime, months: int, exact: timedelta, count: int, at: datetime, *, backward: bool
) -> tuple[datetime, datetime] | None:
    """The containing repetition found the slow way: walk from the anchor, one by one."""
    sign = -1 if backward else 1
    for index in range(count):
        near = _add_months(anchor, sign * index * months) + sign * index * exact
        far = _add_months(anchor, sign * (index + 1) * months) + sign * (index + 1) * exact
        start, end = (far, near) if backward else (near, far)
        if start <= at < end:
            return start.astimezone(UTC), end.astimezone(UTC)
    return None


@given(
    anchor=st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2040, 12, 31)),
    offset_min=st.integers(-14 * 60, 14 * 60),
    months=st.integers(0, 14),
    exact_s=st.integers(0, 40 * 86_400),
    count=st.integers(1, 60),
    backward=st.booleans(),
    elapsed_s=st.integers(-6 * 366 * 86_400, 6 * 366 * 86_400),
)
def test_computed_repetition_matches_walking(
    anchor: datetime,
    offset_min: int,
    months: int,
    exact_s: int,
    count: int,
    backward: bool,
    elapsed_s: int,
) -> None:
    if months == 0 and exact_s == 0:
        exact_s = 1
    exact = timedelta(seconds=exact_s)
    anchor = anchor.replace(microsecond=0, tzinfo=timezone(timedelta(minutes=offset_min)))
    at = anchor + timedelta(seconds=elapsed_s)
    duration = "P" + (f"{months}M" if months else "") + (f"T{exact_s}S" if exact_s else "")
    parts = (duration, anchor.isoformat()) if backward else (anchor.isoformat(), duration)
    text = f"R{count - 1}/{parts[0]}/{parts[1]}"
    expected = _walked(anchor, months, exact, count, at, backward=backward)
    assert parse_repeating_interval(text).containing(at) == expected


@given(st.text(alphabet="R0123456789-:/TZPYMWDHS.,+ ", max_size=48))
def test_any_text_parses_or_is_refused_with_value_error(text: str) -> None:
    try:
        parse_repeating_interval(text)
    except ValueError:
        pass


_DATE = r"(19|20)[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
_TIME = r"T([01][0-9]|2[0-4])(:[0-5][0-9]){0,2}(\.[0-9]{1,3})?(Z|[+-](0[0-9]|1[0-4]):[0-5][0-9])?"
_DURATION = r"P(([0-9]{1,2}(\.[0-9])?[YMWD]){1,2}(T([0-9]{1,2}([.,][0-9])?[HMS]){1,2})?|T([0-9]{1,2}([.,][0-9])?[HMS]){1,2})"
_INTERVAL_LIKE = (
    rf"\AR(-1|[0-9]{{1,3}})?/({_DATE}({_TIME})?|{_DURATION})/"
    rf"({_DATE}({_TIME})?|{_DURATION}|[0-9]{{2}}:[0-9]{{2}})\Z"
)
"""Mostly well-formed parts in any arrangement: about one in six parses."""


@given(st.from_regex(_INTERVAL_LIKE))
def test_interval_like_text_parses_or_is_refused_with_value_error(text: str) -> None:
    try:
        found = parse_repeating_interval(text)
    except ValueError:
        return
    found.containing(datetime(2026, 1, 1, tzinfo=UTC))
