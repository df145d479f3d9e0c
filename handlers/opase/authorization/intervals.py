"""ISO 8601 repeating intervals of outgoing-payment grant limits: which repetition contains a
payment, in O(1) whatever the time elapsed since the interval's start.

aniso8601 parses the text (every ISO 8601 form: `Rn/start/duration`, `R/start/duration`,
`Rn/duration/end`, `Rn/start/end`, dates, week and ordinal dates, offsets, concise ends);
its own builder turns months into 30 days, so only its parsed parts are used and the
calendar arithmetic is done here.

Decisions, compatible with the reference implementation (Rafiki's `getInterval`) except
where a note says otherwise:

- `Rn` repeats the first interval n times: n + 1 intervals in all, so `R0` is the first
  interval alone and `R1` two of them (Rafiki's reading, and ISO 8601's "R0: not repeated").
  `R` is unbounded, and so is `R-1` (the Open Payments spec's own example uses it, and
  Rafiki reads it so; aniso8601 does not accept it, so it is read as `R`).
- Intervals are half-open, [start, end): a payment exactly at a boundary belongs to the
  interval that starts there (Rafiki: luxon's `Interval.contains`).
- `start/duration` repeats forward from the start; `duration/end` backward from the end
  (the end closes the last interval); `start/end` repeats the exact elapsed time end - start.
- Years and months are calendar units: the k-th boundary is the anchor plus k durations,
  computed from the anchor every time (never by adding to the previous boundary), and a day
  that the target month lacks becomes its last day. `R/2026-01-31T00:00:00Z/P1M` starts on
  Jan 31, Feb 28, Mar 31, Apr 30 (Rafiki accumulates: Feb 28, Mar 28, Apr 28). Weeks, days,
  hours, minutes and seconds are exact (a day is 24 h: offsets are fixed, there is no DST).
- The calendar arithmetic runs in the anchor's own UTC offset, as written (Rafiki converts
  to UTC first); results are returned in UTC.
- A time without an offset, or a date without a time (midnight), is UTC.
- Refused, with a message saying why: non-repeating intervals, zero durations, fractional
  years or months (no calendar meaning), the hour 24, end before start, more than
  INTERVAL_LENGTH_MAX characters.
"""

from __future__ import annotations

import calendar
import functools
from dataclasses import dataclass
from datetime import MAXYEAR, MINYEAR, UTC, date, datetime, timedelta, timezone
from typing import Any, Final

from aniso8601 import parse_repeating_interval as _aniso_parse  # type: ignore[import-untyped]
from aniso8601.builders import (  # type: ignore[import-untyped]
    DatetimeTuple,
    DateTuple,
    TimeTuple,
    TupleBuilder,
)
from aniso8601.builders.python import PythonTimeBuilder  # type: ignore[import-untyped]

from opase.storage.tables import INTERVAL_LENGTH_MAX

MONTH_MEAN_S: Final = 2_629_746
"""The mean Gregorian month, 365.2425 days / 12: the first guess of how many durations fit."""
_MICROSECOND: Final = timedelta(microseconds=1)
INDEX_ADJUST_STEPS_MAX: Final = 8
"""Steps from the guess to the containing repetition. Calendar months differ from their mean
by a few days at most, so one or two steps are ever taken; the bound makes a bug loud."""
_PARSE_CACHE_SIZE: Final = 1_024
DATETIME_MIN_UTC: Final = datetime.min.replace(tzinfo=UTC)
DATETIME_MAX_UTC: Final = datetime.max.replace(tzinfo=UTC)


@dataclass(frozen=True)
class RepeatingInterval:
    """A parsed repeating interval: the boundary with index k is `anchor` plus k durations
    (`months` calendar months, then `exact`); repetition k spans [boundary k, boundary k+1).

    Forward (`start/...` forms) the repetitions are k = 0 .. count-1 from the start;
    backward (`duration/end`) they are k = -count .. -1, the anchor being the last end.
    """

    text: str
    anchor: datetime
    """Aware, in the offset the text gave (UTC when it gave none)."""
    months: int
    exact: timedelta
    count: int | None
    """Intervals in all (the Rn of the text plus one); None: unbounded."""
    backward: bool

    def __post_init__(self) -> None:
        assert self.anchor.tzinfo is not None, self.anchor
        assert self.months >= 0 and self.exact >= timedelta(0), (self.months, self.exact)
        assert self.months > 0 or self.exact > timedelta(0), "zero duration"
        assert self.count is None or self.count >= 1, self.count

    def containing(self, at: datetime) -> tuple[datetime, datetime] | None:
        """The [start, end) in UTC of the repetition that contains `at`; None before the
        first or after the last (the grant gives no allowance then)."""
        if at.tzinfo is None:
            raise ValueError(f"naive datetime {at!r}: give a time zone")
        index = self._index_at(at)
        if self.backward:
            within = index < 0 and (self.count is None or index >= -self.count)
        else:
            within = index >= 0 and (self.count is None or index < self.count)
        if not within:
            return None
        start, end = self._boundary(index), self._boundary(index + 1)
        start_utc = DATETIME_MIN_UTC if start is None else start.astimezone(UTC)
        end_utc = DATETIME_MAX_UTC if end is None else end.astimezone(UTC)
        assert start_utc <= at < end_utc or end is None, (start_utc, at, end_utc)
        return start_utc, end_utc

    def _index_at(self, at: datetime) -> int:
        """The k with boundary k <= at < boundary k+1: guessed by dividing the time elapsed
        since the anchor by the mean duration, then corrected by a step or two; O(1)."""
        mean_us = (self.months * MONTH_MEAN_S * 1_000_000) + self.exact // _MICROSECOND
        index = ((at - self.anchor) // _MICROSECOND) // mean_us
        for _ in range(INDEX_ADJUST_STEPS_MAX):
            if self._is_after(index, at):
                index -= 1
            elif not self._is_after(index + 1, at):
                index += 1
            else:
                return index
        raise AssertionError(f"{self.text}: no repetition index found for {at.isoformat()}")

    def _is_after(self, index: int, at: datetime) -> bool:
        boundary = self._boundary(index)
        if boundary is None:  # beyond the years datetime can hold, on the side of its sign
            return index > 0
        return boundary > at

    def _boundary(self, index: int) -> datetime | None:
        """The anchor plus `index` durations, from the anchor (no drift); None when outside
        the years 1 to 9999."""
        try:
            shifted = _add_months(self.anchor, index * self.months) + index * self.exact
            shifted.astimezone(UTC)  # the offset may push it out of range
        except OverflowError:
            return None
        return shifted


def parse_repeating_interval(text: str) -> RepeatingInterval:
    """`text` parsed, or ValueError saying what is wrong with it."""
    if len(text) > INTERVAL_LENGTH_MAX:
        raise ValueError(
            f"a repeating interval has at most {INTERVAL_LENGTH_MAX} characters, not {len(text)}"
        )
    return _parse(text)


@functools.lru_cache(maxsize=_PARSE_CACHE_SIZE)
def _parse(text: str) -> RepeatingInterval:
    # Reservations parse the grant's interval on every payment: the text is immutable.
    if not text.startswith("R"):
        raise ValueError(
            f"{text!r} is not a repeating interval: it starts with R "
            "(e.g. R/2026-01-01T00:00:00Z/P1M)"
        )
    # ISO 8601-2's "R-1": unbounded, the same as "R".
    iso_text = "R/" + text[len("R-1/") :] if text.startswith("R-1/") else text
    try:
        parsed = _aniso_parse(iso_text, builder=TupleBuilder)
    except (ValueError, TypeError) as exc:  # aniso8601's ISOFormatError is a ValueError
        raise ValueError(f"{text!r} is not an ISO 8601 repeating interval: {exc}") from None
    count = _interval_count(text, parsed.R, parsed.Rnn)
    interval = parsed.interval
    for part in (interval.start, interval.end):
        _refuse_hour_24(text, part)
    try:
        if interval.duration is None:
            return _from_start_and_end(text, count, interval.start, interval.end)
        months, exact = _duration(text, interval.duration)
        backward = interval.start is None
        anchor = _moment(interval.end if backward else interval.start)
    except (ValueError, TypeError, OverflowError) as exc:
        raise ValueError(f"{text!r} is not a valid repeating interval: {exc}") from None
    if months == 0 and exact == timedelta(0):
        raise ValueError(f"{text!r}: the duration of a repeating interval must not be zero")
    found = RepeatingInterval(text, anchor, months, exact, count, backward)
    if found._boundary(-1 if backward else 1) is None:
        raise ValueError(f"{text!r}: the first interval ends beyond the years 1 to 9999")
    return found


def _interval_count(text: str, unbounded: bool, repetitions: str | None) -> int | None:
    if unbounded:
        return None
    assert repetitions is not None
    if not (repetitions.isascii() and repetitions.isdigit()):
        hint = " (write R/ for unbounded repetitions)" if repetitions.startswith("-") else ""
        raise ValueError(
            f"{text!r}: the repetition count must be a whole number of 0 or more, "
            f"not {repetitions!r}{hint}"
        )
    return int(repetitions) + 1  # Rn: the first interval and n repetitions of it


def _refuse_hour_24(text: str, part: Any) -> None:
    time = part.time if isinstance(part, DatetimeTuple) else part
    if isinstance(time, TimeTuple) and time.hh is not None and time.hh.startswith("24"):
        # aniso8601 reads 24:00 as 00:00 of the same day, a day early.
        raise ValueError(f"{text!r}: write 24:00 as 00:00 of the next day")


def _from_start_and_end(
    text: str, count: int | None, start_part: Any, end_part: Any
) -> RepeatingInterval:
    # aniso8601 completes a concise end (`2026-01-01T10:00Z/12:00`) from the start.
    start_built, end_built = PythonTimeBuilder.build_interval(start=start_part, end=end_part)
    start, end = _as_aware(start_built), _as_aware(end_built)
    if end <= start:
        raise ValueError(f"{text!r}: the interval must end after it starts")
    return RepeatingInterval(text, start, 0, end - start, count, backward=False)


def _duration(text: str, duration: Any) -> tuple[int, timedelta]:
    """Calendar months, and the exact rest, of a parsed duration."""
    for calendar_part in (duration.PnY, duration.PnM):
        if calendar_part is not None and not calendar_part.isdigit():
            raise ValueError(
                f"{text!r}: fractional years or months have no calendar length; "
                "use a whole number, or days"
            )
    months = int(duration.PnY or 0) * 12 + int(duration.PnM or 0)
    exact = PythonTimeBuilder.build_duration(
        PnW=duration.PnW, PnD=duration.PnD, TnH=duration.TnH, TnM=duration.TnM, TnS=duration.TnS
    )
    assert isinstance(exact, timedelta)
    return months, exact


def _moment(part: Any) -> datetime:
    """A parsed date or date and time, as an aware datetime."""
    if isinstance(part, DateTuple):
        return _as_aware(PythonTimeBuilder.build_date(**part._asdict()))
    assert isinstance(part, DatetimeTuple), part
    return _as_aware(PythonTimeBuilder.build_datetime(part.date, part.time))


def _as_aware(moment: date | datetime) -> datetime:
    """A date as its midnight, a naive time as UTC; the offset as a plain `timezone`."""
    if not isinstance(moment, datetime):
        return datetime(moment.year, moment.month, moment.day, tzinfo=UTC)
    offset = moment.utcoffset()
    if offset is None:
        return moment.replace(tzinfo=UTC)
    return moment.replace(tzinfo=UTC if offset == timedelta(0) else timezone(offset))


def _add_months(moment: datetime, months: int) -> datetime:
    """`moment` moved by calendar months, on the wall clock of its offset; a day the target
    month lacks becomes the month's last. OverflowError outside the years 1 to 9999."""
    if months == 0:
        return moment
    year, month_index = divmod(moment.year * 12 + moment.month - 1 + months, 12)
    if not MINYEAR <= year <= MAXYEAR:
        raise OverflowError(f"year {year} is out of range")
    month = month_index + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)
