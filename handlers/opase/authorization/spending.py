"""What an outgoing-payment grant may still spend: its limits and the amounts used in the
current interval, in one `grant_spending` row per grant.

A reservation is one conditional UPDATE of that row: it adds the amounts to the sums of the
current interval (or, the first time in a new interval, replaces the sums of the old one),
provided the results stay within the limits. The database evaluates the condition on the
row as it is when the UPDATE runs: PostgreSQL makes a concurrent reservation of the same
grant wait for this transaction and re-checks the condition against the committed row;
SQLite has one writer at a time. So concurrent payments can never overspend, and a check
costs O(1) whatever the grant's history. The table's CHECK constraints hold the limits even
against a faulty statement.

The caller owns the transaction (nothing here commits): a reservation made in a transaction
that rolls back never happened. A payment that fails after its reservation was committed
gives the amounts back with `release`.

Decisions:
- A grant without a `grant_spending` row (one with no outgoing-payment access) cannot
  reserve: `SpendingNotFound`, a LookupError.
- No interval: the limits hold for the grant's whole life; `interval_start` stays NULL.
- A reservation whose time falls before the stored interval (a worker whose clock lags,
  near a boundary) counts against the stored, newer interval: the sums only ever move
  forward, never back to an interval whose sums are gone; erring that way cannot overspend.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Final

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from opase.amounts import AMOUNT_MINOR_MAX
from opase.authorization.intervals import parse_repeating_interval
from opase.storage.tables import GrantSpending, UtcDateTime, sa_table

_TABLE: Final = sa_table(GrantSpending)


@dataclass(frozen=True)
class SpendingLimits:
    """An outgoing-payment access item's limits, in minor units; None: no such limit."""

    debit_limit_minor: int | None
    receive_limit_minor: int | None
    interval: str | None
    """ISO 8601 repeating interval; None: the limits hold for the grant's whole life."""

    def __post_init__(self) -> None:
        for limit_minor in (self.debit_limit_minor, self.receive_limit_minor):
            assert limit_minor is None or 0 <= limit_minor <= AMOUNT_MINOR_MAX, limit_minor


@dataclass(frozen=True)
class Reservation:
    """Amounts counted against a grant's limits: what `release` gives back."""

    grant_id: uuid.UUID
    interval_start: datetime | None
    """The interval whose sums hold the amounts; None for a grant without interval."""
    debit_minor: int
    receive_minor: int


@dataclass(frozen=True)
class Spent:
    """What payments under a grant have used of the interval [interval_start, interval_end);
    both None for a grant without interval (the whole life of the grant)."""

    debit_minor: int
    receive_minor: int
    interval_start: datetime | None
    interval_end: datetime | None


class SpendingNotFound(LookupError):
    """The grant has no outgoing-payment limits row: it grants no outgoing payments."""

    def __init__(self, grant_id: uuid.UUID) -> None:
        super().__init__(f"grant {grant_id} has no outgoing-payment spending record")
        self.grant_id = grant_id


class OutsideInterval(Exception):
    """No repetition of the grant's interval contains the payment's time: the interval has
    not started yet, or its last repetition is over. The grant allows nothing then."""

    def __init__(self, grant_id: uuid.UUID, interval: str, at: datetime) -> None:
        super().__init__(
            f"grant {grant_id} allows no payment at {at.isoformat()}: no repetition of its "
            f"interval {interval} contains that time"
        )
        self.grant_id = grant_id
        self.interval = interval
        self.at = at


class LimitExceeded(Exception):
    """The amounts do not fit in what the grant has left in the current interval."""

    def __init__(
        self,
        grant_id: uuid.UUID,
        *,
        debit_minor: int,
        receive_minor: int,
        debit_left_minor: int | None,
        receive_left_minor: int | None,
    ) -> None:
        refused = []
        if debit_left_minor is not None and debit_minor > debit_left_minor:
            refused.append(f"debit {debit_minor} > {debit_left_minor} left")
        if receive_left_minor is not None and receive_minor > receive_left_minor:
            refused.append(f"receive {receive_minor} > {receive_left_minor} left")
        # Empty when a concurrent release freed the room between the refusal and the look.
        detail = "; ".join(refused) or "the limit was reached"
        super().__init__(f"grant {grant_id}: the payment exceeds the grant's limits ({detail})")
        self.grant_id = grant_id
        self.debit_left_minor = debit_left_minor
        self.receive_left_minor = receive_left_minor


async def create_spending(
    session: AsyncSession, grant_id: uuid.UUID, limits: SpendingLimits
) -> None:
    """Record a new grant's limits, nothing spent; ValueError for an invalid interval."""
    if limits.interval is not None:
        parse_repeating_interval(limits.interval)
    await session.execute(
        sa.insert(_TABLE).values(
            grant_id=grant_id,
            debit_limit_minor=limits.debit_limit_minor,
            receive_limit_minor=limits.receive_limit_minor,
            interval=limits.interval,
            interval_start=None,
            debit_spent_minor=0,
            receive_spent_minor=0,
        )
    )


async def reserve(
    session: AsyncSession,
    grant_id: uuid.UUID,
    *,
    at: datetime,
    debit_minor: int,
    receive_minor: int,
) -> Reservation:
    """Count a payment made at `at` against the grant's limits, or refuse it with
    LimitExceeded (nothing changed) or OutsideInterval; SpendingNotFound without a row.

    One conditional UPDATE decides (the interval text read first never changes).
    """
    _check_amount(debit_minor)
    _check_amount(receive_minor)
    _check_aware(at)
    current_start = await _current_interval_start(session, grant_id, at)
    columns = _TABLE.c
    if current_start is None:  # no interval: one sum for the grant's life
        same_interval: sa.ColumnElement[bool] = sa.true()
    else:
        same_interval = columns.interval_start >= current_start
    zero = sa.literal(0, sa.BigInteger)
    debit_kept = sa.case((same_interval, columns.debit_spent_minor), else_=zero)
    receive_kept = sa.case((same_interval, columns.receive_spent_minor), else_=zero)
    values: dict[str, sa.ColumnElement[object]] = {
        "debit_spent_minor": debit_kept + sa.literal(debit_minor, sa.BigInteger),
        "receive_spent_minor": receive_kept + sa.literal(receive_minor, sa.BigInteger),
    }
    if current_start is not None:
        values["interval_start"] = sa.case(
            (same_interval, columns.interval_start),
            else_=sa.literal(current_start, UtcDateTime()),
        )
    statement = (
        sa.update(_TABLE)
        .where(
            columns.grant_id == grant_id,
            _fits(debit_kept, columns.debit_limit_minor, debit_minor),
            _fits(receive_kept, columns.receive_limit_minor, receive_minor),
        )
        .values(values)
        .returning(columns.interval_start)
    )
    updated = (await session.execute(statement)).one_or_none()
    if updated is None:
        raise await _limit_exceeded(session, grant_id, current_start, debit_minor, receive_minor)
    interval_start = updated.interval_start
    assert (interval_start is None) == (current_start is None), (interval_start, current_start)
    assert current_start is None or interval_start >= current_start
    return Reservation(grant_id, interval_start, debit_minor, receive_minor)


async def release(session: AsyncSession, reservation: Reservation) -> None:
    """Give back a reservation whose payment failed, if its interval is still the current
    one (an older interval's sums are gone, and so is the need). Call once per reservation:
    the sums never go below 0, but a second release would give back another payment's."""
    _check_amount(reservation.debit_minor)
    _check_amount(reservation.receive_minor)
    columns = _TABLE.c
    same_interval: sa.ColumnElement[bool]
    if reservation.interval_start is None:
        same_interval = columns.interval_start.is_(None)
    else:
        same_interval = columns.interval_start == reservation.interval_start
    statement = (
        sa.update(_TABLE)
        .where(columns.grant_id == reservation.grant_id, same_interval)
        .values(
            debit_spent_minor=_minus(columns.debit_spent_minor, reservation.debit_minor),
            receive_spent_minor=_minus(columns.receive_spent_minor, reservation.receive_minor),
        )
    )
    await session.execute(statement)


async def spent(session: AsyncSession, grant_id: uuid.UUID, *, at: datetime) -> Spent:
    """What the grant has used in the interval containing `at` (as `reserve` counts it:
    a time before the stored interval is counted in the stored one); OutsideInterval when
    no repetition contains `at`, SpendingNotFound without a row."""
    _check_aware(at)
    row = await _row(session, grant_id)
    if row.interval is None:
        return Spent(row.debit_spent_minor, row.receive_spent_minor, None, None)
    interval = parse_repeating_interval(row.interval)
    current = interval.containing(at)
    if current is None:
        raise OutsideInterval(grant_id, row.interval, at)
    stored_start = row.interval_start
    if stored_start is None or stored_start < current[0]:
        return Spent(0, 0, *current)
    stored = interval.containing(stored_start)
    assert stored is not None and stored[0] == stored_start, (stored, stored_start)
    return Spent(row.debit_spent_minor, row.receive_spent_minor, *stored)


# --- helpers --------------------------------------------------------------------------------


def _check_amount(amount_minor: int) -> None:
    assert isinstance(amount_minor, int) and not isinstance(amount_minor, bool), amount_minor
    assert 0 <= amount_minor <= AMOUNT_MINOR_MAX, amount_minor


def _check_aware(at: datetime) -> None:
    # A grant without interval ignores the time, but a naive one is a bug all the same.
    if at.tzinfo is None:
        raise ValueError(f"naive datetime {at!r}: give a time zone")


def _fits(
    kept: sa.ColumnElement[int], limit: sa.ColumnElement[int | None], amount_minor: int
) -> sa.ColumnElement[bool]:
    """kept + amount within the limit (if any) and within BIGINT, computing no sum."""
    room = sa.literal(AMOUNT_MINOR_MAX - amount_minor, sa.BigInteger)
    within_limit = kept <= limit - sa.literal(amount_minor, sa.BigInteger)
    return sa.and_(kept <= room, sa.or_(limit.is_(None), within_limit))


def _minus(spent_column: sa.ColumnElement[int], amount_minor: int) -> sa.ColumnElement[int]:
    amount = sa.literal(amount_minor, sa.BigInteger)
    return sa.case(
        (spent_column >= amount, spent_column - amount), else_=sa.literal(0, sa.BigInteger)
    )


@dataclass(frozen=True)
class _Stored:
    """A grant_spending row, as read (for `spent` and to explain a refusal)."""

    interval: str | None
    interval_start: datetime | None
    debit_limit_minor: int | None
    receive_limit_minor: int | None
    debit_spent_minor: int
    receive_spent_minor: int


async def _row(session: AsyncSession, grant_id: uuid.UUID) -> _Stored:
    columns = _TABLE.c
    query = sa.select(
        columns.interval,
        columns.interval_start,
        columns.debit_limit_minor,
        columns.receive_limit_minor,
        columns.debit_spent_minor,
        columns.receive_spent_minor,
    ).where(columns.grant_id == grant_id)
    row = (await session.execute(query)).one_or_none()
    if row is None:
        raise SpendingNotFound(grant_id)
    return _Stored(*row)


async def _current_interval_start(
    session: AsyncSession, grant_id: uuid.UUID, at: datetime
) -> datetime | None:
    """The start of the repetition containing `at`; None for a grant without interval."""
    columns = _TABLE.c
    query = sa.select(columns.interval).where(columns.grant_id == grant_id)
    found = (await session.execute(query)).one_or_none()
    if found is None:
        raise SpendingNotFound(grant_id)
    text: str | None = found.interval
    if text is None:
        return None
    current = parse_repeating_interval(text).containing(at)
    if current is None:
        raise OutsideInterval(grant_id, text, at)
    return current[0]


async def _limit_exceeded(
    session: AsyncSession,
    grant_id: uuid.UUID,
    current_start: datetime | None,
    debit_minor: int,
    receive_minor: int,
) -> LimitExceeded:
    """The refusal, with what is left: read after the UPDATE decided, only to explain it."""
    row = await _row(session, grant_id)
    stored_start = row.interval_start
    kept = current_start is None or (stored_start is not None and stored_start >= current_start)
    left = []
    for limit_minor, spent_minor in (
        (row.debit_limit_minor, row.debit_spent_minor),
        (row.receive_limit_minor, row.receive_spent_minor),
    ):
        left.append(None if limit_minor is None else limit_minor - (spent_minor if kept else 0))
    return LimitExceeded(
        grant_id,
        debit_minor=debit_minor,
        receive_minor=receive_minor,
        debit_left_minor=left[0],
        receive_left_minor=left[1],
    )
