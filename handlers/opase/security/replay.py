"""The replay cache: each accepted signature is accepted once.

A signature is remembered until its `created` falls out of the age window, after which the
age check refuses it anyway; so the cache holds at most one window of traffic. On PostgreSQL
the cache is a table every worker process shares (the primary key decides, race-free); on
SQLite, where one process serves, it lives in memory.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Protocol

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession
from sqlalchemy.sql.dml import ReturningInsert

from opase.storage.tables import SeenSignature, sa_table

log = logging.getLogger("opase.web.authentication")

IN_PROCESS_COUNT_MAX: Final = 200_000
"""Bounds memory (~30 MB). Past it the oldest entries go first: by then they are close to
the end of the window, where the age check catches a replay of them."""
PURGE_EVERY_COUNT: Final = 1000
"""The shared table is swept of expired rows once per this many insertions."""
STATEMENT_SHAPE_COUNT_MAX: Final = 32
"""Claim-with-rows statements kept built: one shape (tables, columns) per operation."""

_SEEN: Final = sa_table(SeenSignature)


def signature_fingerprint(signature: bytes) -> str:
    return hashlib.sha256(signature).hexdigest()


class ReplayCache(Protocol):
    async def first_sighting(self, signature: bytes, *, forget_after_s: float) -> bool:
        """True the first time `signature` is presented, False every later time before
        `forget_after_s` (Unix time) passes."""
        ...


class InProcessReplayCache:
    def __init__(self, count_max: int = IN_PROCESS_COUNT_MAX) -> None:
        assert count_max > 0
        self.count_max = count_max
        self._expiry_by_fingerprint: dict[str, float] = {}

    async def first_sighting(self, signature: bytes, *, forget_after_s: float) -> bool:
        fingerprint = signature_fingerprint(signature)
        now_s = time.time()
        seen_until_s = self._expiry_by_fingerprint.get(fingerprint)
        if seen_until_s is not None and seen_until_s > now_s:
            return False
        if len(self._expiry_by_fingerprint) >= self.count_max:
            self._purge(now_s)
        self._expiry_by_fingerprint[fingerprint] = forget_after_s
        assert len(self._expiry_by_fingerprint) <= self.count_max
        return True

    def _purge(self, now_s: float) -> None:
        live = {k: v for k, v in self._expiry_by_fingerprint.items() if v > now_s}
        while len(live) >= self.count_max:
            # dicts keep insertion order: the first entry is the oldest.
            del live[next(iter(live))]
        if len(live) < len(self._expiry_by_fingerprint) // 2:
            log.debug("replay cache: %d entries expired", len(self._expiry_by_fingerprint))
        self._expiry_by_fingerprint = live


Rows = Sequence[tuple[sa.Table, Mapping[str, Any]]]
"""New rows, each with its table, keyed by column name."""


@dataclass(frozen=True, slots=True)
class ReplayClaim:
    """An accepted signature not yet recorded: the operation's transaction records it
    (`RequestContext.transaction`, or with the operation's rows, `take_with`), or, when the
    operation opened none (it failed first), the router records it on its own afterwards."""

    cache: DatabaseReplayCache
    signature: bytes
    forget_after_s: float

    async def take_in(self, session: AsyncSession) -> bool:
        return await self.cache.first_sighting_in(
            session, self.signature, forget_after_s=self.forget_after_s
        )

    async def take_alone(self) -> bool:
        return await self.cache.first_sighting(self.signature, forget_after_s=self.forget_after_s)

    async def take_with(self, rows: Rows) -> bool:
        return await self.cache.first_sighting_with(
            self.signature, forget_after_s=self.forget_after_s, rows=rows
        )


def _claim_statement(dialect_name: str) -> ReturningInsert[tuple[str]]:
    """The claim, one statement on either database: insert the fingerprint, or take over its
    row when that row has expired (it counts as unseen). It returns the fingerprint when the
    claim is taken, no row when the signature is live in the table. Concurrent claims of one
    signature queue on its key; exactly one takes it."""
    insert = postgresql.insert if dialect_name == "postgresql" else sqlite.insert
    statement = insert(_SEEN).values(
        signature_sha256=sa.bindparam("claim_sha256", type_=_SEEN.c.signature_sha256.type),
        expires_at=sa.bindparam("claim_expires_at", type_=_SEEN.c.expires_at.type),
    )
    return statement.on_conflict_do_update(
        index_elements=["signature_sha256"],
        set_={"expires_at": statement.excluded.expires_at},
        where=_SEEN.c.expires_at <= sa.bindparam("claim_now", type_=_SEEN.c.expires_at.type),
    ).returning(_SEEN.c.signature_sha256)


_CLAIM_BY_DIALECT: Final = {name: _claim_statement(name) for name in ("postgresql", "sqlite")}


@functools.lru_cache(maxsize=STATEMENT_SHAPE_COUNT_MAX)
def _claim_with_rows_statement(
    shape: tuple[tuple[sa.Table, tuple[str, ...]], ...],
) -> sa.Select[bool]:
    """PostgreSQL: the claim and an INSERT per row as data-modifying WITH queries of one
    statement. Each INSERT selects its values only when the claim returned its row, so a
    replay writes nothing; the statement answers whether the claim was taken. Built once per
    shape (tables and columns); row `i`'s values are the parameters `r{i}_{column}`."""
    claim = _CLAIM_BY_DIALECT["postgresql"].cte("claim")
    taken = sa.exists(claim.select())
    inserts = []
    for index, (table, columns) in enumerate(shape):
        values = sa.select(
            *(sa.bindparam(f"r{index}_{name}", type_=table.c[name].type) for name in columns)
        ).where(taken)
        inserts.append(sa.insert(table).from_select(list(columns), values).cte(f"row{index}"))
    return sa.select(taken).add_cte(*inserts)


class DatabaseReplayCache:
    def __init__(self, autocommit: AsyncEngine) -> None:
        """`autocommit`: an engine whose statements commit one by one
        (`opase.storage.autocommit_engine`). A claim is one statement that decides alone (by
        the primary key), so it needs no transaction around it and costs one round trip."""
        self.engine = autocommit
        self._inserted_count = 0

    async def first_sighting(self, signature: bytes, *, forget_after_s: float) -> bool:
        async with self.engine.connect() as connection:
            taken = await _claim(connection, self.engine.dialect.name, signature, forget_after_s)
        await self._purge_now_and_then()
        return taken

    async def first_sighting_in(
        self, session: AsyncSession, signature: bytes, *, forget_after_s: float
    ) -> bool:
        """`first_sighting` inside the caller's transaction: the claim stands or falls with
        the operation it lets through. A concurrent claim of the same signature waits on the
        key until that transaction ends, then finds it taken (or free, after a rollback)."""
        dialect_name = session.get_bind().dialect.name
        taken = await _claim(session, dialect_name, signature, forget_after_s)
        await self._purge_now_and_then()
        return taken

    async def first_sighting_with(
        self, signature: bytes, *, forget_after_s: float, rows: Rows
    ) -> bool:
        """`first_sighting`, and `rows` inserted when (and only when) it is the first: for
        an operation whose every write is a new row decided before writing. On PostgreSQL
        one statement, committed by itself: one round trip where BEGIN, the claim, an INSERT
        per row and COMMIT took one each. PostgreSQL only (SQLite has no data-modifying
        WITH): elsewhere `first_sighting_in` and the INSERTs in one transaction do the same."""
        assert self.engine.dialect.name == "postgresql", "one statement needs WITH"
        params = _claim_params(signature, forget_after_s)
        shape = tuple((table, tuple(row)) for table, row in rows)
        for index, (_, row) in enumerate(rows):
            params.update((f"r{index}_{name}", value) for name, value in row.items())
        async with self.engine.connect() as connection:
            result = await connection.execute(_claim_with_rows_statement(shape), params)
            taken = bool(result.scalar_one())
        await self._purge_now_and_then()
        return taken

    async def _purge_now_and_then(self) -> None:
        self._inserted_count += 1
        if self._inserted_count % PURGE_EVERY_COUNT == 0:
            # On its own: never inside an operation's transaction, whose locks it would hold.
            now = datetime.now(UTC)
            async with self.engine.connect() as connection:
                await connection.execute(sa.delete(_SEEN).where(_SEEN.c.expires_at < now))


def _claim_params(signature: bytes, forget_after_s: float) -> dict[str, Any]:
    return {
        "claim_sha256": signature_fingerprint(signature),
        "claim_expires_at": datetime.fromtimestamp(forget_after_s, UTC),
        "claim_now": datetime.now(UTC),
    }


async def _claim(
    executor: AsyncConnection | AsyncSession,
    dialect_name: str,
    signature: bytes,
    forget_after_s: float,
) -> bool:
    result = await executor.execute(
        _CLAIM_BY_DIALECT[dialect_name], _claim_params(signature, forget_after_s)
    )
    return result.first() is not None
