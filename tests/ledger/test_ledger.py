"""The double-entry ledger on both databases."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from opase.amounts import AMOUNT_MINOR_MAX
from opase.ledger import (
    BalanceOverflow,
    IdempotencyKeyReused,
    account_balance_minor,
    balance_minor,
    deposit,
    settlement_account,
    wallet_account,
)
from opase.storage.tables import LedgerAccount, LedgerTransfer
from opase.wallets.directory import create_asset, create_wallet_address


async def _wallets(
    sessions: async_sessionmaker[AsyncSession],
) -> tuple[uuid.UUID, uuid.UUID, uuid.UUID]:
    """/alice and /bob in USD, /carol in EUR; committed."""
    async with sessions() as session:
        usd = await create_asset(session, "USD", 2)
        eur = await create_asset(session, "EUR", 2)
        alice = await create_wallet_address(session, "/alice", usd.id, None)
        bob = await create_wallet_address(session, "/bob", usd.id, None)
        carol = await create_wallet_address(session, "/carol", eur.id, None)
        await session.commit()
    return alice.id, bob.id, carol.id


async def _state(session: AsyncSession) -> tuple[int, dict[uuid.UUID, int]]:
    """Transfer count and every account's balance: what a refused call must not change."""
    count = (await session.execute(select(func.count()).select_from(LedgerTransfer))).scalar_one()
    account_ids = (await session.execute(select(col(LedgerAccount.id)))).scalars().all()
    return count, {a: await account_balance_minor(session, a) for a in account_ids}


async def test_deposit_is_double_entry(sessions: async_sessionmaker[AsyncSession]) -> None:
    alice, bob, carol = await _wallets(sessions)
    async with sessions() as session:
        await deposit(session, alice, 1_000, "d-1")
        await deposit(session, alice, 250, "d-2")
        await deposit(session, bob, 7, "d-3")
        await deposit(session, carol, 99, "d-4")
        await session.commit()
    async with sessions() as session:
        assert await balance_minor(session, alice) == 1_250
        assert await balance_minor(session, bob) == 7
        assert await balance_minor(session, carol) == 99
        _, balances = await _state(session)
        # Money is neither made nor destroyed: all balances, of every asset, sum to zero...
        assert sum(balances.values()) == 0
        # ...and each asset's settlement account holds minus what its wallets hold.
        usd = await settlement_account(session, (await wallet_account(session, alice)).asset_id)
        eur = await settlement_account(session, (await wallet_account(session, carol)).asset_id)
        assert balances[usd.id] == -1_257
        assert balances[eur.id] == -99
        transfers = (await session.execute(select(LedgerTransfer))).scalars().all()
        assert len(transfers) == 4
        assert all(t.debit_account_id in (usd.id, eur.id) for t in transfers)


async def test_new_wallet_balance_is_zero(sessions: async_sessionmaker[AsyncSession]) -> None:
    alice, _, _ = await _wallets(sessions)
    async with sessions() as session:
        assert await balance_minor(session, alice) == 0


async def test_repeated_deposit_changes_nothing(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    alice, _, _ = await _wallets(sessions)
    async with sessions() as session:
        first = await deposit(session, alice, 500, "once")
        await session.commit()
    async with sessions() as session:
        before = await _state(session)
        again = await deposit(session, alice, 500, "once")
        await session.commit()
    assert again == first
    async with sessions() as session:
        assert await _state(session) == before
        assert await balance_minor(session, alice) == 500


async def test_idempotency_key_reused_for_another_deposit_is_refused(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    alice, bob, _ = await _wallets(sessions)
    async with sessions() as session:
        await deposit(session, alice, 500, "once")
        await session.commit()
    async with sessions() as session:
        before = await _state(session)
        with pytest.raises(IdempotencyKeyReused):
            await deposit(session, alice, 501, "once")
        with pytest.raises(IdempotencyKeyReused):
            await deposit(session, bob, 500, "once")
        assert await _state(session) == before


async def test_concurrent_repeats_make_one_transfer(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    # Two transactions race with one key: the second waits on the unique index, then
    # finds the first one's transfer instead of failing or moving the money twice.
    alice, _, _ = await _wallets(sessions)
    async with sessions() as session:
        # Exists beforehand, so that the race is on the transfer's idempotency key.
        await settlement_account(session, (await wallet_account(session, alice)).asset_id)
        await session.commit()
    async with sessions() as first, sessions() as second:
        first_id = await deposit(first, alice, 300, "race")
        racing = asyncio.create_task(deposit(second, alice, 300, "race"))
        await asyncio.sleep(0.2)
        await first.commit()
        second_id = await racing
        await second.commit()
    assert second_id == first_id
    async with sessions() as session:
        assert await balance_minor(session, alice) == 300
        assert (await _state(session))[0] == 1


@pytest.mark.parametrize(
    ("amount_minor", "error"),
    [
        (0, ValueError),
        (-1, ValueError),
        (-(2**63), ValueError),
        (AMOUNT_MINOR_MAX + 1, ValueError),
        (10**30, ValueError),
        (True, TypeError),
        (1.0, TypeError),
        (Decimal(1), TypeError),
    ],
)
async def test_deposit_refuses_bad_amounts_and_changes_nothing(
    sessions: async_sessionmaker[AsyncSession], amount_minor: int, error: type[Exception]
) -> None:
    alice, _, _ = await _wallets(sessions)
    async with sessions() as session:
        await deposit(session, alice, 10, "before")
        await session.commit()
    async with sessions() as session:
        before = await _state(session)
        with pytest.raises(error, match="amount_minor"):
            await deposit(session, alice, amount_minor, "bad")
        await session.commit()
    async with sessions() as session:
        assert await _state(session) == before
        # The refused call did not use up its idempotency key.
        await deposit(session, alice, 1, "bad")
        assert await balance_minor(session, alice) == 11


async def test_largest_amount_is_exact_and_balances_cannot_overflow(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    alice, bob, _ = await _wallets(sessions)
    async with sessions() as session:
        await deposit(session, alice, AMOUNT_MINOR_MAX, "max")
        await session.commit()
    async with sessions() as session:
        # BIGINT round trip, no float on the way: 2**63-1 is not representable as a double.
        assert await balance_minor(session, alice) == AMOUNT_MINOR_MAX
        before = await _state(session)
        # Both the wallet's credits and the settlement account's debits would overflow.
        with pytest.raises(BalanceOverflow, match="above 9223372036854775807"):
            await deposit(session, alice, 1, "one more")
        assert await _state(session) == before
        # The asset's settlement account has posted 2**63-1 of debits: no wallet of the asset
        # may receive more. BalanceOverflow is a ValueError, for callers that map those.
        with pytest.raises(ValueError, match="debits_posted_minor of settlement account"):
            await deposit(session, bob, 1, "bob")
        assert await _state(session) == before
        assert sum(before[1].values()) == 0


async def test_deposit_needs_a_wallet_account(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions() as session:
        with pytest.raises(LookupError):
            await deposit(session, uuid.uuid4(), 1, "nobody")


async def test_settlement_account_is_one_per_asset(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as session:
        usd = await create_asset(session, "USD", 2)
        await session.commit()
    async with sessions() as session:
        first = await settlement_account(session, usd.id)
        await session.commit()
    async with sessions() as session:
        assert (await settlement_account(session, usd.id)).id == first.id
        # The partial unique index holds even for writers that bypass the service.
        session.add(LedgerAccount(asset_id=usd.id, kind="settlement", credit_limit_minor=None))
        with pytest.raises(IntegrityError, match=r"(?i)unique"):
            await session.flush()


@pytest.mark.parametrize(
    ("kind", "of_wallet_address"),
    [
        ("wallet", False),  # a wallet account without its wallet address
        ("settlement", True),  # a settlement account of a wallet address
        ("savings", False),
    ],
)
async def test_account_kind_constraints(
    sessions: async_sessionmaker[AsyncSession], kind: str, of_wallet_address: bool
) -> None:
    alice, _, _ = await _wallets(sessions)
    async with sessions() as session:
        asset_id = (await wallet_account(session, alice)).asset_id
        wallet_address_id = alice if of_wallet_address else None
        # A valid limit for the kind, so that only the kind or its wallet address is wrong.
        credit_limit_minor = None if kind == "settlement" else 0
        session.add(
            LedgerAccount(
                asset_id=asset_id,
                kind=kind,
                wallet_address_id=wallet_address_id,
                credit_limit_minor=credit_limit_minor,
            )
        )
        with pytest.raises(IntegrityError, match=r"(?i)check"):
            await session.flush()


@pytest.mark.parametrize("amount_minor", [0, -5])
async def test_database_refuses_non_positive_transfers(
    sessions: async_sessionmaker[AsyncSession], amount_minor: int
) -> None:
    # The CHECK constraint, for writers that bypass `deposit`.
    alice, _, _ = await _wallets(sessions)
    async with sessions() as session:
        credit = await wallet_account(session, alice)
        debit = await settlement_account(session, credit.asset_id)
        session.add(
            LedgerTransfer(
                debit_account_id=debit.id, credit_account_id=credit.id, amount_minor=amount_minor
            )
        )
        with pytest.raises(IntegrityError):
            await session.flush()


async def test_database_refuses_duplicate_idempotency_keys(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    alice, _, _ = await _wallets(sessions)
    async with sessions() as session:
        await deposit(session, alice, 1, "k")
        await session.commit()
        credit = await wallet_account(session, alice)
        debit = await settlement_account(session, credit.asset_id)
        session.add(
            LedgerTransfer(
                debit_account_id=debit.id,
                credit_account_id=credit.id,
                amount_minor=1,
                idempotency_key="k",
            )
        )
        with pytest.raises(IntegrityError):
            await session.flush()
