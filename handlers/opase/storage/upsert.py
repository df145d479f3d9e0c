"""INSERT ... ON CONFLICT on SQLite and PostgreSQL: race-free inserts and the upserts of PUTs."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession


def dialect_insert(session: AsyncSession, table: sa.Table) -> postgresql.Insert | sqlite.Insert:
    """The INSERT of the session's database, which knows ON CONFLICT; opase runs on these two."""
    name = session.get_bind().dialect.name
    if name == "postgresql":
        return postgresql.insert(table)
    if name == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"opase runs on PostgreSQL or SQLite, not {name}")


async def upsert(
    session: AsyncSession,
    table: sa.Table,
    values: dict[str, Any],
    *,
    conflict_columns: list[str],
    update_columns: list[str],
) -> None:
    """Insert the row, or update `update_columns` of the row that has the same
    `conflict_columns` (a unique constraint).

    "Select, then insert or update" races with another transaction doing the same: both
    find nothing and the second insert fails. Letting the unique constraint decide is
    race-free on both databases.
    """
    assert set(conflict_columns) <= set(values) and set(update_columns) <= set(values)
    statement = dialect_insert(session, table)
    statement = statement.values(values)
    updated = {column: statement.excluded[column] for column in update_columns}
    await session.execute(
        statement.on_conflict_do_update(index_elements=conflict_columns, set_=updated)
    )
