"""Alembic environment: online, async, driven from `opase.storage.migrate`.

`opase.storage.migrate` hands over an open connection in `config.attributes["connection"]`
(inside its transaction and migration lock). Run without one (the `alembic` command with a
`sqlalchemy.url` option, e.g. to autogenerate a revision), this opens its own async engine.
"""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from alembic import context
from alembic.autogenerate.api import AutogenContext
from sqlalchemy import pool
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine
from sqlmodel import SQLModel

from opase.storage.tables import Asset, UtcDateTime, sa_table

config = context.config
target_metadata = SQLModel.metadata
assert sa_table(Asset) in target_metadata.sorted_tables  # importing registered the tables


def _render_item(type_: str, item: Any, autogen_context: AutogenContext) -> str | Literal[False]:
    # Revisions must not import application code that later changes: spell the storage
    # type of our own column types with plain SQLAlchemy.
    if type_ == "type" and isinstance(item, UtcDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def _run_migrations(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things; batch mode copies the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        render_item=_render_item,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_with_own_engine(url: str) -> None:
    engine = create_async_engine(url, poolclass=pool.NullPool)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(_run_migrations)
    finally:
        await engine.dispose()


if context.is_offline_mode():
    raise SystemExit("opase migrations run online only: give a database URL, not --sql")

_connection: Connection | None = config.attributes.get("connection")
if _connection is not None:
    _run_migrations(_connection)
else:
    _url = config.attributes.get("url") or config.get_main_option("sqlalchemy.url")
    if not _url:
        raise SystemExit("no database: set config.attributes['url'] or sqlalchemy.url")
    asyncio.run(_run_with_own_engine(_url))
