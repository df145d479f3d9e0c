"""The migrations build the schema the tables describe, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlmodel import SQLModel

from opase.settings import Settings
from opase.storage.engine import create_engine
from opase.storage.migrate import (
    alembic_config,
    current_revision,
    run_with_alembic,
    upgrade,
    upgrade_sync,
)
from opase.storage.tables import Asset
from opase.wallets.directory import create_asset

# The newest revision of the scripts, so that adding one does not break these tests.
HEAD_REVISION = ScriptDirectory.from_config(alembic_config()).get_current_head()
# Every table the classes describe (importing opase.storage.tables registered them), so
# that a revision adding a table and its class needs no edit here.
TABLES = {table.name for table in SQLModel.metadata.sorted_tables}
assert {"assets", "wallet_addresses", "ledger_accounts", "ledger_transfers"} <= TABLES


@pytest.fixture
async def settings(empty_settings: Settings) -> Settings:
    """A new database migrated here by the migrations under test (not the session's copy)."""
    await upgrade(empty_settings)
    return empty_settings


async def _table_names(settings: Settings) -> set[str]:
    engine = create_engine(settings)
    try:
        async with engine.connect() as connection:
            return set(await connection.run_sync(lambda c: inspect(c).get_table_names()))
    finally:
        await engine.dispose()


async def test_upgrade_creates_every_table(settings: Settings) -> None:
    assert await _table_names(settings) == {*TABLES, "alembic_version"}
    assert await current_revision(settings) == HEAD_REVISION


async def test_migrations_match_the_tables(engine: AsyncEngine) -> None:
    # Autogenerate against the migrated database finds nothing to do: the hand-written
    # revision and the SQLModel classes describe the same columns, types, constraints, indexes.
    async with engine.connect() as connection:
        differences = await connection.run_sync(
            lambda c: compare_metadata(
                MigrationContext.configure(c, opts={"compare_type": True}), SQLModel.metadata
            )
        )
    assert differences == []


async def test_upgrade_again_changes_nothing(settings: Settings) -> None:
    await upgrade(settings)
    assert await current_revision(settings) == HEAD_REVISION


async def test_concurrent_upgrades_take_turns(empty_settings: Settings) -> None:
    # Several processes starting at once each migrate; the lock makes the later ones no-ops.
    await asyncio.gather(*(upgrade(empty_settings) for _ in range(3)))
    assert await current_revision(empty_settings) == HEAD_REVISION
    assert TABLES <= await _table_names(empty_settings)


async def test_downgrade_to_base_then_upgrade(settings: Settings) -> None:
    await run_with_alembic(settings, lambda config: command.downgrade(config, "base"))
    assert await _table_names(settings) == {"alembic_version"}
    assert await current_revision(settings) is None
    await upgrade(settings)
    assert TABLES <= await _table_names(settings)


async def test_timestamps_come_back_aware_utc(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    before = datetime.now(UTC)
    async with sessions() as session:
        asset = await create_asset(session, "USD", 2)
        await session.commit()
    async with sessions() as session:
        loaded = await session.get(Asset, asset.id)
    assert loaded is not None
    assert loaded.created_at.utcoffset() == timedelta(0)
    assert before <= loaded.created_at <= datetime.now(UTC)


async def test_engine_configuration(engine: AsyncEngine, backend: str) -> None:
    async with engine.connect() as connection:
        if backend == "sqlite":
            pragmas = {
                name: (await connection.exec_driver_sql(f"PRAGMA {name}")).scalar_one()
                for name in ("journal_mode", "foreign_keys", "busy_timeout")
            }
            assert pragmas == {"journal_mode": "wal", "foreign_keys": 1, "busy_timeout": 5000}
        else:
            version = (await connection.exec_driver_sql("SHOW server_version_num")).scalar_one()
            assert int(version) >= 130000  # DROP DATABASE ... WITH (FORCE) in the fixtures
            assert engine.dialect.driver == "asyncpg"


async def test_failed_migration_leaves_nothing_behind(empty_settings: Settings) -> None:
    # One transaction for the whole run, on SQLite too (BEGIN IMMEDIATE): no half schema.
    def upgrade_then_fail(config: Config) -> None:
        command.upgrade(config, "head")
        raise RuntimeError("power cut")

    with pytest.raises(RuntimeError, match="power cut"):
        await run_with_alembic(empty_settings, upgrade_then_fail)
    assert await current_revision(empty_settings) is None
    assert await _table_names(empty_settings) == set()


def test_upgrade_sync_for_the_command_line(empty_settings: Settings) -> None:
    upgrade_sync(empty_settings)
    upgrade_sync(empty_settings)
    assert asyncio.run(current_revision(empty_settings)) == HEAD_REVISION
