"""SQL the ledger modules share: race-free inserts, exact integer sums, dialect checks."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from opase.storage.upsert import dialect_insert


def dialect_name(session: AsyncSession) -> str:
    name = session.get_bind().dialect.name
    if name not in ("postgresql", "sqlite"):
        raise NotImplementedError(f"the ledger runs on PostgreSQL or SQLite, not {name}")
    return name


async def insert_unless_conflict(
    session: AsyncSession,
    table: sa.Table,
    values: dict[str, Any],
    conflict_columns: list[str],
    conflict_where: sa.ColumnElement[bool] | sa.TextClause | None = None,
) -> bool:
    """INSERT ... ON CONFLICT DO NOTHING; True if the row was inserted.

    Get-or-create by "select, then insert" races with another transaction doing the same;
    letting the unique index decide is race-free on both databases (PostgreSQL waits for
    the other transaction, SQLite has a single writer) and keeps the caller's transaction
    usable, unlike catching an IntegrityError.
    """
    statement = dialect_insert(session, table).on_conflict_do_nothing(
        index_elements=conflict_columns, index_where=conflict_where
    )
    returning_id = statement.values(values).returning(table.c.id)
    inserted = (await session.execute(returning_id)).scalar_one_or_none()
    assert inserted in (None, values["id"])
    return inserted is not None


def exact_int(value: object) -> int:
    """An SQL integer result as an int; PostgreSQL sums BIGINT as NUMERIC (a Decimal)."""
    if isinstance(value, Decimal):
        integral = int(value)
        assert integral == value, value  # exactly, never through float
        return integral
    assert isinstance(value, int) and not isinstance(value, bool), value
    return value
