"""The admin app beside the public one, sharing their services as `opase serve` does."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from starlette.applications import Starlette

from opase.app import build_admin_app, build_app
from opase.settings import Settings
from tests.client import CheckedClient

ADMIN_KEY = "test-admin-key-0123456789"


@pytest.fixture
def admin_settings(settings: Settings) -> Settings:
    # Through the constructor, so the keys are validated (and wrapped) like real settings.
    return Settings(
        **(settings.model_dump() | {"admin_api_keys": [ADMIN_KEY, "second-key-abcdefgh"]})
    )


@pytest.fixture
async def apps(admin_settings: Settings) -> AsyncIterator[tuple[Starlette, Starlette]]:
    public = build_app(admin_settings)
    admin = build_admin_app(admin_settings, public.state.services)
    yield public, admin
    await public.state.services.close()


@pytest.fixture
async def admin(apps: tuple[Starlette, Starlette]) -> AsyncIterator[CheckedClient]:
    async with CheckedClient(apps[1]) as client:
        client.headers["Authorization"] = f"Bearer {ADMIN_KEY}"
        yield client


@pytest.fixture
async def public(apps: tuple[Starlette, Starlette]) -> AsyncIterator[CheckedClient]:
    async with CheckedClient(apps[0]) as client:
        yield client
