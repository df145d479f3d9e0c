"""The async database engine: SQLite (aiosqlite) by default, PostgreSQL (asyncpg) when asked."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any, Final

from sqlalchemy import event
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
POSTGRES_POOL_SIZE: Final = 10
"""Connections each process keeps open; with several workers, multiply."""
POSTGRES_POOL_OVERFLOW_MAX: Final = 10
POSTGRES_POOL_RECYCLE_S: Final = 30 * 60


def create_engine(settings: Settings) -> AsyncEngine:
    """The engine for `settings.database_url_resolved`. Dispose of it when done."""
    url = settings.database_url_resolved
    if settings.is_postgres:
        return create_async_engine(
            url,
            pool_size=POSTGRES_POOL_SIZE,
            max_overflow=POSTGRES_POOL_OVERFLOW_MAX,
            # Connections die when PostgreSQL restarts or a proxy times them out.
            pool_pre_ping=True,
            pool_recycle=POSTGRES_POOL_RECYCLE_S,
        )
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
    engine = create_async_engine(url)

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


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions whose objects stay readable after commit (no lazy reload in async code)."""
    return async_sessionmaker(engine, expire_on_commit=False)
