"""A real webhook receiver on 127.0.0.1 (uvicorn) that fails when told to, and opase's
public and admin apps with webhook settings small enough for a test to wait them out."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
import uvicorn
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.applications import Starlette
from starlette.routing import Route

from opase.app import build_admin_app, build_app
from opase.settings import Settings
from opase.webhooks.endpoint import set_webhook
from tests.client import CheckedClient
from tests.webhooks.receiver import SECRET, Receiver

ADMIN_KEY = "test-admin-key-0123456789"
SERVER_START_TIMEOUT_S = 10.0


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    state = Receiver()
    app = Starlette(routes=[Route("/hooks", state.endpoint, methods=["POST"])])
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, log_level="warning", lifespan="off", ws="none"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    async with asyncio.timeout(SERVER_START_TIMEOUT_S):
        while not server.started:
            if task.done():
                raise RuntimeError("the webhook receiver did not start")
            await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    state.url = f"http://127.0.0.1:{port}/hooks"
    yield state
    server.should_exit = True
    await task


@pytest.fixture
def webhook_settings(settings: Settings) -> Settings:
    return Settings(
        **(
            settings.model_dump()
            | {
                "admin_api_keys": [ADMIN_KEY],
                "webhook_attempts_max": 3,
                "webhook_timeout_s": 1.0,
                "webhook_backoff_s": 0.01,
                "webhook_poll_s": 0.01,
                "webhook_batch_count_max": 20,
            }
        )
    )


@pytest.fixture
async def apps(webhook_settings: Settings) -> AsyncIterator[tuple[Starlette, Starlette]]:
    public = build_app(webhook_settings)
    admin = build_admin_app(webhook_settings, public.state.services)
    yield public, admin
    await public.state.services.close()


@pytest.fixture
def sessions(apps: tuple[Starlette, Starlette]) -> async_sessionmaker[AsyncSession]:
    factory: async_sessionmaker[AsyncSession] = apps[0].state.services.sessions
    return factory


@pytest.fixture
async def admin(apps: tuple[Starlette, Starlette]) -> AsyncIterator[CheckedClient]:
    async with CheckedClient(apps[1]) as client:
        client.headers["Authorization"] = f"Bearer {ADMIN_KEY}"
        yield client


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


@pytest.fixture
async def endpoint(receiver: Receiver, sessions: async_sessionmaker[AsyncSession]) -> Receiver:
    """The receiver, set as the webhook endpoint with SECRET."""
    async with sessions() as session:
        await set_webhook(session, receiver.url, SECRET)
        await session.commit()
    return receiver
