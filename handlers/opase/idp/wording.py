"""A grant in plain words for the consent page: amounts with their asset scale, access items
as sentences, repeating intervals and expiry times as a person reads them.

Everything here is a pure function of the grant's stored data (`grant_details`), so the page
shows exactly what the grant holds. Amounts use integer arithmetic only (never floats): a
uint64 at scale 2 or at scale 255 is shown digit for digit. Nothing here raises on data a
newer spec might bring (an unknown type or action is shown by its name): a consent page
must never fail because of wording.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Final

from opase.amounts import format_amount
from opase.authorization.intervals import RepeatingInterval, parse_repeating_interval

MONTH_NAMES: Final = (
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
)  # fmt: skip
"""English month abbreviations, independent of the process locale (strftime's %b is not)."""
SECONDS_PER_MINUTE: Final = 60
MINUTES_PER_HOUR: Final = 60
DAYS_PER_WEEK: Final = 7
MONTHS_PER_YEAR: Final = 12
MICROSECONDS_PER_SECOND: Final = 1_000_000
RELATIVE_MINUTES_MAX: Final = 120
"""Up to this, a time ahead is said in minutes; beyond, in hours."""


def _amount_words(amount: Any) -> str:
    try:
        return format_amount(amount["value"], str(amount["assetCode"]), int(amount["assetScale"]))
    except (KeyError, TypeError, ValueError):
        return f"an amount given as {amount!r}"


def join_words(parts: Sequence[str]) -> str:
    """`a`, `a and b`, `a, b and c`."""
    if len(parts) <= 1:
        return "".join(parts)
    return f"{', '.join(parts[:-1])} and {parts[-1]}"


def _counted(count: int | Decimal, unit: str) -> str:
    return f"{count} {unit}" if count == 1 else f"{count} {unit}s"


def duration_parts(months: int, exact: timedelta) -> list[str]:
    """`["1 year", "2 months"]`, `["2 weeks"]`, `["1 day", "12 hours"]`: calendar units
    first, then the exact rest; whole weeks when the days are a number of weeks and nothing
    smaller follows."""
    parts: list[str] = []
    years, months_rest = divmod(months, MONTHS_PER_YEAR)
    for count, unit in ((years, "year"), (months_rest, "month")):
        if count:
            parts.append(_counted(count, unit))
    days = exact.days
    hours, seconds_rest = divmod(exact.seconds, SECONDS_PER_MINUTE * MINUTES_PER_HOUR)
    minutes, seconds = divmod(seconds_rest, SECONDS_PER_MINUTE)
    smaller = hours or minutes or seconds or exact.microseconds
    if days and days % DAYS_PER_WEEK == 0 and not smaller:
        parts.append(_counted(days // DAYS_PER_WEEK, "week"))
    elif days:
        parts.append(_counted(days, "day"))
    for count, unit in ((hours, "hour"), (minutes, "minute")):
        if count:
            parts.append(_counted(count, unit))
    if exact.microseconds:
        fraction = Decimal(exact.microseconds) / MICROSECONDS_PER_SECOND
        parts.append(_counted((seconds + fraction).normalize(), "second"))
    elif seconds:
        parts.append(_counted(seconds, "second"))
    return parts


def moment_words(moment: datetime, *, with_time: bool = False) -> str:
    """`1 Dec 2026` for midnight UTC (unless `with_time`); otherwise with the time and its
    offset, as written (`1 Dec 2026, 09:30 UTC+01:00`)."""
    day = f"{moment.day} {MONTH_NAMES[moment.month - 1]} {moment.year}"
    offset = moment.utcoffset() or timedelta(0)
    midnight = (moment.hour, moment.minute, moment.second, moment.microsecond) == (0, 0, 0, 0)
    if midnight and offset == timedelta(0) and not with_time:
        return day
    clock = f"{moment.hour:02d}:{moment.minute:02d}"
    if moment.second or moment.microsecond:
        clock += f":{moment.second:02d}"
    if moment.microsecond:
        clock += f".{moment.microsecond:06d}"
    return f"{day}, {clock} {_offset_words(offset)}"


def _offset_words(offset: timedelta) -> str:
    if offset == timedelta(0):
        return "UTC"
    sign = "+" if offset > timedelta(0) else "-"
    minutes_total = abs(offset) // timedelta(minutes=1)
    hours, minutes = divmod(minutes_total, MINUTES_PER_HOUR)
    return f"UTC{sign}{hours:02d}:{minutes:02d}"


def interval_words(text: str) -> str:
    """An ISO 8601 repeating interval in words: `each month, from 1 Dec 2026`, `each 2
    weeks, from ...`, `each day, 12 times, from ...`, `within 1 day from ...` (R0: once),
    `each month, 4 times, until ...` (a `duration/end` interval)."""
    try:
        parsed = parse_repeating_interval(text)
    except ValueError:
        return f"in the periods {text}"
    return _parsed_interval_words(parsed)


def _parsed_interval_words(parsed: RepeatingInterval) -> str:
    parts = duration_parts(parsed.months, parsed.exact)
    length = join_words(parts)
    direction = "until" if parsed.backward else "from"
    when = moment_words(parsed.anchor)
    if parsed.count == 1:
        return f"within {length} {direction} {when}"
    # "each month", but "each 2 weeks" and "each 1 day and 12 hours".
    single = len(parts) == 1 and parts[0].startswith("1 ")
    each = f"each {parts[0][2:]}" if single else f"each {length}"
    times = "" if parsed.count is None else f", {parsed.count} times"
    return f"{each}{times}, {direction} {when}"


def expiry_words(expires_at: datetime, now: datetime) -> str:
    """`1 Dec 2026, 14:05 UTC (in 10 minutes)`; `... (expired)` when past. To the minute,
    rounded down: the owner is never told there is more time than there is."""
    minute = expires_at.astimezone(UTC).replace(second=0, microsecond=0)
    shown = moment_words(minute, with_time=True)
    left = expires_at - now
    if left <= timedelta(0):
        return f"{shown} (expired)"
    minutes = -(-left // timedelta(minutes=1))  # rounded up: never promise more than there is
    if left < timedelta(minutes=1):
        relative = "in less than a minute"
    elif minutes <= RELATIVE_MINUTES_MAX:
        relative = f"in {_counted(minutes, 'minute')}"
    else:
        relative = f"in about {_counted(left // timedelta(hours=1), 'hour')}"
    return f"{shown} ({relative})"


@dataclass(frozen=True, slots=True)
class AccessWording:
    """One access item of a grant, as the consent page lists it."""

    title: str
    actions: tuple[str, ...]
    """What the app may do, one sentence fragment each ("create incoming payments")."""
    limits: tuple[str, ...]
    """Outgoing payments only: how much, to whom, how often; "No limit ..." when none."""


@dataclass(frozen=True, slots=True)
class _Kind:
    title: str
    noun: str
    preposition: str
    create: str


_KINDS: Final[Mapping[str, _Kind]] = {
    "incoming-payment": _Kind(
        "Incoming payments", "incoming payments", "into", "create incoming payments"
    ),
    "outgoing-payment": _Kind("Outgoing payments", "outgoing payments", "from", "send payments"),
    "quote": _Kind("Quotes", "quotes", "for payments from", "create quotes"),
}


def _kind(access_type: str) -> _Kind:
    known = _KINDS.get(access_type)
    if known is not None:
        return known
    return _Kind(access_type, access_type, "of", f"create {access_type}")


def access_wording(item: Mapping[str, Any]) -> AccessWording:
    """An access item in words: the title names its type and wallet address; each action
    becomes a phrase ("read and list its quotes", "send payments from <wallet address>")."""
    access_type = str(item.get("type", "unknown"))
    kind = _kind(access_type)
    identifier = item.get("identifier")
    where = f" {kind.preposition} {identifier}" if isinstance(identifier, str) else ""
    actions = [str(action) for action in item.get("actions", ())]
    phrases: list[str] = []
    if "create" in actions:
        phrases.append(kind.create + where)
    if "complete" in actions:
        phrases.append(f"complete its {kind.noun}")
    own = [verb for verb in ("read", "list") if verb in actions]
    if own:
        phrases.append(f"{join_words(own)} its {kind.noun}")
    every = [verb for verb, all_ in (("read", "read-all"), ("list", "list-all")) if all_ in actions]
    if every:
        phrases.append(f"{join_words(every)} all {kind.noun}{where}, also those of other apps")
    known = {"create", "complete", "read", "list", "read-all", "list-all"}
    phrases.extend(f"{action} {kind.noun}" for action in actions if action not in known)
    limits: tuple[str, ...] = ()
    if access_type == "outgoing-payment":
        limits = tuple(limit_words(item.get("limits")))
    return AccessWording(kind.title + where, tuple(phrases), limits)


def limit_words(limits: Any) -> list[str]:
    """An outgoing-payment grant's limits, one sentence each; the period is the interval in
    words, or "in total" without one."""
    if not isinstance(limits, Mapping) or not limits:
        return ["No limit on the amount: it may send any amount"]
    interval = limits.get("interval")
    period = interval_words(interval) if isinstance(interval, str) else "in total"
    lines = []
    if "debitAmount" in limits:
        lines.append(f"Debit your account up to {_amount_words(limits['debitAmount'])} {period}")
    if "receiveAmount" in limits:
        lines.append(f"Receivers get up to {_amount_words(limits['receiveAmount'])} {period}")
    if "debitAmount" not in limits and "receiveAmount" not in limits:
        lines.append("No limit on the amount: it may send any amount")
        if isinstance(interval, str):
            lines.append(f"In periods: {period}")
    receiver = limits.get("receiver")
    if isinstance(receiver, str):
        lines.append(f"Pay only the receiver {receiver}")
    return lines


def subject_words(subject: Any) -> list[str]:
    """What a grant's subject asks: proof that the owner holds each wallet address."""
    if not isinstance(subject, Mapping):
        return []
    ids = [sub.get("id") for sub in subject.get("sub_ids", ()) if isinstance(sub, Mapping)]
    return [f"Confirm that you own {sub_id}" for sub_id in ids if isinstance(sub_id, str)]
