"""Single-phase transfers, deposits and withdrawals: they move money double-entry, and every
refusal (funds, limits, amounts, assets, overflow) leaves the ledger as it was."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from opase.amounts import AMOUNT_MINOR_MAX
from opase.ledger import (
    AccountNotFound,
    AssetMismatch,
    Balance,
    BalanceOverflow,
    InsufficientFunds,
    LedgerError,
    audit,
    balance,
    balance_minor,
    deposit,
    transfer,
    withdraw,
)
from tests.ledger.accounts import PEER_CREDIT_LIMIT_MINOR, Accounts, snapshot


async def test_transfer_moves_posted_balances(
    sessions: async_sessionmaker[AsyncSession], accounts: Accounts
) -> None:
    async with sessions() as session:
        await deposit(session, accounts.alice, 1_000, "d-1")
        moved = await transfer(
            session,
            debit_account_id=accounts.alice_account,
            credit_account_id=accounts.bob_account,
            amount_minor=300,
            idempotency_key="t-1",
            memo="rent",
        )
        await session.commit()
    assert (moved.kind, moved.amount_minor, moved.memo) == ("posted", 300, "rent")
    assert (moved.pending_id, moved.expires_at) == (None, None)
    async with sessions() as session:
        assert await balance(session, accounts.alice_account) == Balance(700, 0, 0, 700)
        assert await balance(session, accounts.bob_account) == Balance(300, 0, 0, 300)
        assert await balance(session, accounts.usd_settlement) == Balance(-1_000, 0, 0, -1_000)
        assert await balance_minor(session, accounts.bob) == 300
        assert await audit(session) == []


async def test_withdraw_refuses_more_than_available(
    sessions: async_sessionmaker[AsyncSession], accounts: Accounts
) -> None:
    async with sessions() as session:
        await deposit(session, accounts.alice, 500, "d-1")
        await withdraw(session, accounts.alice, 200, "w-1")
        await session.commit()
    before = await snapshot(sessions)
    async with sessions() as session:
        with pytest.raises(InsufficientFunds, match="short by 1"):
            await withdraw(session, accounts.alice, 301, "w-2")
        await session.commit()
    assert await snapshot(sessions) == before
    async with sessions() as session:
        await withdraw(session, accounts.alice, 300, "w-2")  # the refusal did not use the key
        await session.commit()
        assert await balance_minor(session, accounts.alice) == 0
        assert await balance(session, accounts.usd_settlement) == Balance(0, 0, 0, 0)
        assert await audit(session) == []


@pytest.mark.parametrize(
    ("amount_minor", "error"),
    [
        (0, ValueError),
        (-1, ValueError),
        (AMOUNT_MINOR_MAX + 1, ValueError),
        (1.0, TypeError),
        (Decimal(1), TypeError),
        (True, TypeError),
        ("1", TypeError),
    ],
)
async def test_bad_amounts_are_refused_before_anything_changes(
    sessions: async_sessionmaker[AsyncSession],
    accounts: Accounts,
    amount_minor: object,
    error: type[Exception],
) -> None:
    async with sessions() as session:
        await deposit(session, accounts.alice, 10, "d-1")
        await session.commit()
    before = await snapshot(sessions)
    async with sessions() as session:
        with pytest.raises(error, match="amount_minor"):
            await transfer(
                session,
                debit_account_id=accounts.alice_account,
                credit_account_id=accounts.bob_account,
                amount_minor=amount_minor,  # type: ignore[arg-type]
                idempotency_key="bad",
            )
        with pytest.raises(error, match="amount_minor"):
            await withdraw(session, accounts.alice, amount_minor, "bad")  # type: ignore[arg-type]
        await session.commit()
    assert await snapshot(sessions) == before


async def test_cross_asset_transfer_is_refused(
    sessions: async_sessionmaker[AsyncSession], accounts: Accounts
) -> None:
    async with sessions() as session:
        await deposit(session, accounts.alice, 10, "d-1")
        await session.commit()
    before = await snapshot(sessions)
    async with sessions() as session:
        with pytest.raises(AssetMismatch, match="different assets"):
            await transfer(
                session,
                debit_account_id=accounts.alice_account,
                credit_account_id=accounts.carol_account,
                amount_minor=1,
                idempotency_key="fx",
            )
        await session.commit()
    assert await snapshot(sessions) == before


async def test_accounts_must_exist_and_differ(
    sessions: async_sessionmaker[AsyncSession], accounts: Accounts
) -> None:
    before = await snapshot(sessions)
    async with sessions() as session:
        with pytest.raises(AccountNotFound) as missing:
            await transfer(
                session,
                debit_account_id=uuid.uuid4(),
                credit_account_id=accounts.bob_account,
                amount_minor=1,
                idempotency_key="nobody",
            )
        assert isinstance(missing.value, LookupError)  # callers map it to "not found"
        with pytest.raises(ValueError, match="two accounts"):
            await transfer(
                session,
                debit_account_id=accounts.bob_account,
                credit_account_id=accounts.bob_account,
                amount_minor=1,
                idempotency_key="self",
            )
        with pytest.raises(AccountNotFound):
            await withdraw(session, uuid.uuid4(), 1, "nobody")
        await session.commit()
    assert await snapshot(sessions) == before


async def test_credit_limit_bounds_the_debit_and_settlement_has_none(
    sessions: async_sessionmaker[AsyncSession], accounts: Accounts
) -> None:
    async with sessions() as session:
        # The peer may go PEER_CREDIT_LIMIT_MINOR below zero, not one unit further.
        await transfer(
            session,
            debit_account_id=accounts.usd_peer,
            credit_account_id=accounts.bob_account,
            amount_minor=PEER_CREDIT_LIMIT_MINOR,
            idempotency_key="peer-1",
        )
        await session.commit()
        with pytest.raises(InsufficientFunds):
            await transfer(
                session,
                debit_account_id=accounts.usd_peer,
                credit_account_id=accounts.bob_account,
                amount_minor=1,
                idempotency_key="peer-2",
            )
        await session.rollback()
        # The settlement account mirrors deposits as deep as they go.
        await deposit(session, accounts.alice, AMOUNT_MINOR_MAX - PEER_CREDIT_LIMIT_MINOR, "big")
        await session.commit()
        assert await balance(session, accounts.usd_peer) == Balance(
            -PEER_CREDIT_LIMIT_MINOR, 0, 0, -PEER_CREDIT_LIMIT_MINOR
        )
        settlement = await balance(session, accounts.usd_settlement)
        assert settlement.posted_minor == -(AMOUNT_MINOR_MAX - PEER_CREDIT_LIMIT_MINOR)
        assert await audit(session) == []


async def test_fees_account_cannot_go_below_zero(
    sessions: async_sessionmaker[AsyncSession], accounts: Accounts
) -> None:
    async with sessions() as session:
        await deposit(session, accounts.alice, 100, "d-1")
        await transfer(
            session,
            debit_account_id=accounts.alice_account,
            credit_account_id=accounts.usd_fees,
            amount_minor=3,
            idempotency_key="fee-1",
        )
        await session.commit()
    before = await snapshot(sessions)
    async with sessions() as session:
        with pytest.raises(InsufficientFunds, match="fees account"):
            await transfer(
                session,
                debit_account_id=accounts.usd_fees,
                credit_account_id=accounts.bob_account,
                amount_minor=4,
                idempotency_key="refund",
            )
    assert await snapshot(sessions) == before


async def test_running_sums_never_overflow_bigint(
    sessions: async_sessionmaker[AsyncSession], accounts: Accounts
) -> None:
    # Alice's credits reach 2**63-1 from two sources, so her sum alone overflows.
    async with sessions() as session:
        await deposit(session, accounts.alice, AMOUNT_MINOR_MAX - 5, "d-1")
        await session.commit()
    before = await snapshot(sessions)
    async with sessions() as session:
        with pytest.raises(BalanceOverflow, match="credits_posted_minor of wallet account"):
            await transfer(
                session,
                debit_account_id=accounts.usd_peer,
                credit_account_id=accounts.alice_account,
                amount_minor=6,
                idempotency_key="over",
            )
        # ...and the settlement account's debits, on another deposit.
        with pytest.raises(BalanceOverflow, match="debits_posted_minor of settlement"):
            await deposit(session, accounts.bob, 6, "over")
        await session.commit()
    assert await snapshot(sessions) == before
    async with sessions() as session:
        await transfer(
            session,
            debit_account_id=accounts.usd_peer,
            credit_account_id=accounts.alice_account,
            amount_minor=5,
            idempotency_key="exactly",
        )
        await session.commit()
        assert await balance_minor(session, accounts.alice) == AMOUNT_MINOR_MAX
        assert await audit(session) == []


def test_errors_are_plain_exceptions() -> None:
    # Callers map them; the ledger knows nothing of HTTP.
    for error in (AccountNotFound, AssetMismatch, BalanceOverflow, InsufficientFunds):
        assert issubclass(error, LedgerError)
        assert error.__module__ == "opase.ledger.refusals"
