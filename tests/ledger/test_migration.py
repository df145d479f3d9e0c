"""Migration 0002 on a ledger that already holds money: the running sums are backfilled from
the history (the audit is clean), the constraints the table classes name all exist on both
databases, and the downgrade works while there is nothing it would lose."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import SQLModel

from opase.ledger import (
    Balance,
    audit,
    balance,
    deposit,
    fees_account,
    reserve,
    settlement_account,
    wallet_account,
)
from opase.settings import Settings
from opase.storage.engine import create_engine, session_factory
from opase.storage.migrate import current_revision, run_with_alembic, upgrade
from opase.storage.tables import LedgerAccount, LedgerTransfer, utc_now

# The 0001 shape of the rows written before the upgrade, typed so that uuids bind on both.
_OLD = sa.MetaData()
_ASSETS = sa.Table(
    "assets",
    _OLD,
    sa.Column("id", sa.Uuid()),
    sa.Column("code", sa.String()),
    sa.Column("scale", sa.Integer()),
    sa.Column("created_at", sa.DateTime()),
)
_WALLET_ADDRESSES = sa.Table(
    "wallet_addresses",
    _OLD,
    sa.Column("id", sa.Uuid()),
    sa.Column("path", sa.String()),
    sa.Column("asset_id", sa.Uuid()),
    sa.Column("status", sa.String()),
    sa.Column("created_at", sa.DateTime()),
    sa.Column("updated_at", sa.DateTime()),
)
_ACCOUNTS = sa.Table(
    "ledger_accounts",
    _OLD,
    sa.Column("id", sa.Uuid()),
    sa.Column("asset_id", sa.Uuid()),
    sa.Column("kind", sa.String()),
    sa.Column("wallet_address_id", sa.Uuid()),
    sa.Column("created_at", sa.DateTime()),
)
_TRANSFERS = sa.Table(
    "ledger_transfers",
    _OLD,
    sa.Column("id", sa.Uuid()),
    sa.Column("debit_account_id", sa.Uuid()),
    sa.Column("credit_account_id", sa.Uuid()),
    sa.Column("amount_minor", sa.BigInteger()),
    sa.Column("idempotency_key", sa.String()),
    sa.Column("created_at", sa.DateTime()),
)


@pytest.fixture
async def old_settings(tmp_path: Path, empty_database_url: str) -> Settings:
    """A database at 0001."""
    settings = Settings(data_dir=tmp_path / "data", database_url=empty_database_url)
    await upgrade(settings, "0001")
    assert await current_revision(settings) == "0001"
    return settings


@pytest.fixture
async def engine(old_settings: Settings) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(old_settings)
    yield engine
    await engine.dispose()


async def _old_ledger(engine: AsyncEngine) -> dict[str, uuid.UUID]:
    """USD, wallets /alice and /bob, a settlement account and three 0001 deposits."""
    # Naive UTC: the 0001 shape above uses plain DateTime, as SQLite stores it anyway.
    now = utc_now().replace(tzinfo=None)
    ids = {name: uuid.uuid4() for name in ("usd", "alice", "bob", "a", "b", "settlement")}
    async with engine.begin() as connection:
        await connection.execute(
            _ASSETS.insert().values(id=ids["usd"], code="USD", scale=2, created_at=now)
        )
        for name in ("alice", "bob"):
            await connection.execute(
                _WALLET_ADDRESSES.insert().values(
                    id=ids[name],
                    path=f"/{name}",
                    asset_id=ids["usd"],
                    status="active",
                    created_at=now,
                    updated_at=now,
                )
            )
        account_rows = [
            {"id": ids["a"], "kind": "wallet", "wallet_address_id": ids["alice"]},
            {"id": ids["b"], "kind": "wallet", "wallet_address_id": ids["bob"]},
            {"id": ids["settlement"], "kind": "settlement", "wallet_address_id": None},
        ]
        for row in account_rows:
            await connection.execute(
                _ACCOUNTS.insert().values(asset_id=ids["usd"], created_at=now, **row)
            )
        for key, credit, amount_minor in (("d-1", "a", 700), ("d-2", "a", 50), ("d-3", "b", 9)):
            await connection.execute(
                _TRANSFERS.insert().values(
                    id=uuid.uuid4(),
                    debit_account_id=ids["settlement"],
                    credit_account_id=ids[credit],
                    amount_minor=amount_minor,
                    idempotency_key=key,
                    created_at=now,
                )
            )
    return ids


async def test_upgrade_backfills_running_sums_from_the_history(
    old_settings: Settings, engine: AsyncEngine
) -> None:
    ids = await _old_ledger(engine)
    await upgrade(old_settings)
    await engine.dispose()  # connections made before the upgrade may cache the old schema
    async with session_factory(engine)() as session:
        assert await audit(session) == []
        assert await balance(session, ids["a"]) == Balance(750, 0, 0, 750)
        assert await balance(session, ids["b"]) == Balance(9, 0, 0, 9)
        assert await balance(session, ids["settlement"]) == Balance(-759, 0, 0, -759)
        assert (await wallet_account(session, ids["alice"])).credit_limit_minor == 0
        settlement = await settlement_account(session, ids["usd"])
        assert (settlement.id, settlement.credit_limit_minor) == (ids["settlement"], None)
        # The ledger carries on where 0001 left off; repeats of old keys are recognised.
        assert await deposit(session, ids["alice"], 700, "d-1") is not None
        await deposit(session, ids["alice"], 1, "d-4")
        await session.commit()
        assert await balance(session, ids["a"]) == Balance(751, 0, 0, 751)
        assert await audit(session) == []


async def test_downgrade_keeps_single_phase_history_and_refuses_to_lose_two_phase(
    old_settings: Settings, engine: AsyncEngine
) -> None:
    ids = await _old_ledger(engine)
    await upgrade(old_settings)
    await run_with_alembic(old_settings, lambda config: command.downgrade(config, "0001"))
    assert await current_revision(old_settings) == "0001"
    await engine.dispose()
    async with engine.connect() as connection:
        count = (
            await connection.execute(sa.select(sa.func.count()).select_from(_TRANSFERS))
        ).scalar_one()
        assert count == 3
    await upgrade(old_settings)
    await engine.dispose()
    async with session_factory(engine)() as session:
        assert await audit(session) == []
        await reserve(
            session,
            debit_account_id=ids["a"],
            credit_account_id=ids["b"],
            amount_minor=1,
            idempotency_key="r-1",
            timeout_s=60,
        )
        await session.commit()
    head = await current_revision(old_settings)
    with pytest.raises(RuntimeError, match="two-phase"):
        await run_with_alembic(old_settings, lambda config: command.downgrade(config, "0001"))
    assert await current_revision(old_settings) == head  # the whole downgrade rolled back


def _named_checks() -> dict[str, set[str]]:
    return {
        table.name: {
            constraint.name
            for constraint in table.constraints
            if isinstance(constraint, sa.CheckConstraint) and isinstance(constraint.name, str)
        }
        for table in SQLModel.metadata.sorted_tables
    }


async def test_every_named_check_constraint_exists(old_settings: Settings) -> None:
    # The schema comparison of tests/storage does not compare CHECK constraints, and batch
    # mode copies tables on SQLite: look for each one by name.
    await upgrade(old_settings)
    engine = create_engine(old_settings)
    try:
        async with engine.connect() as connection:
            reflected = await connection.run_sync(
                lambda sync: {
                    name: {c["name"] for c in sa.inspect(sync).get_check_constraints(name)}
                    for name in _named_checks()
                }
            )
    finally:
        await engine.dispose()
    assert reflected == _named_checks()


async def test_partial_unique_indexes_survive_the_upgrade(
    old_settings: Settings, engine: AsyncEngine
) -> None:
    ids = await _old_ledger(engine)
    await upgrade(old_settings)
    await engine.dispose()
    async with session_factory(engine)() as session:
        # Many wallets per asset, yet one settlement and one fees account.
        fees = await fees_account(session, ids["usd"])
        assert (await fees_account(session, ids["usd"])).id == fees.id
        await session.commit()
        for kind, limit in (("settlement", None), ("fees", 0)):
            session.add(LedgerAccount(asset_id=ids["usd"], kind=kind, credit_limit_minor=limit))
            with pytest.raises(IntegrityError, match=r"(?i)unique"):
                await session.flush()
            await session.rollback()


@pytest.mark.parametrize(
    "values",
    [
        {"kind": "settlement", "credit_limit_minor": 0},  # a settlement account has no limit
        {"kind": "peer_liquidity", "credit_limit_minor": None},  # only settlement is unlimited
        {"kind": "peer_liquidity", "credit_limit_minor": -1},
        {"kind": "fees", "credit_limit_minor": 0, "peer_id": uuid.uuid4()},
        {"kind": "peer_liquidity", "credit_limit_minor": 0, "debits_pending_minor": -1},
    ],
)
async def test_account_constraints_hold_for_writers_that_bypass_the_ledger(
    old_settings: Settings, engine: AsyncEngine, values: dict[str, object]
) -> None:
    ids = await _old_ledger(engine)
    await upgrade(old_settings)
    await engine.dispose()
    async with session_factory(engine)() as session:
        session.add(LedgerAccount(asset_id=ids["usd"], **values))  # type: ignore[arg-type]
        with pytest.raises(IntegrityError):
            await session.flush()


async def test_transfer_constraints_hold_for_writers_that_bypass_the_ledger(
    old_settings: Settings, engine: AsyncEngine
) -> None:
    ids = await _old_ledger(engine)
    await upgrade(old_settings)
    await engine.dispose()
    sessions = session_factory(engine)
    base = {"debit_account_id": ids["a"], "credit_account_id": ids["b"], "amount_minor": 1}
    bad_rows: list[dict[str, object]] = [
        {"kind": "refund"},
        {"kind": "pending"},  # a pending transfer needs expires_at
        {"kind": "posted", "expires_at": utc_now()},
        {"kind": "void_pending"},  # a void names its pending transfer
    ]
    for extra in bad_rows:
        async with sessions() as session:
            session.add(LedgerTransfer(**base, **extra))  # type: ignore[arg-type]
            with pytest.raises(IntegrityError):
                await session.flush()
