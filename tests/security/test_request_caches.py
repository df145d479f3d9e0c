"""The caches on the signed request path each have a bound, and none lets a revoked token, a
deactivated wallet address or a revoked key through for longer than it promises: a change made in this process is seen at once, one
made by another process (here: straight in the database, as another worker would) within
`request_cache_s`.

The key caches have their own tests in test_client_keys.py (a key revoked by a client's ASE
stops working when its TTL passes, a local key revoked stops at once) and test_signatures.py
(`test_a_revoked_kid_is_refused_at_once`); the replay cache's bound in test_replay.py.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
import sqlalchemy as sa
from sqlmodel import col
from starlette.applications import Starlette

from opase.api.resource.authorize import local_wallet_address
from opase.authorization.introspectors import INACTIVE, CachedIntrospector, Introspector
from opase.cache import TtlCache
from opase.errors import InvalidRequest
from opase.security.access_tokens import AccessTokens
from opase.settings import Settings
from opase.storage.tables import AccessToken, Grant, utc_now
from opase.wallets.directory import create_asset, create_wallet_address, deactivate_wallet_address
from tests.client import CheckedClient
from tests.signing import ClientIdentity, IssuedGrant, issue_grant, register_client, signed
from tests.world import AUTH, AUTHENTICATED, OUTGOING_PAYMENTS, PUBLIC_URL

CACHE_S = 0.4
"""Short, so that the cross-process bound is seen within the test."""


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"request_cache_s": CACHE_S})


async def status_of(client: CheckedClient, identity: ClientIdentity, token: str) -> int:
    """A signed GET of an unknown outgoing payment: 404 once authenticated, 401 if not."""
    request = signed(client, identity, "GET", f"{OUTGOING_PAYMENTS}/{uuid.uuid4()}", token=token)
    return (await client.send(request)).status_code


async def revoke_elsewhere(app: Starlette, issued: IssuedGrant) -> None:
    """What another worker process does on DELETE /token: this process hears nothing."""
    async with app.state.services.sessions() as session:
        await session.execute(
            sa.update(AccessToken)
            .where(col(AccessToken.id) == issued.access_token_id)
            .values(revoked_at=utc_now())
        )
        await session.commit()


async def test_a_token_revoked_by_another_process_is_refused_within_the_cache_time(
    app: Starlette, client: CheckedClient, identity: ClientIdentity
) -> None:
    issued = await issue_grant(app, identity)
    assert await status_of(client, identity, issued.access_token) == AUTHENTICATED  # now cached
    await revoke_elsewhere(app, issued)
    await asyncio.sleep(CACHE_S + 0.05)
    assert await status_of(client, identity, issued.access_token) == 401


async def test_a_grant_revoked_by_another_process_is_refused_within_the_cache_time(
    app: Starlette, client: CheckedClient, identity: ClientIdentity
) -> None:
    issued = await issue_grant(app, identity)
    assert await status_of(client, identity, issued.access_token) == AUTHENTICATED
    async with app.state.services.sessions() as session:
        await session.execute(
            sa.update(Grant).where(col(Grant.id) == issued.grant_id).values(state="revoked")
        )
        await session.commit()
    await asyncio.sleep(CACHE_S + 0.05)
    assert await status_of(client, identity, issued.access_token) == 401


async def test_forgetting_a_grant_refuses_its_tokens_at_once(
    app: Starlette, client: CheckedClient, identity: ClientIdentity
) -> None:
    """What the token and grant handlers do after their change commits (their end-to-end
    tests: test_incoming_payments.py `test_no_token_or_a_revoked_one_is_401`, rotation and
    cancellation in tests/api/auth)."""
    issued = await issue_grant(app, identity)
    other = await issue_grant(app, identity)
    for token in (issued.access_token, other.access_token):
        assert await status_of(client, identity, token) == AUTHENTICATED
    await revoke_elsewhere(app, issued)
    app.state.services.access_tokens.forget_grant(issued.grant_id)
    assert await status_of(client, identity, issued.access_token) == 401
    assert await status_of(client, identity, other.access_token) == AUTHENTICATED


async def test_rotation_refuses_the_old_value_at_once(
    app: Starlette, client: CheckedClient, identity: ClientIdentity
) -> None:
    issued = await issue_grant(app, identity)
    assert await status_of(client, identity, issued.access_token) == AUTHENTICATED
    manage = f"{AUTH}/token/{issued.access_token_id}"
    rotated = await client.send(signed(client, identity, "POST", manage, token=issued.access_token))
    assert rotated.status_code == 200, rotated.text
    new_value = rotated.json()["access_token"]["value"]
    assert await status_of(client, identity, issued.access_token) == 401
    assert await status_of(client, identity, new_value) == AUTHENTICATED


async def test_the_token_cache_is_bounded_and_keeps_no_unknown_token(app: Starlette) -> None:
    sessions = app.state.services.sessions
    identity = await register_client(app)
    tokens = AccessTokens(sessions, ttl_s=60, count_max=3)
    issued = [await issue_grant(app, identity) for _ in range(5)]
    for grant in issued:
        assert await tokens.find(grant.access_token) is not None
    for _ in range(20):
        assert await tokens.find(f"guessed-{uuid.uuid4()}") is None
    assert len(tokens._cache._entries) == 3
    # The oldest went first; the newest are still answered from memory.
    cached = {live.grant_id for _, live in tokens._cache._entries.values() if live is not None}
    assert cached == {grant.grant_id for grant in issued[2:]}


async def test_a_load_that_straddles_an_invalidation_is_not_kept() -> None:
    """A request that read a token before its revocation committed must not cache it after
    the revocation's `forget_grant` ran: it would keep the token alive for the whole TTL."""
    cache: TtlCache[str, str] = TtlCache(ttl_s=60, count_max=10)
    reading = asyncio.Event()
    release = asyncio.Event()

    async def slow_load(key: str) -> str:
        reading.set()
        await release.wait()
        return "read before the change"

    pending = asyncio.ensure_future(cache.get_or_load("k", slow_load))
    await reading.wait()
    cache.invalidate("k")  # the change commits while the load is under way
    release.set()
    assert await pending == "read before the change"  # the caller gets what it read

    async def fresh_load(key: str) -> str:
        return "read after the change"

    assert await cache.get_or_load("k", fresh_load) == "read after the change"


class CountingIntrospector:
    """Stands for the authorization server across HTTP: answers from a dict, counts calls."""

    def __init__(self) -> None:
        self.active: dict[str, bool] = {}
        self.calls = 0

    async def introspect(self, token: str, access: Any = None) -> dict[str, Any]:
        self.calls += 1
        if not self.active.get(token):
            return dict(INACTIVE)
        return {"active": True, "grant": "g", "access": [], "client": {"walletAddress": "w"}}

    async def aclose(self) -> None:
        return None


async def test_the_resource_servers_introspection_cache_refuses_a_revoked_token_in_time() -> None:
    inner = CountingIntrospector()
    as_introspector: Introspector = inner
    cached = CachedIntrospector(as_introspector, ttl_s=CACHE_S, count_max=2)
    inner.active["t1"] = True
    assert (await cached.introspect("t1"))["active"]
    assert (await cached.introspect("t1"))["active"]
    assert inner.calls == 1  # the second answer came from memory
    inner.active["t1"] = False  # revoked at the authorization server
    await asyncio.sleep(CACHE_S + 0.05)
    assert await cached.introspect("t1") == INACTIVE
    # Inactive answers are never kept: a token issued later is seen at once.
    assert await cached.introspect("t2") == INACTIVE
    inner.active["t2"] = True
    assert (await cached.introspect("t2"))["active"]
    # Bounded: answers for more tokens than count_max push the oldest out.
    for name in ("t3", "t4", "t5"):
        inner.active[name] = True
        await cached.introspect(name)
    assert len(cached._answers._entries) == 2


async def test_a_deactivated_wallet_address_is_refused_at_once_here_and_in_time_elsewhere(
    app: Starlette,
) -> None:
    services = app.state.services
    async with services.sessions() as session:
        asset = await create_asset(session, "USD", 2)
        here = await create_wallet_address(session, "/here", asset.id, None)
        elsewhere = await create_wallet_address(session, "/elsewhere", asset.id, None)
        await session.commit()
    urls = {wallet.id: f"{PUBLIC_URL}{wallet.path}" for wallet in (here, elsewhere)}
    async with services.sessions() as session:
        for wallet_id, url in urls.items():  # both cached now
            assert (await local_wallet_address(services, url, session=session)).id == wallet_id
        await deactivate_wallet_address(session, here.id)
        await deactivate_wallet_address(session, elsewhere.id)
        await session.commit()
    services.forget_wallet_address(here.path)  # what the admin API does after its change
    async with services.sessions() as session:
        with pytest.raises(InvalidRequest):
            await local_wallet_address(services, urls[here.id], session=session)
        # Deactivated by another process: this one still has it, for request_cache_s at most.
        still = await local_wallet_address(services, urls[elsewhere.id], session=session)
        assert still.id == elsewhere.id
    await asyncio.sleep(CACHE_S + 0.05)
    async with services.sessions() as session:
        with pytest.raises(InvalidRequest):
            await local_wallet_address(services, urls[elsewhere.id], session=session)
