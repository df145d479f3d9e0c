"""Concurrent writers, each on its own connection (on PostgreSQL, its own server process):
whatever the interleaving, no money is made or lost, no account crosses its limit, a repeat
returns the first result, and the audit stays clean.

Method: hypothesis draws a program per worker (deposits, withdrawals, transfers, fees,
reservations then a post, partial post, void, expiry or nothing, some repeated with the
same key); the workers run as asyncio tasks at once, every operation in its own
transaction; then the books are checked against the operations the ledger accepted.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Final

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from opase.ledger import (
    InsufficientFunds,
    TransferNotPending,
    audit,
    balance,
    deposit,
    fees_account,
    post_pending,
    reserve,
    transfer,
    void_expired,
    void_pending,
    wallet_account,
    withdraw,
)
from opase.settings import Settings
from opase.storage.engine import create_engine, session_factory
from opase.storage.tables import utc_now
from opase.wallets.directory import create_asset, create_wallet_address
from tests.ledger import _processes
from tests.ledger.accounts import Accounts

PROCESS_COUNT: Final = 3
WALLET_COUNT: Final = 3
WORKER_COUNT_MAX: Final = 4
OPERATION_COUNT_MAX: Final = 6
"""Per worker: 4 workers x 6 operations keep an example well under a second."""
AMOUNT_MINOR_MAX: Final = 60
LONG_TIMEOUT_S: Final = 600
SHORT_TIMEOUT_S: Final = 1
REFUSALS: Final = (InsufficientFunds, TransferNotPending)
"""What the ledger may answer in a race: funds are short, or another worker's sweep voided
a reservation first. Anything else fails the test."""

Action = Callable[[AsyncSession], Awaitable[Any]]


async def test_concurrent_withdrawals_cannot_overdraw(
    sessions: async_sessionmaker[AsyncSession], accounts: Accounts
) -> None:
    # Four withdrawals of 70 from 100, at once: the locks let exactly one through.
    async with sessions() as session:
        await deposit(session, accounts.alice, 100, "d-1")
        await session.commit()

    async def attempt(idempotency_key: str) -> bool:
        return (
            await _attempt(sessions, lambda s: withdraw(s, accounts.alice, 70, idempotency_key))
            is not None
        )

    outcomes = await asyncio.gather(*(attempt(f"w-{index}") for index in range(4)))
    assert sorted(outcomes) == [False, False, False, True]
    async with sessions() as session:
        assert (await balance(session, accounts.alice_account)).posted_minor == 30
        assert await audit(session) == []


async def test_opposite_transfers_do_not_deadlock(
    sessions: async_sessionmaker[AsyncSession], accounts: Accounts
) -> None:
    # Alice -> Bob and Bob -> Alice at once lock the same two rows: sorted ids, one order.
    async with sessions() as session:
        await deposit(session, accounts.alice, 1_000, "d-1")
        await deposit(session, accounts.bob, 1_000, "d-2")
        await session.commit()

    def move(debit: uuid.UUID, credit: uuid.UUID, key: str) -> Action:
        return lambda s: transfer(
            s, debit_account_id=debit, credit_account_id=credit, amount_minor=1, idempotency_key=key
        )

    moves = [
        move(accounts.alice_account, accounts.bob_account, f"ab-{index}")
        if index % 2
        else move(accounts.bob_account, accounts.alice_account, f"ba-{index}")
        for index in range(20)
    ]
    outcomes = await asyncio.gather(*(_attempt(sessions, action) for action in moves))
    assert None not in outcomes
    async with sessions() as session:
        assert (await balance(session, accounts.alice_account)).posted_minor == 1_000
        assert await audit(session) == []


@pytest.mark.slow  # a pool of processes: with the other process-starting tests
async def test_writers_in_several_processes_keep_the_books(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], accounts: Accounts
) -> None:
    # Separate processes, each with its own engine: on SQLite they share the file's lock,
    # on PostgreSQL they are separate clients, as several opase workers would be.
    async with sessions() as session:
        await deposit(session, accounts.alice, 100, "d-1")
        await deposit(session, accounts.bob, 100, "d-2")
        await session.commit()
    wallet_address_ids = [accounts.alice, accounts.bob]
    account_ids = [accounts.alice_account, accounts.bob_account]
    loop = asyncio.get_running_loop()
    with ProcessPoolExecutor(
        PROCESS_COUNT, mp_context=multiprocessing.get_context("spawn")
    ) as pool:
        withdrawn = await asyncio.gather(
            *(
                loop.run_in_executor(
                    pool,
                    _processes.write,
                    str(settings.data_dir),
                    settings.database_url,
                    wallet_address_ids,
                    account_ids,
                    f"process-{index}",
                )
                for index in range(PROCESS_COUNT)
            )
        )
    async with sessions() as session:
        alice = await balance(session, accounts.alice_account)
        bob = await balance(session, accounts.bob_account)
        assert alice.posted_minor + bob.posted_minor == 200 - sum(withdrawn)
        assert alice.available_minor >= 0 and bob.available_minor >= 0
        settlement = await balance(session, accounts.usd_settlement)
        assert settlement.posted_minor == -(200 - sum(withdrawn))
        assert await audit(session) == []


async def _attempt(sessions: async_sessionmaker[AsyncSession], action: Action) -> Any | None:
    """Run `action` in a transaction of its own: its result, or None when refused."""
    async with sessions() as session:
        try:
            result = await action(session)
        except REFUSALS:
            await session.rollback()
            return None
        await session.commit()
        return result


@dataclass(frozen=True)
class World:
    """One example's asset, wallets and fees account: examples share the database."""

    wallet_address_ids: list[uuid.UUID]
    wallet_account_ids: list[uuid.UUID]
    fees_account_id: uuid.UUID


@dataclass
class Tally:
    """What the ledger accepted, as a worker saw it."""

    deposited_minor: int = 0
    withdrawn_minor: int = 0
    fees_minor: int = 0


async def _world(sessions: async_sessionmaker[AsyncSession]) -> World:
    async with sessions() as session:
        asset = await create_asset(session, f"X{uuid.uuid4().hex[:9].upper()}", 2)
        wallet_addresses = [
            await create_wallet_address(session, f"/w-{uuid.uuid4().hex}", asset.id, None)
            for _ in range(WALLET_COUNT)
        ]
        world = World(
            wallet_address_ids=[w.id for w in wallet_addresses],
            wallet_account_ids=[(await wallet_account(session, w.id)).id for w in wallet_addresses],
            fees_account_id=(await fees_account(session, asset.id)).id,
        )
        await session.commit()
    return world


def _action(world: World, operation: tuple[Any, ...], key: str) -> tuple[Action, str]:
    """The ledger call of a single-transaction operation, and what to tally if accepted."""
    name, source, target, amount_minor = operation[:4]
    if target == source:
        target = (source + 1) % WALLET_COUNT
    wallet_address = world.wallet_address_ids[source]
    debit, credit = world.wallet_account_ids[source], world.wallet_account_ids[target]
    if name == "deposit":
        return lambda s: deposit(s, wallet_address, amount_minor, key), "deposited_minor"
    if name == "withdraw":
        return lambda s: withdraw(s, wallet_address, amount_minor, key), "withdrawn_minor"
    if name == "fee":
        credit = world.fees_account_id
    return lambda s: transfer(
        s,
        debit_account_id=debit,
        credit_account_id=credit,
        amount_minor=amount_minor,
        idempotency_key=key,
    ), ("fees_minor" if name == "fee" else "")


async def _once_and_repeat(
    sessions: async_sessionmaker[AsyncSession], action: Action, *, repeat: bool
) -> Any | None:
    result = await _attempt(sessions, action)
    if result is not None and repeat:
        # A retry of an accepted call, in a later transaction: the first result, not a move.
        assert await _attempt(sessions, action) == result
    return result


async def _reservation(
    sessions: async_sessionmaker[AsyncSession],
    world: World,
    operation: tuple[Any, ...],
    key: str,
    repeat: bool,
) -> None:
    _, source, target, amount_minor, _, resolution = operation
    if target == source:
        target = (source + 1) % WALLET_COUNT
    timeout_s = SHORT_TIMEOUT_S if resolution == "expire" else LONG_TIMEOUT_S
    pending = await _once_and_repeat(
        sessions,
        lambda s: reserve(
            s,
            debit_account_id=world.wallet_account_ids[source],
            credit_account_id=world.wallet_account_ids[target],
            amount_minor=amount_minor,
            idempotency_key=key,
            timeout_s=timeout_s,
        ),
        repeat=repeat,
    )
    if pending is None:
        return
    resolve: dict[str, Action] = {
        "post": lambda s: post_pending(s, pending.id, idempotency_key=f"{key}-post"),
        "partial": lambda s: post_pending(
            s, pending.id, idempotency_key=f"{key}-post", amount_minor=max(1, amount_minor // 2)
        ),
        "void": lambda s: void_pending(s, pending.id, idempotency_key=f"{key}-void"),
        # Every worker's sweep may void this one or another's short reservation first.
        "expire": lambda s: void_expired(s, utc_now() + timedelta(seconds=2 * SHORT_TIMEOUT_S)),
    }
    if resolution in resolve:
        await _once_and_repeat(
            sessions, resolve[resolution], repeat=repeat and resolution != "expire"
        )


async def _worker(
    sessions: async_sessionmaker[AsyncSession],
    world: World,
    program: list[tuple[Any, ...]],
    prefix: str,
) -> Tally:
    tally = Tally()
    for index, operation in enumerate(program):
        key, repeat = f"{prefix}-{index}", operation[4]
        if operation[0] == "reserve":
            await _reservation(sessions, world, operation, key, repeat)
            continue
        action, tally_field = _action(world, operation, key)
        accepted = await _once_and_repeat(sessions, action, repeat=repeat)
        if accepted is not None and tally_field:
            setattr(tally, tally_field, getattr(tally, tally_field) + operation[3])
    return tally


async def _check_books(
    sessions: async_sessionmaker[AsyncSession], world: World, tallies: list[Tally]
) -> None:
    deposited_minor = sum(t.deposited_minor for t in tallies)
    withdrawn_minor = sum(t.withdrawn_minor for t in tallies)
    fees_minor = sum(t.fees_minor for t in tallies)
    async with sessions() as session:
        wallets = [await balance(session, a) for a in world.wallet_account_ids]
        fees = await balance(session, world.fees_account_id)
        assert (
            sum(w.posted_minor for w in wallets) == deposited_minor - withdrawn_minor - fees_minor
        )
        assert fees.posted_minor == fees_minor
        # Wallets and fees may not go below zero; reservations only count against them.
        assert all(w.available_minor >= 0 for w in wallets), wallets
        assert fees.available_minor >= 0
        # Reservations are between wallets only: whatever is held, someone expects it.
        assert sum(w.pending_debits_minor for w in wallets) == sum(
            w.pending_credits_minor for w in wallets
        )
        assert await audit(session) == []


async def _scenario(settings: Settings, programs: list[list[tuple[Any, ...]]]) -> None:
    engine = create_engine(settings)
    try:
        sessions = session_factory(engine)
        world = await _world(sessions)
        prefix = uuid.uuid4().hex
        tallies = await asyncio.gather(
            *(
                _worker(sessions, world, program, f"{prefix}-{worker}")
                for worker, program in enumerate(programs)
            )
        )
        await _check_books(sessions, world, list(tallies))
    finally:
        await engine.dispose()


_wallet = st.integers(0, WALLET_COUNT - 1)
_amount_minor = st.integers(1, AMOUNT_MINOR_MAX)
_operation = st.one_of(
    st.tuples(
        st.sampled_from(["deposit", "withdraw", "transfer", "fee"]),
        _wallet,
        _wallet,
        _amount_minor,
        st.booleans(),
    ),
    st.tuples(
        st.just("reserve"),
        _wallet,
        _wallet,
        _amount_minor,
        st.booleans(),
        st.sampled_from(["post", "partial", "void", "expire", "leave"]),
    ),
)
_programs = st.lists(
    st.lists(_operation, max_size=OPERATION_COUNT_MAX), min_size=2, max_size=WORKER_COUNT_MAX
)


@hypothesis_settings(
    max_examples=20,
    deadline=None,
    database=None,  # no .hypothesis folder in the work tree
    # Examples share the migrated database on purpose: each makes its own asset and wallets.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(programs=_programs)
def test_concurrent_operations_keep_the_books(
    settings: Settings, programs: list[list[tuple[Any, ...]]]
) -> None:
    # A fresh event loop per example: asyncpg connections belong to the loop that made them.
    asyncio.run(_scenario(settings, programs))
