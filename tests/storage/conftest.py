"""Storage fixtures: every test runs once on SQLite and once on PostgreSQL, each on a fresh,
migrated database.

`postgres_url` comes from `tests.postgres_server`, registered by the top-level conftest.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from opase.settings import Settings
from opase.storage import create_engine, session_factory, upgrade


@pytest.fixture
def empty_settings(tmp_path: Path, database_url: str) -> Settings:
    """Settings of a new, empty database (no migrations run)."""
    return Settings(data_dir=tmp_path / "data", database_url=database_url)


@pytest.fixture
async def settings(empty_settings: Settings) -> Settings:
    """Settings of a new database at the newest schema, by the real migrations."""
    await upgrade(empty_settings)
    return empty_settings


@pytest.fixture
async def engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(settings)
    yield engine
    await engine.dispose()


@pytest.fixture
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return session_factory(engine)


@pytest.fixture
async def session(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    async with sessions() as session:
        yield session
