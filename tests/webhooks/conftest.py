"""A real webhook receiver on 127.0.0.1 (uvicorn) that fails when told to, and opase's
public and admin apps with webhook settings small enough for a test to wait them out."""

from __future__ import annotations

import asyncio
import collections
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import uvicorn
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from opase.app import build_admin_app, build_app
from opase.settings import Settings
from opase.webhooks.service import set_webhook
from tests.client import CheckedClient

ADMIN_KEY = "test-admin-key-0123456789"
SECRET = "whsec-0123456789abcdef0123456789"
SERVER_START_TIMEOUT_S = 10.0


@dataclass
class Receiver:
    """An ASE's webhook endpoint. It fails the first `fail_first_count` sends of each event,
    and every send of the events in `fail_ids`; it keeps each event once, by id, as a
    receiver must, and counts what happened."""

    fail_first_count: int = 0
    fail_ids: set[str] = field(default_factory=set)
    delay_s: float = 0.0
    url: str = ""
    sends: collections.Counter[str] = field(default_factory=collections.Counter)
    accepted: collections.Counter[str] = field(default_factory=collections.Counter)
    """2xx answers per event id: the acceptance is that each is exactly 1."""
    events: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    in_flight: set[str] = field(default_factory=set)
    overlaps: int = 0
    """Sends of an event that arrived while another send of it was still open."""
    any_accepted: asyncio.Event = field(default_factory=asyncio.Event)

    async def endpoint(self, request: Request) -> Response:
        body = await request.body()
        self.requests.append((dict(request.headers), body))
        event = json.loads(body)
        event_id = event["id"]
        self.sends[event_id] += 1
        if event_id in self.in_flight:
            self.overlaps += 1
        self.in_flight.add(event_id)
        try:
            await asyncio.sleep(self.delay_s)
        finally:
            self.in_flight.discard(event_id)
        if event_id in self.fail_ids or self.sends[event_id] <= self.fail_first_count:
            return Response("try again later", status_code=500)
        self.accepted[event_id] += 1
        self.any_accepted.set()
        self.events.setdefault(event_id, event)
        return Response(status_code=204)


def verify_signature(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """A receiver's check, written from Rafiki's description rather than opase's code:
    `t=<ms>, v1=<hex>` over `<t>.<JCS of the body>`; for the ASCII, float-free bodies of
    these tests JCS is sorted keys without spaces."""
    fields = dict(part.strip().split("=", 1) for part in headers["rafiki-signature"].split(","))
    canonical = json.dumps(json.loads(body), sort_keys=True, separators=(",", ":"))
    message = f"{fields['t']}.{canonical}".encode()
    expected = hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, fields["v1"])


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
