"""Schema migrations, run programmatically: `opase migrate` and the app's start-up call these.

No alembic.ini is needed: the script location is this package's `migrations/` folder and the
database comes from the settings. Migrations run in one transaction, under a lock, so several
processes starting together take turns and the later ones find nothing to do.

To draft a new revision after changing `opase.storage.tables` (then review it by hand):

    await run_with_alembic(settings, lambda config: command.revision(
        config, message="...", autogenerate=True, rev_id="0002"))
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Final

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

from opase.settings import Settings
from opase.storage.engine import create_engine

MIGRATIONS_DIR: Final = Path(__file__).resolve().parent / "migrations"
POSTGRES_MIGRATION_LOCK_KEY: Final = 0x6F70617365  # "opase": any constant all processes share


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic config for our migrations, optionally bound to an open connection."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


async def _lock_for_migrations(connection: AsyncConnection) -> None:
    # Serialise concurrent migrators; both locks last until the transaction ends.
    if connection.dialect.name == "postgresql":
        await connection.exec_driver_sql(
            f"SELECT pg_advisory_xact_lock({POSTGRES_MIGRATION_LOCK_KEY:d})"
        )
    elif connection.dialect.name == "sqlite":
        # Take the write lock now, not at the first write, and make the DDL transactional
        # (the driver would otherwise run CREATE TABLE outside any transaction).
        await connection.exec_driver_sql("BEGIN IMMEDIATE")


async def run_with_alembic(settings: Settings, operation: Callable[[Config], None]) -> None:
    """Run `operation` (e.g. `lambda c: command.upgrade(c, "head")`) in one locked transaction."""
    engine = create_engine(settings)
    try:
        async with engine.begin() as connection:
            await _lock_for_migrations(connection)
            await connection.run_sync(lambda sync: operation(alembic_config(sync)))
    finally:
        await engine.dispose()


async def upgrade(settings: Settings, revision: str = "head") -> None:
    """Bring the database of `settings` to `revision` (default: the newest schema)."""
    await run_with_alembic(settings, lambda config: command.upgrade(config, revision))


def upgrade_sync(settings: Settings, revision: str = "head") -> None:
    """`upgrade` for callers outside an event loop (the CLI, before the server starts)."""
    asyncio.run(upgrade(settings, revision))


async def current_revision(settings: Settings) -> str | None:
    """The revision the database is at; None before the first migration."""
    engine = create_engine(settings)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(
                lambda sync: MigrationContext.configure(sync).get_current_revision()
            )
    finally:
        await engine.dispose()
