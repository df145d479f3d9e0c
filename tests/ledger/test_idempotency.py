"""Idempotency keys: an exact repeat returns the first result and changes nothing, also when
two transactions race with the same key; the same key with other arguments is refused."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from opase.ledger import (
    Balance,
    IdempotencyKeyReused,
    audit,
    balance,
    deposit,
    post_pending,
    reserve,
    transfer,
    void_pending,
    withdraw,
)
from tests.ledger.accounts import Accounts, snapshot

Operation = Callable[[AsyncSession], Awaitable[Any]]
RACE_HEAD_START_S = 0.2
"""How long the second transaction gets to reach the first one's locks."""


async def _setup(sessions: async_sessionmaker[AsyncSession], accounts: Accounts) -> uuid.UUID:
    """Alice holds 1000, 100 of it reserved for Bob (returned: the pending transfer id)."""
    async with sessions() as session:
        await deposit(session, accounts.alice, 1_000, "setup-deposit")
        pending = await reserve(
            session,
            debit_account_id=accounts.alice_account,
            credit_account_id=accounts.bob_account,
            amount_minor=100,
            idempotency_key="setup-reserve",
            timeout_s=600,
        )
        await session.commit()
    return pending.id


def _operations(accounts: Accounts, pending_id: uuid.UUID) -> dict[str, Operation]:
    """One of each mutation, each with its own key."""
    alice, bob = accounts.alice_account, accounts.bob_account
    return {
        "deposit": lambda s: deposit(s, accounts.bob, 70, "k-deposit"),
        "withdraw": lambda s: withdraw(s, accounts.alice, 70, "k-withdraw"),
        "transfer": lambda s: transfer(
            s, debit_account_id=alice, credit_account_id=bob, amount_minor=70, idempotency_key="k"
        ),
        "reserve": lambda s: reserve(
            s,
            debit_account_id=alice,
            credit_account_id=bob,
            amount_minor=70,
            idempotency_key="k-reserve",
            timeout_s=60,
            memo="m",
        ),
        "post_pending": lambda s: post_pending(
            s, pending_id, idempotency_key="k-post", amount_minor=60
        ),
        "void_pending": lambda s: void_pending(s, pending_id, idempotency_key="k-void"),
    }


OPERATION_NAMES = ["deposit", "withdraw", "transfer", "reserve", "post_pending", "void_pending"]


@pytest.mark.parametrize("name", OPERATION_NAMES)
async def test_repeat_returns_the_first_result_and_changes_nothing(
    sessions: async_sessionmaker[AsyncSession], accounts: Accounts, name: str
) -> None:
    operation = _operations(accounts, await _setup(sessions, accounts))[name]
    async with sessions() as session:
        first = await operation(session)
        await session.commit()
    after_first = await snapshot(sessions)
    for _ in range(2):
        async with sessions() as session:
            assert await operation(session) == first
            await session.commit()
    assert await snapshot(sessions) == after_first
    async with sessions() as session:
        assert await audit(session) == []


@pytest.mark.parametrize("name", OPERATION_NAMES)
async def test_racing_repeats_move_money_once(
    sessions: async_sessionmaker[AsyncSession], accounts: Accounts, name: str
) -> None:
    # The second transaction starts while the first holds its locks uncommitted; it must wait,
    # then find the first one's transfer instead of moving the money again.
    operation = _operations(accounts, await _setup(sessions, accounts))[name]
    before = await snapshot(sessions)
    async with sessions() as first, sessions() as second:
        first_result = await operation(first)
        racing = asyncio.create_task(operation(second))
        await asyncio.sleep(RACE_HEAD_START_S)
        assert not racing.done()
        await first.commit()
        second_result = await racing
        await second.commit()
    assert second_result == first_result
    transfer_count, _ = await snapshot(sessions)
    assert transfer_count == before[0] + 1
    async with sessions() as session:
        assert await audit(session) == []


async def test_a_repeat_after_the_reservation_is_resolved_still_returns_the_first_result(
    sessions: async_sessionmaker[AsyncSession], accounts: Accounts
) -> None:
    pending_id = await _setup(sessions, accounts)
    async with sessions() as session:
        posted = await post_pending(session, pending_id, idempotency_key="p")
        await session.commit()
    async with sessions() as session:
        # Even past the timeout: the repeat reports what happened, it does not post again.
        far_future = posted.created_at + timedelta(days=365)
        assert (
            await post_pending(session, pending_id, idempotency_key="p", now=far_future) == posted
        )
        assert await balance(session, accounts.bob_account) == Balance(100, 0, 0, 100)


async def test_same_key_with_other_arguments_is_refused(
    sessions: async_sessionmaker[AsyncSession], accounts: Accounts
) -> None:
    pending_id = await _setup(sessions, accounts)
    alice, bob = accounts.alice_account, accounts.bob_account
    async with sessions() as session:
        await transfer(
            session,
            debit_account_id=alice,
            credit_account_id=bob,
            amount_minor=5,
            idempotency_key="t",
        )
        await reserve(
            session,
            debit_account_id=alice,
            credit_account_id=bob,
            amount_minor=5,
            idempotency_key="r",
            timeout_s=60,
        )
        await post_pending(session, pending_id, idempotency_key="p", amount_minor=50)
        await session.commit()
    before = await snapshot(sessions)
    reuses: list[Operation] = [
        # Another amount, direction, account or memo under a single-phase key.
        lambda s: transfer(
            s, debit_account_id=alice, credit_account_id=bob, amount_minor=6, idempotency_key="t"
        ),
        lambda s: transfer(
            s, debit_account_id=bob, credit_account_id=alice, amount_minor=5, idempotency_key="t"
        ),
        lambda s: transfer(
            s,
            debit_account_id=alice,
            credit_account_id=accounts.usd_fees,
            amount_minor=5,
            idempotency_key="t",
        ),
        lambda s: transfer(
            s,
            debit_account_id=alice,
            credit_account_id=bob,
            amount_minor=5,
            idempotency_key="t",
            memo="other",
        ),
        # The same movement as another kind of transfer, or with another timeout.
        lambda s: reserve(
            s,
            debit_account_id=alice,
            credit_account_id=bob,
            amount_minor=5,
            idempotency_key="t",
            timeout_s=60,
        ),
        lambda s: reserve(
            s,
            debit_account_id=alice,
            credit_account_id=bob,
            amount_minor=5,
            idempotency_key="r",
            timeout_s=61,
        ),
        lambda s: transfer(
            s, debit_account_id=alice, credit_account_id=bob, amount_minor=5, idempotency_key="r"
        ),
        # Posting another amount, or voiding, under the post's key.
        lambda s: post_pending(s, pending_id, idempotency_key="p"),
        lambda s: void_pending(s, pending_id, idempotency_key="p"),
        lambda s: deposit(s, accounts.alice, 1_000, "p"),
        lambda s: withdraw(s, accounts.alice, 1_000, "setup-deposit"),
    ]
    for reuse in reuses:
        async with sessions() as session:
            with pytest.raises(IdempotencyKeyReused):
                await reuse(session)
            await session.commit()
    assert await snapshot(sessions) == before


async def test_racing_reuse_on_other_accounts_is_refused(
    sessions: async_sessionmaker[AsyncSession], accounts: Accounts
) -> None:
    # The two transactions lock disjoint accounts, so nothing makes the second wait but the
    # key's unique index: it must see the first one's transfer there and refuse.
    await _setup(sessions, accounts)
    before = await snapshot(sessions)
    async with sessions() as first, sessions() as second:
        await transfer(
            first,
            debit_account_id=accounts.alice_account,
            credit_account_id=accounts.bob_account,
            amount_minor=10,
            idempotency_key="shared",
        )
        racing = asyncio.create_task(
            transfer(
                second,
                debit_account_id=accounts.usd_peer,
                credit_account_id=accounts.usd_fees,
                amount_minor=10,
                idempotency_key="shared",
            )
        )
        await asyncio.sleep(RACE_HEAD_START_S)
        await first.commit()
        with pytest.raises(IdempotencyKeyReused):
            await racing
        await second.commit()
    transfer_count, sums = await snapshot(sessions)
    assert transfer_count == before[0] + 1
    assert sums[accounts.usd_peer] == before[1][accounts.usd_peer]
    assert sums[accounts.usd_fees] == before[1][accounts.usd_fees]
