"""Outgoing-payment grant limits in the database, on SQLite and PostgreSQL: reservations
within the limits of the current interval, refusals that change nothing, rollover, release,
and concurrent payments that never overspend."""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Final

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from opase.amounts import AMOUNT_MINOR_MAX
from opase.authorization.spending import (
    LimitExceeded,
    OutsideInterval,
    Reservation,
    SpendingLimits,
    SpendingNotFound,
    Spent,
    create_spending,
    release,
    reserve,
    spent,
)
from opase.settings import Settings
from opase.storage.engine import create_engine, session_factory
from opase.storage.migrate import upgrade
from opase.storage.tables import Grant, GrantSpending

DAILY: Final = "R/2026-01-01T00:00:00Z/P1D"
JAN_1: Final = datetime(2026, 1, 1, tzinfo=UTC)
JAN_2: Final = datetime(2026, 1, 2, tzinfo=UTC)
JAN_3: Final = datetime(2026, 1, 3, tzinfo=UTC)
NOON: Final = timedelta(hours=12)
CONCURRENT_RESERVATIONS: Final = 200
CONCURRENT_LIMIT_MINOR: Final = 1_000
CONCURRENT_AMOUNT_MINOR: Final = 7

Sessions = async_sessionmaker[AsyncSession]


@pytest.fixture
async def sessions(settings: Settings) -> AsyncIterator[Sessions]:
    await upgrade(settings)
    engine = create_engine(settings)
    yield session_factory(engine)
    await engine.dispose()


async def new_grant(sessions: Sessions, limits: SpendingLimits | None) -> uuid.UUID:
    """A finalized grant, with its spending row when `limits` are given."""
    grant = Grant(
        state="finalized",
        client_wallet_address="https://wallet.example/client",
        client_key_id="key-1",
        client_key_thumbprint="t" * 43,
        continue_token_sha256=secrets.token_hex(32),
    )
    async with sessions() as session:
        session.add(grant)
        await session.flush()
        if limits is not None:
            await create_spending(session, grant.id, limits)
        await session.commit()
    return grant.id


async def stored(sessions: Sessions, grant_id: uuid.UUID) -> tuple[datetime | None, int, int]:
    """The row as committed: interval start, debit and receive spent."""
    async with sessions() as session:
        row = await session.get(GrantSpending, grant_id)
        assert row is not None
        return row.interval_start, row.debit_spent_minor, row.receive_spent_minor


async def reserved(
    sessions: Sessions, grant_id: uuid.UUID, at: datetime, debit_minor: int, receive_minor: int = 0
) -> Reservation:
    """A reservation in a transaction of its own, committed."""
    async with sessions() as session:
        made = await reserve(
            session, grant_id, at=at, debit_minor=debit_minor, receive_minor=receive_minor
        )
        await session.commit()
    return made


async def spent_at(sessions: Sessions, grant_id: uuid.UUID, at: datetime) -> Spent:
    async with sessions() as session:
        return await spent(session, grant_id, at=at)


async def test_reserve_within_the_limit(sessions: Sessions) -> None:
    grant_id = await new_grant(sessions, SpendingLimits(100, None, DAILY))
    made = await reserved(sessions, grant_id, JAN_1 + NOON, 30)
    assert made == Reservation(grant_id, JAN_1, 30, 0)
    assert await spent_at(sessions, grant_id, JAN_1 + NOON) == Spent(30, 0, JAN_1, JAN_2)
    # Up to the limit exactly.
    await reserved(sessions, grant_id, JAN_2 - timedelta(microseconds=1), 70)
    assert await stored(sessions, grant_id) == (JAN_1, 100, 0)


async def test_exceeding_the_limit_is_refused_and_changes_nothing(sessions: Sessions) -> None:
    grant_id = await new_grant(sessions, SpendingLimits(100, None, DAILY))
    await reserved(sessions, grant_id, JAN_1, 30)
    async with sessions() as session:
        with pytest.raises(LimitExceeded, match=r"debit 71 > 70 left") as refused:
            await reserve(session, grant_id, at=JAN_1 + NOON, debit_minor=71, receive_minor=0)
        assert refused.value.debit_left_minor == 70
        assert refused.value.receive_left_minor is None
        # The transaction stays usable, and the refusal wrote nothing.
        assert await spent(session, grant_id, at=JAN_1) == Spent(30, 0, JAN_1, JAN_2)
        await session.commit()
    assert await stored(sessions, grant_id) == (JAN_1, 30, 0)


async def test_a_new_interval_starts_from_zero(sessions: Sessions) -> None:
    grant_id = await new_grant(sessions, SpendingLimits(100, None, DAILY))
    await reserved(sessions, grant_id, JAN_1 + NOON, 100)
    # The boundary belongs to the next interval: its sums replace the old ones.
    assert await reserved(sessions, grant_id, JAN_2, 40) == Reservation(grant_id, JAN_2, 40, 0)
    assert await stored(sessions, grant_id) == (JAN_2, 40, 0)
    assert await spent_at(sessions, grant_id, JAN_2 + NOON) == Spent(40, 0, JAN_2, JAN_3)
    # Later still, nothing is used yet in that interval.
    assert await spent_at(sessions, grant_id, JAN_3) == Spent(0, 0, JAN_3, JAN_3 + 2 * NOON)


async def test_a_late_time_counts_against_the_newer_interval(sessions: Sessions) -> None:
    # A worker whose clock lags reserves "yesterday" after the rollover: the sums never go
    # back to an interval whose sums are gone, so it is counted in today's.
    grant_id = await new_grant(sessions, SpendingLimits(100, None, DAILY))
    await reserved(sessions, grant_id, JAN_2, 90)
    late = JAN_2 - timedelta(seconds=1)
    assert await reserved(sessions, grant_id, late, 10) == Reservation(grant_id, JAN_2, 10, 0)
    assert await spent_at(sessions, grant_id, late) == Spent(100, 0, JAN_2, JAN_3)
    async with sessions() as session:
        with pytest.raises(LimitExceeded):
            await reserve(session, grant_id, at=late, debit_minor=1, receive_minor=0)
    assert await stored(sessions, grant_id) == (JAN_2, 100, 0)


async def test_release_gives_back_within_the_same_interval(sessions: Sessions) -> None:
    grant_id = await new_grant(sessions, SpendingLimits(100, 80, DAILY))
    kept = await reserved(sessions, grant_id, JAN_1, 20, 15)
    failed = await reserved(sessions, grant_id, JAN_1 + NOON, 60, 50)
    async with sessions() as session:
        await release(session, failed)
        await session.commit()
    assert await stored(sessions, grant_id) == (JAN_1, 20, 15)
    await reserved(sessions, grant_id, JAN_1 + NOON, 80, 65)  # the room is back
    assert kept.interval_start == JAN_1


async def test_release_of_an_older_interval_does_nothing(sessions: Sessions) -> None:
    grant_id = await new_grant(sessions, SpendingLimits(100, None, DAILY))
    old = await reserved(sessions, grant_id, JAN_1, 60)
    await reserved(sessions, grant_id, JAN_2, 10)
    async with sessions() as session:
        await release(session, old)
        await session.commit()
    assert await stored(sessions, grant_id) == (JAN_2, 10, 0)


async def test_release_never_goes_below_zero(sessions: Sessions) -> None:
    grant_id = await new_grant(sessions, SpendingLimits(100, 100, DAILY))
    await reserved(sessions, grant_id, JAN_1, 10, 10)
    async with sessions() as session:
        await release(session, Reservation(grant_id, JAN_1, 25, 5))
        await session.commit()
    assert await stored(sessions, grant_id) == (JAN_1, 0, 5)


async def test_spent_before_any_reservation_and_in_a_later_interval(sessions: Sessions) -> None:
    grant_id = await new_grant(sessions, SpendingLimits(None, 100, "R/2026-01-01T00:00:00Z/P1M"))
    feb = datetime(2026, 2, 1, tzinfo=UTC)
    mar = datetime(2026, 3, 1, tzinfo=UTC)
    assert await spent_at(sessions, grant_id, JAN_3) == Spent(0, 0, JAN_1, feb)
    await reserved(sessions, grant_id, JAN_3, 500, 70)
    assert await spent_at(sessions, grant_id, JAN_3) == Spent(500, 70, JAN_1, feb)
    assert await spent_at(sessions, grant_id, feb) == Spent(0, 0, feb, mar)


async def test_debit_only_limit(sessions: Sessions) -> None:
    grant_id = await new_grant(sessions, SpendingLimits(100, None, None))
    await reserved(sessions, grant_id, JAN_1, 100, 10**15)  # receive is unlimited
    async with sessions() as session:
        with pytest.raises(LimitExceeded, match="debit 1 > 0 left"):
            await reserve(session, grant_id, at=JAN_1, debit_minor=1, receive_minor=0)


async def test_receive_only_limit(sessions: Sessions) -> None:
    grant_id = await new_grant(sessions, SpendingLimits(None, 50, DAILY))
    await reserved(sessions, grant_id, JAN_1, 10**15, 50)  # debit is unlimited
    async with sessions() as session:
        with pytest.raises(LimitExceeded, match="receive 1 > 0 left") as refused:
            await reserve(session, grant_id, at=JAN_1, debit_minor=0, receive_minor=1)
        assert (refused.value.debit_left_minor, refused.value.receive_left_minor) == (None, 0)
    assert await stored(sessions, grant_id) == (JAN_1, 10**15, 50)


async def test_without_interval_the_sums_accumulate_for_ever(sessions: Sessions) -> None:
    grant_id = await new_grant(sessions, SpendingLimits(100, None, None))
    made = await reserved(sessions, grant_id, JAN_1, 60)
    assert made == Reservation(grant_id, None, 60, 0)
    await reserved(sessions, grant_id, datetime(2030, 6, 1, tzinfo=UTC), 40)
    async with sessions() as session:
        with pytest.raises(LimitExceeded):
            await reserve(
                session,
                grant_id,
                at=datetime(2040, 1, 1, tzinfo=UTC),
                debit_minor=1,
                receive_minor=0,
            )
    assert await stored(sessions, grant_id) == (None, 100, 0)
    assert await spent_at(sessions, grant_id, JAN_1) == Spent(100, 0, None, None)
    async with sessions() as session:
        await release(session, made)
        await session.commit()
    assert await stored(sessions, grant_id) == (None, 40, 0)


async def test_without_limits_only_bigint_bounds_the_sums(sessions: Sessions) -> None:
    grant_id = await new_grant(sessions, SpendingLimits(None, None, None))
    await reserved(sessions, grant_id, JAN_1, AMOUNT_MINOR_MAX - 1, 5)
    await reserved(sessions, grant_id, JAN_1, 1, 5)
    async with sessions() as session:
        with pytest.raises(LimitExceeded):  # not a database overflow error
            await reserve(session, grant_id, at=JAN_1, debit_minor=1, receive_minor=0)
    assert await stored(sessions, grant_id) == (None, AMOUNT_MINOR_MAX, 10)


async def test_a_zero_limit_allows_nothing(sessions: Sessions) -> None:
    grant_id = await new_grant(sessions, SpendingLimits(0, None, DAILY))
    await reserved(sessions, grant_id, JAN_1, 0)
    async with sessions() as session:
        with pytest.raises(LimitExceeded):
            await reserve(session, grant_id, at=JAN_1, debit_minor=1, receive_minor=0)


async def test_no_allowance_outside_the_interval(sessions: Sessions) -> None:
    grant_id = await new_grant(sessions, SpendingLimits(100, None, "R1/2026-01-01T00:00:00Z/P1D"))
    async with sessions() as session:
        for at in (JAN_1 - timedelta(microseconds=1), JAN_3):  # not started; over
            with pytest.raises(OutsideInterval, match="no repetition of its interval"):
                await reserve(session, grant_id, at=at, debit_minor=1, receive_minor=0)
            with pytest.raises(OutsideInterval):
                await spent(session, grant_id, at=at)
    await reserved(sessions, grant_id, JAN_3 - timedelta(microseconds=1), 100)
    assert await stored(sessions, grant_id) == (JAN_2, 100, 0)


async def test_a_grant_without_spending_row(sessions: Sessions) -> None:
    grant_id = await new_grant(sessions, None)
    async with sessions() as session:
        with pytest.raises(SpendingNotFound, match=str(grant_id)):
            await reserve(session, grant_id, at=JAN_1, debit_minor=1, receive_minor=0)
        with pytest.raises(LookupError):
            await spent(session, grant_id, at=JAN_1)


async def test_an_invalid_interval_is_not_stored(sessions: Sessions) -> None:
    grant_id = await new_grant(sessions, None)
    async with sessions() as session:
        with pytest.raises(ValueError, match="repetition count"):
            await create_spending(
                session, grant_id, SpendingLimits(1, None, "R-2/2026-01-01T00:00:00Z/P1D")
            )
        count = await session.scalar(sa.select(sa.func.count()).select_from(GrantSpending))
        assert count == 0


# --- concurrency ----------------------------------------------------------------------------


async def _attempt(
    sessions: Sessions, grant_id: uuid.UUID, at: datetime, amount_minor: int
) -> Reservation | None:
    """One payment's reservation, in a transaction of its own: None when refused."""
    async with sessions() as session:
        try:
            made = await reserve(
                session, grant_id, at=at, debit_minor=amount_minor, receive_minor=0
            )
        except LimitExceeded:
            await session.rollback()
            return None
        # Let the other tasks run while this transaction holds the row.
        await asyncio.sleep(0)
        await session.commit()
        return made


async def test_concurrent_reservations_never_exceed_the_limit(sessions: Sessions) -> None:
    grant_id = await new_grant(
        sessions, SpendingLimits(CONCURRENT_LIMIT_MINOR, None, "R/2026-01-01T00:00:00Z/P1M")
    )
    at = datetime(2026, 1, 15, tzinfo=UTC)
    outcomes = await asyncio.gather(
        *(
            _attempt(sessions, grant_id, at, CONCURRENT_AMOUNT_MINOR)
            for _ in range(CONCURRENT_RESERVATIONS)
        )
    )
    successes = sum(made is not None for made in outcomes)
    assert successes * CONCURRENT_AMOUNT_MINOR <= CONCURRENT_LIMIT_MINOR
    # The most that fits: no reservation was refused while there was room for it.
    assert successes == CONCURRENT_LIMIT_MINOR // CONCURRENT_AMOUNT_MINOR
    assert await stored(sessions, grant_id) == (JAN_1, successes * CONCURRENT_AMOUNT_MINOR, 0)


async def test_concurrent_reservations_across_a_rollover(sessions: Sessions) -> None:
    # Half the payments in one interval, half in the next, racing: whatever the order, the
    # stored interval is the later one and its sum is exactly what was reserved in it.
    grant_id = await new_grant(sessions, SpendingLimits(CONCURRENT_LIMIT_MINOR, None, DAILY))
    times = [JAN_1 + NOON, JAN_2 + NOON]
    outcomes = await asyncio.gather(
        *(
            _attempt(sessions, grant_id, times[index % 2], CONCURRENT_AMOUNT_MINOR)
            for index in range(CONCURRENT_RESERVATIONS)
        )
    )
    made = [reservation for reservation in outcomes if reservation is not None]
    in_jan_2 = [reservation for reservation in made if reservation.interval_start == JAN_2]
    assert {reservation.interval_start for reservation in made} <= {JAN_1, JAN_2}
    for index, reservation in enumerate(outcomes):
        if reservation is not None and index % 2:
            assert reservation.interval_start == JAN_2
    interval_start, debit_spent_minor, _ = await stored(sessions, grant_id)
    assert interval_start == JAN_2
    assert debit_spent_minor == CONCURRENT_AMOUNT_MINOR * len(in_jan_2) <= CONCURRENT_LIMIT_MINOR
    # Jan 1 holds at most 100 of them (700): a refusal means Jan 2 was full.
    assert len(made) == CONCURRENT_RESERVATIONS or (
        len(in_jan_2) == CONCURRENT_LIMIT_MINOR // CONCURRENT_AMOUNT_MINOR
    )


async def test_a_naive_time_is_refused(sessions: Sessions) -> None:
    grant_id = await new_grant(sessions, SpendingLimits(100, None, None))
    async with sessions() as session:
        with pytest.raises(ValueError, match="naive"):
            await reserve(
                session, grant_id, at=datetime(2026, 1, 1), debit_minor=1, receive_minor=0
            )
        with pytest.raises(ValueError, match="naive"):
            await spent(session, grant_id, at=datetime(2026, 1, 1))
