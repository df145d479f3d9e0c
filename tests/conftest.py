"""Shared fixtures: settings on a temporary database, the app, and a spec-checking client."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
import pytest
from sqlalchemy.engine import URL, make_url
from starlette.applications import Starlette

from opase.app import build_app
from opase.settings import Settings
from opase.storage.migrate import upgrade
from opase.wallets.service import (
    add_key,
    create_asset,
    create_wallet_address,
    deactivate_wallet_address,
)
from tests.client import CheckedClient

pytest_plugins = ["tests.postgres_server"]

PUBLIC_URL = "https://wallet.example"
# An Ed25519 public key (RFC 8037 Appendix A.2), base64url.
KEY_X = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"


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


@dataclass(frozen=True)
class Seeded:
    alice_id: object
    bob_id: object


@pytest.fixture
async def seeded(app: Starlette) -> Seeded:
    return await seed(app)


async def seed(app: Starlette) -> Seeded:
    """/alice (USD, named, one key), /accounts/bob (EUR 3, unnamed), /carol (deactivated)."""
    async with app.state.services.sessions() as session:
        usd = await create_asset(session, "USD", 2)
        eur = await create_asset(session, "EUR", 3)
        alice = await create_wallet_address(session, "/alice", usd.id, "Alice")
        bob = await create_wallet_address(session, "/accounts/bob", eur.id, None)
        carol = await create_wallet_address(session, "/carol", usd.id, "Carol")
        await add_key(session, alice.id, "key-1", KEY_X)
        await deactivate_wallet_address(session, carol.id)
        await session.commit()
    return Seeded(alice.id, bob.id)
