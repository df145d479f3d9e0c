"""Two-phase transfers: a reservation lowers what is available but moves nothing; posting
moves all or part of it and releases the rest; voiding releases it; after the timeout only
`void_expired` releases it, and only the expired ones."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from opase.ledger import (
    PENDING_TIMEOUT_S_MAX,
    Balance,
    InsufficientFunds,
    PendingExpired,
    TransferNotFound,
    TransferNotPending,
    TransferResult,
    audit,
    balance,
    deposit,
    post_pending,
    reserve,
    transfer,
    void_expired,
    void_pending,
)
from opase.storage.tables import utc_now
from tests.ledger.accounts import Accounts, snapshot


async def _funded_reservation(
    sessions: async_sessionmaker[AsyncSession],
    accounts: Accounts,
    *,
    amount_minor: int = 400,
    timeout_s: int = 60,
) -> TransferResult:
    """Alice holds 1000 and reserves `amount_minor` of it for Bob; committed."""
    async with sessions() as session:
        await deposit(session, accounts.alice, 1_000, "d-1")
        pending = await reserve(
            session,
            debit_account_id=accounts.alice_account,
            credit_account_id=accounts.bob_account,
            amount_minor=amount_minor,
            idempotency_key="r-1",
            timeout_s=timeout_s,
            memo="payment 1",
        )
        await session.commit()
    return pending


async def test_reserve_lowers_available_but_not_posted(
    sessions: async_sessionmaker[AsyncSession], accounts: Accounts
) -> None:
    before_reserve = utc_now()
    pending = await _funded_reservation(sessions, accounts)
    assert pending.kind == "pending" and pending.memo == "payment 1"
    assert pending.expires_at is not None
    assert pending.expires_at - pending.created_at == timedelta(seconds=60)
    assert before_reserve <= pending.created_at <= utc_now()
    async with sessions() as session:
        assert await balance(session, accounts.alice_account) == Balance(1_000, 400, 0, 600)
        # Pending credits are not Bob's to spend yet.
        assert await balance(session, accounts.bob_account) == Balance(0, 0, 400, 0)
        with pytest.raises(InsufficientFunds):
            await transfer(
                session,
                debit_account_id=accounts.alice_account,
                credit_account_id=accounts.bob_account,
                amount_minor=601,
                idempotency_key="too-much",
            )
        assert await audit(session) == []


async def test_post_moves_the_reserved_amount(
    sessions: async_sessionmaker[AsyncSession], accounts: Accounts
) -> None:
    pending = await _funded_reservation(sessions, accounts)
    async with sessions() as session:
        posted = await post_pending(session, pending.id, idempotency_key="p-1")
        await session.commit()
    assert (posted.kind, posted.amount_minor, posted.pending_id) == (
        "post_pending",
        400,
        pending.id,
    )
    assert (posted.debit_account_id, posted.credit_account_id) == (
        accounts.alice_account,
        accounts.bob_account,
    )
    async with sessions() as session:
        assert await balance(session, accounts.alice_account) == Balance(600, 0, 0, 600)
        assert await balance(session, accounts.bob_account) == Balance(400, 0, 0, 400)
        assert await audit(session) == []


async def test_partial_post_releases_the_rest(
    sessions: async_sessionmaker[AsyncSession], accounts: Accounts
) -> None:
    pending = await _funded_reservation(sessions, accounts)
    async with sessions() as session:
        with pytest.raises(ValueError, match="exceeds the 400 reserved"):
            await post_pending(session, pending.id, idempotency_key="p-1", amount_minor=401)
        posted = await post_pending(session, pending.id, idempotency_key="p-1", amount_minor=150)
        await session.commit()
    assert posted.amount_minor == 150
    async with sessions() as session:
        assert await balance(session, accounts.alice_account) == Balance(850, 0, 0, 850)
        assert await balance(session, accounts.bob_account) == Balance(150, 0, 0, 150)
        assert await audit(session) == []


async def test_void_releases_the_reservation(
    sessions: async_sessionmaker[AsyncSession], accounts: Accounts
) -> None:
    pending = await _funded_reservation(sessions, accounts)
    async with sessions() as session:
        voided = await void_pending(session, pending.id, idempotency_key="v-1")
        await session.commit()
    assert (voided.kind, voided.amount_minor, voided.pending_id) == (
        "void_pending",
        400,
        pending.id,
    )
    async with sessions() as session:
        assert await balance(session, accounts.alice_account) == Balance(1_000, 0, 0, 1_000)
        assert await balance(session, accounts.bob_account) == Balance(0, 0, 0, 0)
        assert await audit(session) == []


async def test_a_resolved_or_non_pending_transfer_cannot_be_posted_or_voided(
    sessions: async_sessionmaker[AsyncSession], accounts: Accounts
) -> None:
    pending = await _funded_reservation(sessions, accounts)
    async with sessions() as session:
        posted = await post_pending(session, pending.id, idempotency_key="p-1")
        await session.commit()
    before = await snapshot(sessions)
    async with sessions() as session:
        with pytest.raises(TransferNotPending, match="already posted"):
            await void_pending(session, pending.id, idempotency_key="v-1")
        with pytest.raises(TransferNotPending, match="already posted"):
            await post_pending(session, pending.id, idempotency_key="p-2")
        # A posted transfer (single-phase, or the post itself) was never pending.
        with pytest.raises(TransferNotPending, match="not pending"):
            await void_pending(session, posted.id, idempotency_key="v-2")
        with pytest.raises(TransferNotFound):
            await post_pending(session, uuid.uuid4(), idempotency_key="p-3")
        await session.commit()
    assert await snapshot(sessions) == before


async def test_an_expired_reservation_is_refused_and_only_the_sweep_releases_it(
    sessions: async_sessionmaker[AsyncSession], accounts: Accounts
) -> None:
    pending = await _funded_reservation(sessions, accounts, timeout_s=30)
    assert pending.expires_at is not None
    before = await snapshot(sessions)
    async with sessions() as session:
        for at in (pending.expires_at, pending.expires_at + timedelta(days=1)):
            with pytest.raises(PendingExpired):
                await post_pending(session, pending.id, idempotency_key="p-1", now=at)
            with pytest.raises(PendingExpired):
                await void_pending(session, pending.id, idempotency_key="v-1", now=at)
        await session.commit()
    assert await snapshot(sessions) == before
    async with sessions() as session:
        voided_count = await void_expired(session, pending.expires_at)
        await session.commit()
        assert voided_count == 1
        assert await balance(session, accounts.alice_account) == Balance(1_000, 0, 0, 1_000)
        with pytest.raises(TransferNotPending, match="already voided"):
            await post_pending(session, pending.id, idempotency_key="p-1")
        assert await void_expired(session, pending.expires_at) == 0
        assert await audit(session) == []


async def test_void_expired_voids_only_expired_ones(
    sessions: async_sessionmaker[AsyncSession], accounts: Accounts
) -> None:
    async with sessions() as session:
        await deposit(session, accounts.alice, 1_000, "d-1")
        reservations = {}
        for timeout_s in (10, 20, 30):
            reservations[timeout_s] = await reserve(
                session,
                debit_account_id=accounts.alice_account,
                credit_account_id=accounts.bob_account,
                amount_minor=timeout_s,
                idempotency_key=f"r-{timeout_s}",
                timeout_s=timeout_s,
            )
        await post_pending(session, reservations[10].id, idempotency_key="p-10")
        await session.commit()
    start = reservations[30].created_at
    async with sessions() as session:
        # 10 s is posted (not pending any more); 20 s has expired; 30 s has not.
        assert await void_expired(session, start + timedelta(seconds=25)) == 1
        await session.commit()
        assert await balance(session, accounts.alice_account) == Balance(990, 30, 0, 960)
        assert await void_expired(session, start + timedelta(seconds=25)) == 0
        assert await void_expired(session, start + timedelta(seconds=31)) == 1
        await session.commit()
        assert await balance(session, accounts.alice_account) == Balance(990, 0, 0, 990)
        assert await balance(session, accounts.bob_account) == Balance(10, 0, 0, 10)
        assert await audit(session) == []


async def test_void_expired_works_in_batches(
    sessions: async_sessionmaker[AsyncSession], accounts: Accounts
) -> None:
    async with sessions() as session:
        await deposit(session, accounts.alice, 100, "d-1")
        for index in range(5):
            await reserve(
                session,
                debit_account_id=accounts.alice_account,
                credit_account_id=accounts.bob_account,
                amount_minor=1,
                idempotency_key=f"r-{index}",
                timeout_s=1,
            )
        await session.commit()
    later = utc_now() + timedelta(seconds=2)
    async with sessions() as session:
        assert [await void_expired(session, later, count_max=2) for _ in range(4)] == [2, 2, 1, 0]
        await session.commit()
        assert await balance(session, accounts.alice_account) == Balance(100, 0, 0, 100)


@pytest.mark.parametrize(
    ("timeout_s", "error"),
    [(0, ValueError), (-1, ValueError), (PENDING_TIMEOUT_S_MAX + 1, ValueError), (1.5, TypeError)],
)
async def test_bad_timeouts_are_refused(
    sessions: async_sessionmaker[AsyncSession],
    accounts: Accounts,
    timeout_s: object,
    error: type[Exception],
) -> None:
    before = await snapshot(sessions)
    async with sessions() as session:
        with pytest.raises(error, match="timeout_s"):
            await reserve(
                session,
                debit_account_id=accounts.alice_account,
                credit_account_id=accounts.bob_account,
                amount_minor=1,
                idempotency_key="r",
                timeout_s=timeout_s,  # type: ignore[arg-type]
            )
        with pytest.raises(ValueError, match="naive"):
            await void_expired(session, datetime(2030, 1, 1))
    assert await snapshot(sessions) == before


async def test_reserve_refuses_more_than_available(
    sessions: async_sessionmaker[AsyncSession], accounts: Accounts
) -> None:
    await _funded_reservation(sessions, accounts, amount_minor=1_000)
    before = await snapshot(sessions)
    async with sessions() as session:
        with pytest.raises(InsufficientFunds):
            await reserve(
                session,
                debit_account_id=accounts.alice_account,
                credit_account_id=accounts.bob_account,
                amount_minor=1,
                idempotency_key="r-2",
                timeout_s=60,
            )
    assert await snapshot(sessions) == before
