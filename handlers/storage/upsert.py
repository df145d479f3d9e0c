"""INSERT ... ON CONFLICT DO UPDATE on SQLite and PostgreSQL, for rows a PUT replaces."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession


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
    name = session.get_bind().dialect.name
    statement: postgresql.Insert | sqlite.Insert
    if name == "postgresql":
        statement = postgresql.insert(table)
    elif name == "sqlite":
        statement = sqlite.insert(table)
    else:
        raise NotImplementedError(f"upsert runs on PostgreSQL or SQLite, not {name}")
    statement = statement.values(values)
    updated = {column: statement.excluded[column] for column in update_columns}
    await session.execute(
        statement.on_conflict_do_update(index_elements=conflict_columns, set_=updated)
    )
