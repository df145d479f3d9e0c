"""The async database engine: SQLite (aiosqlite) by default, PostgreSQL (asyncpg) when asked."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any, Final

import orjson
from sqlalchemy import event, exc
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from opase.settings import Settings

SQLITE_BUSY_TIMEOUT_MS: Final = 5_000
"""How long a SQLite writer waits for another process's write lock before failing."""
SQLITE_WAL_SWITCH_ATTEMPTS: Final = 10
SQLITE_WAL_SWITCH_PAUSE_S: Final = 0.01
POSTGRES_POOL_SIZE: Final = 20
"""Connections each process keeps open; with several workers, multiply. Enough for the
requests one process has in flight under load: past it, overflow connections are opened
and closed per use, and a PostgreSQL connection costs a process on the server."""
POSTGRES_POOL_OVERFLOW_MAX: Final = 10
POSTGRES_POOL_RECYCLE_S: Final = 30 * 60
POSTGRES_IDLE_PING_S: Final = 5.0
"""A connection idle longer than this is pinged before use (PostgreSQL may have restarted,
a proxy may have dropped it); a busy one is not: a ping per request doubles a read's round
trips. A connection that breaks anyway fails its request, and the pool then replaces every
connection older than the failure."""
SQLITE_POOL_SIZE: Final = 20
"""Each aiosqlite connection is a thread: kept open, not started per request."""


def _json_text(value: Any) -> str:
    """JSON columns (grants' access, events' data, metadata) written by orjson, as the wire
    is: several times faster than the standard library on the hot paths that write them."""
    return orjson.dumps(value).decode()


def create_engine(settings: Settings) -> AsyncEngine:
    """The engine for `settings.database_url_resolved`. Dispose of it when done."""
    url = settings.database_url_resolved
    if settings.is_postgres:
        engine = create_async_engine(
            url,
            json_serializer=_json_text,
            json_deserializer=orjson.loads,
            pool_size=POSTGRES_POOL_SIZE,
            max_overflow=POSTGRES_POOL_OVERFLOW_MAX,
            pool_recycle=POSTGRES_POOL_RECYCLE_S,
        )
        _ping_when_idle(engine, POSTGRES_IDLE_PING_S)
        return engine
    if make_url(url).get_backend_name() == "sqlite":
        return _create_sqlite_engine(settings, url)
    raise ValueError(f"unsupported database URL {make_url(url)!r}: use SQLite or PostgreSQL")


def _create_sqlite_engine(settings: Settings, url: str) -> AsyncEngine:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    database = make_url(url).database
    in_memory = not database or database == ":memory:"
    if not in_memory:
        assert database is not None
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    # An in-memory database lives in its one connection: no pool to size.
    json_options: dict[str, Any] = {
        "json_serializer": _json_text,
        "json_deserializer": orjson.loads,
    }
    engine = (
        create_async_engine(url, **json_options)
        if in_memory
        else create_async_engine(url, pool_size=SQLITE_POOL_SIZE, **json_options)
    )

    def configure(dbapi_connection: Any, _connection_record: Any) -> None:
        _configure_sqlite_connection(dbapi_connection, wal=not in_memory)

    event.listen(engine.sync_engine, "connect", configure)
    return engine


def _configure_sqlite_connection(dbapi_connection: Any, *, wal: bool) -> None:
    # Per connection, because SQLite forgets these pragmas (except journal_mode) on close.
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS:d}")
        # SQLite ignores REFERENCES unless asked, per connection.
        cursor.execute("PRAGMA foreign_keys=ON")
        if wal:  # an in-memory database has no file to log ahead of
            _use_wal(cursor)
    finally:
        cursor.close()


def _use_wal(cursor: Any) -> None:
    """WAL: readers do not block the writer, so several workers can share one file.

    synchronous stays at its default (FULL): a committed transfer survives power loss.
    The mode is stored in the file; switching needs an exclusive lock, and when two
    connections open a new file at once SQLite refuses one at once (waiting could deadlock),
    so the loser looks again: the winner has switched the file for both.
    """
    for attempt in range(1, SQLITE_WAL_SWITCH_ATTEMPTS + 1):
        cursor.execute("PRAGMA journal_mode")
        if cursor.fetchone()[0] == "wal":
            return
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            if cursor.fetchone()[0] == "wal":
                return
        except sqlite3.OperationalError:
            if attempt == SQLITE_WAL_SWITCH_ATTEMPTS:
                raise
        # Blocks the event loop briefly; happens only while a new database file is created.
        time.sleep(SQLITE_WAL_SWITCH_PAUSE_S * attempt)
    raise RuntimeError("SQLite refused WAL journal mode (is the database on a network drive?)")


def _ping_when_idle(engine: AsyncEngine, idle_s: float) -> None:
    """Connections die when PostgreSQL restarts or a proxy times them out: check one that
    sat idle before handing it out (SQLAlchemy's pre-ping would check every checkout)."""

    def checked_in(_dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since_s"] = time.monotonic()

    def checked_out(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_since_s = record.info.get("idle_since_s")
        if idle_since_s is None or time.monotonic() - idle_since_s < idle_s:
            return
        try:
            dbapi_connection.ping()
        except Exception as error:
            # The pool discards this connection and hands out another.
            raise exc.DisconnectionError(f"idle connection is gone: {error}") from error

    event.listen(engine.sync_engine, "checkin", checked_in)
    event.listen(engine.sync_engine, "checkout", checked_out)


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions whose objects stay readable after commit (no lazy reload in async code)."""
    return async_sessionmaker(engine, expire_on_commit=False)


def autocommit_engine(engine: AsyncEngine) -> AsyncEngine:
    """The engine (its pool) with every statement committed on its own, so no BEGIN and
    ROLLBACK round trips around it: for one-statement reads and writes. Never for
    statements that must stand or fall together, or reads that must agree with each other.
    Its connections run Core statements on hot paths without a Session's bookkeeping."""
    return engine.execution_options(isolation_level="AUTOCOMMIT")


def autocommit_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions on `autocommit_engine`, for ORM reads of single statements."""
    return async_sessionmaker(autocommit_engine(engine), expire_on_commit=False)
