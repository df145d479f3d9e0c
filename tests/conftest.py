"""Shared fixtures: settings on a temporary database, the app, a spec-checking client, the
seeded ASE (tests.world), the client apps (tests.actors), and a sandbox."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TypeVar

import asyncpg  # type: ignore[import-untyped]
import pytest
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from starlette.applications import Starlette

from opase.app import build_app
from opase.settings import Settings
from opase.storage.engine import create_engine, session_factory
from opase.storage.migrate import upgrade_sync
from tests.actors import ClientApp
from tests.client import CheckedClient
from tests.servers import RunningSandbox, sandbox
from tests.signing import ClientIdentity, IssuedGrant, issue_grant, register_client
from tests.world import PUBLIC_URL, Seeded, add_dave_and_fund_alice, seed, set_prices

pytest_plugins = ["tests.postgres_server"]


T = TypeVar("T")


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Groups for `pytest -n ... --dist loadgroup` (the nox session), each run by one worker
    in turn: the `slow` tests, which start servers and processes that take more than a
    core at times, so that two never starve each other (or a CPU-bound test) of the CPU; and
    the tests of a module with module-scoped fixtures, so that those are made once."""
    for item in items:
        if item.get_closest_marker("slow") is not None:
            item.add_marker(pytest.mark.xdist_group("slow"))
            continue
        fixture_defs = getattr(item, "_fixtureinfo", None)
        scopes = (
            {d.scope for defs in fixture_defs.name2fixturedefs.values() for d in defs}
            if fixture_defs is not None
            else set()
        )
        if scopes & {"module", "package", "class"}:
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::")[0]))


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


# Every test gets a database of its own, as new; the schema is not migrated per test (0.2 s
# on SQLite, 0.4 s on PostgreSQL) but once per session (per xdist worker) into a template,
# by the real migrations, and copied. tests/storage/test_migrations.py and
# tests/ledger/test_migration.py migrate `empty_database_url` databases themselves.


@pytest.fixture
async def database_url(
    request: pytest.FixtureRequest, backend: str, tmp_path: Path
) -> AsyncIterator[str]:
    """A new database at the newest schema, for `Settings(data_dir=tmp_path, database_url=...)`.

    SQLite: "" (the default file in the data dir), with the session's template copied to
    `tmp_path / "opase.db"`. PostgreSQL: a new database made from the session's template,
    dropped after.
    """
    if backend == "sqlite":
        shutil.copyfile(request.getfixturevalue("sqlite_template"), tmp_path / SQLITE_FILE)
        yield ""
        return
    # Only PostgreSQL runs ask for the server, so SQLite runs never start (or skip on) it.
    server = _server(request.getfixturevalue("postgres_url"))
    async with _new_database(server, template=request.getfixturevalue("postgres_template")) as url:
        yield url


@pytest.fixture
async def empty_database_url(request: pytest.FixtureRequest, backend: str) -> AsyncIterator[str]:
    """A new database with no tables, for the tests of the migrations themselves.

    SQLite: "" (a new file in the data dir the test names; not `tmp_path` itself, where
    `database_url` puts its copy). PostgreSQL: a new, empty database, dropped after.
    """
    if backend == "sqlite":
        yield ""
        return
    async with _new_database(_server(request.getfixturevalue("postgres_url"))) as url:
        yield url


SQLITE_FILE = "opase.db"
"""Where Settings puts the SQLite database in its data dir when `database_url` is ""."""


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite database file at the newest schema: `database_url` copies it per test."""
    data_dir = tmp_path_factory.mktemp("sqlite-template")
    _off_the_loop(lambda: upgrade_sync(Settings(data_dir=data_dir, database_url="")))
    path = data_dir / SQLITE_FILE
    # Fold the write-ahead log into the file, so that the file alone is the database.
    connection = sqlite3.connect(path)
    try:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        connection.close()
    assert not path.with_name(f"{SQLITE_FILE}-wal").exists()
    return path


@pytest.fixture(scope="session")
def postgres_template(postgres_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The name of a PostgreSQL database at the newest schema: `database_url` makes each
    test's database from it (CREATE DATABASE ... TEMPLATE, a file copy on the server)."""
    server = _server(postgres_url)
    name = f"opase_template_{uuid.uuid4().hex}"
    url = server.set(database=name).render_as_string(hide_password=False)
    settings = Settings(data_dir=tmp_path_factory.mktemp("postgres-template"), database_url=url)

    def make() -> None:
        asyncio.run(_admin(server, f'CREATE DATABASE "{name}"'))
        upgrade_sync(settings)

    _off_the_loop(make)
    try:
        yield name
    finally:
        _off_the_loop(lambda: asyncio.run(_admin(server, f'DROP DATABASE "{name}" WITH (FORCE)')))


def _off_the_loop(function: Callable[[], T]) -> T:
    """Run `function`, which runs event loops of its own, on a thread: the session fixtures
    above are first asked for from inside a test's running loop."""
    with ThreadPoolExecutor(1) as thread:
        return thread.submit(function).result()


def _server(postgres_url: str) -> URL:
    return make_url(postgres_url).set(drivername="postgresql")


@asynccontextmanager
async def _new_database(server: URL, template: str | None = None) -> AsyncIterator[str]:
    """A new database on `server` (a copy of `template` if named), dropped on exit."""
    name = f"opase_test_{uuid.uuid4().hex}"
    copy_of = f' TEMPLATE "{template}"' if template else ""
    await _admin(server, f'CREATE DATABASE "{name}"{copy_of}')
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        await _admin(server, f'DROP DATABASE "{name}" WITH (FORCE)')


async def _admin(server: URL, statement: str) -> None:
    connection = await asyncpg.connect(server.render_as_string(hide_password=False))
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    # https behind a proxy: the app itself only ever sees what the transport gives it.
    return Settings(public_url=PUBLIC_URL, data_dir=tmp_path, database_url=database_url)


@pytest.fixture
async def engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    """An engine of its own on the test's database, for tests below the app."""
    engine = create_engine(settings)
    yield engine
    await engine.dispose()


@pytest.fixture
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return session_factory(engine)


@pytest.fixture
async def session(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """One session on the test's database, for tests of the domain services below the app."""
    async with sessions() as session:
        yield session


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[Starlette]:
    application = build_app(settings)
    yield application
    await application.state.services.close()


@pytest.fixture
async def client(app: Starlette) -> AsyncIterator[CheckedClient]:
    async with CheckedClient(app) as checked:
        yield checked


@pytest.fixture
async def seeded(app: Starlette) -> Seeded:
    return await seed(app)


# --- the actors (tests.actors) -----------------------------------------------------------


@pytest.fixture
async def identity(app: Starlette) -> ClientIdentity:
    """A client app's key, published at its wallet address /client-app of this ASE."""
    return await register_client(app)


@pytest.fixture
async def grant(app: Starlette, identity: ClientIdentity) -> IssuedGrant:
    """A finalized incoming-payment grant of `identity`, stored straight into the tables."""
    return await issue_grant(app, identity)


@pytest.fixture
async def client_app(
    app: Starlette, seeded: Seeded, client: CheckedClient, identity: ClientIdentity
) -> ClientApp:
    """The client app with `identity`'s key, acting for Alice in the seeded ASE."""
    return ClientApp(client, identity, app)


@pytest.fixture
async def other_app(app: Starlette, client_app: ClientApp, client: CheckedClient) -> ClientApp:
    """A second client app (/other-app), also acting for Alice."""
    return ClientApp(client, await register_client(app, "/other-app", "other-key-1"), app)


@pytest.fixture
async def payer(app: Starlette, seeded: Seeded, client_app: ClientApp) -> ClientApp:
    """The client app, with Alice funded (ALICE_FUNDS_MINOR) and /dave to pay."""
    await add_dave_and_fund_alice(app, seeded)
    return client_app


@pytest.fixture
async def priced(app: Starlette, seeded: Seeded) -> None:
    """1 USD = 0.9137 EUR; USD sending fee 25 + 50 bp, EUR receiving fee 100 + 30 bp."""
    await set_prices(app)


# --- a sandbox as a user starts it (tests.servers) ---------------------------------------


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSandbox]:
    """`opase sandbox` in a subprocess, one per test module."""
    with sandbox(tmp_path_factory.mktemp("sandbox")) as started:
        yield started
