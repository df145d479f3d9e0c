"""Shared fixtures: settings on a temporary database, the app, a spec-checking client, the
seeded ASE (tests.world), the client apps (tests.actors), and a sandbox."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
import pytest
from sqlalchemy.engine import URL, make_url
from starlette.applications import Starlette

from opase.app import build_app
from opase.settings import Settings
from opase.storage.migrate import upgrade
from tests.actors import ClientApp
from tests.client import CheckedClient
from tests.servers import RunningSandbox, sandbox
from tests.signing import ClientIdentity, IssuedGrant, issue_grant, register_client
from tests.world import PUBLIC_URL, Seeded, add_dave_and_fund_alice, seed, set_prices

pytest_plugins = ["tests.postgres_server"]


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
async def database_url(request: pytest.FixtureRequest, backend: str) -> AsyncIterator[str]:
    """ "" (SQLite in the test's data dir) or a new, empty PostgreSQL database, dropped after."""
    if backend == "sqlite":
        yield ""
        return
    # Only PostgreSQL runs ask for the server, so SQLite runs never start (or skip on) it.
    server = make_url(request.getfixturevalue("postgres_url")).set(drivername="postgresql")
    name = f"opase_test_{uuid.uuid4().hex}"
    await _admin(server, f'CREATE DATABASE "{name}"')
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
async def app(settings: Settings) -> AsyncIterator[Starlette]:
    await upgrade(settings)
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
