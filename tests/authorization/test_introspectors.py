"""Token introspection (`opase.authorization.introspectors`): the answer for live and dead
tokens, the access coverage rules, and the HTTP introspector the split resource server uses,
which fails closed. The listener's HTTP API is tested in tests/api/introspection."""

from __future__ import annotations

import socket
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from opase.app import build_introspection_app
from opase.authorization.introspectors import (
    CachedIntrospector,
    HttpIntrospector,
    InProcessIntrospector,
    IntrospectionUnavailable,
    covers,
    introspect,
)
from opase.services import Services
from opase.settings import Settings
from opase.web.error_responses import error_response
from tests.authorization.granted import (
    ALICE,
    BOB,
    CLIENT,
    GRANTED,
    INCOMING,
    LIMITS,
    OUTGOING,
    QUOTE,
    finalized_grant,
)
from tests.world import PUBLIC_URL


@pytest.fixture
def services(app: Starlette) -> Services:
    result: Services = app.state.services
    return result


# -- the answer ----------------------------------------------------------------------------


async def test_a_live_token_is_active_with_its_grant_access_and_wallet_address(
    services: Services,
) -> None:
    grant_id, token = await finalized_grant(services)
    assert await introspect(services.sessions, token, None) == {
        "active": True,
        "grant": str(grant_id),
        "access": GRANTED,
        "client": {"walletAddress": CLIENT.wallet_address_url},
    }


async def test_a_directed_identity_client_is_named_by_its_jwk(services: Services) -> None:
    _, token = await finalized_grant(services, by_jwk=True)
    answer = await InProcessIntrospector(services.access_tokens).introspect(token)
    assert answer["active"] is True
    assert answer["client"] == {"jwk": CLIENT.jwk}


@pytest.mark.parametrize(
    "dead",
    [
        {"expires_at": datetime.now(UTC) - timedelta(seconds=1)},
        {"revoked_at": datetime.now(UTC)},
        {"state": "revoked"},
        {"state": "approved"},  # consent given, token not issued: no token is live yet
        {"state": "pending"},
    ],
    ids=["expired", "revoked-token", "revoked-grant", "approved-grant", "pending-grant"],
)
async def test_dead_tokens_are_inactive(services: Services, dead: dict[str, Any]) -> None:
    _, token = await finalized_grant(services, **dead)
    assert await introspect(services.sessions, token, None) == {"active": False}


async def test_an_unknown_token_is_inactive(services: Services) -> None:
    await finalized_grant(services)
    assert await introspect(services.sessions, "no-such-token", None) == {"active": False}


# -- access coverage -----------------------------------------------------------------------

COVERAGE = [
    # (granted, requested, covered)
    (INCOMING, {"type": "incoming-payment", "actions": ["create"], "identifier": ALICE}, True),
    (INCOMING, {"type": "incoming-payment", "actions": ["create", "list"], "identifier": ALICE}, True),
    (INCOMING, {"type": "incoming-payment", "actions": ["read"], "identifier": ALICE}, True),
    (INCOMING, {"type": "incoming-payment", "actions": ["read-all"], "identifier": ALICE}, True),
    (INCOMING, {"type": "incoming-payment", "actions": ["list-all"], "identifier": ALICE}, False),
    (INCOMING, {"type": "incoming-payment", "actions": ["complete"], "identifier": ALICE}, False),
    (OUTGOING, {"type": "outgoing-payment", "actions": ["read-all"], "identifier": ALICE}, False),
    ({**OUTGOING, "actions": ["list-all"]}, {"type": "outgoing-payment", "actions": ["list"], "identifier": ALICE}, True),
    (INCOMING, {"type": "outgoing-payment", "actions": ["create"], "identifier": ALICE}, False),
    (INCOMING, {"type": "incoming-payment", "actions": ["create"], "identifier": BOB}, False),
    (INCOMING, {"type": "incoming-payment", "actions": ["create"]}, False),
    (QUOTE, {"type": "quote", "actions": ["create"], "identifier": BOB}, True),
    (QUOTE, {"type": "quote", "actions": ["read"]}, True),
    ({"type": "incoming-payment", "actions": ["read"]}, {"type": "incoming-payment", "actions": ["read"], "identifier": BOB}, True),
    (OUTGOING, {"type": "outgoing-payment", "actions": ["create"], "identifier": ALICE, "limits": LIMITS}, True),
    (OUTGOING, {"type": "outgoing-payment", "actions": ["create"], "identifier": ALICE, "limits": {**LIMITS, "interval": "R/2025-01-01T00:00:00Z/P1D"}}, False),
]  # fmt: skip


@pytest.mark.parametrize(("granted", "requested", "covered"), COVERAGE)
def test_access_coverage(granted: dict[str, Any], requested: dict[str, Any], covered: bool) -> None:
    assert covers(granted, requested) is covered


async def test_requested_access_is_answered_with_the_granted_items_that_cover_it(
    services: Services,
) -> None:
    grant_id, token = await finalized_grant(services)
    requested = [
        {"type": "quote", "actions": ["read"]},
        {"type": "incoming-payment", "actions": ["read"], "identifier": ALICE},
        {"type": "incoming-payment", "actions": ["create"], "identifier": ALICE},
    ]
    answer = await introspect(services.sessions, token, requested)
    # In the grant's order, each covering item once.
    assert answer == {
        "active": True,
        "grant": str(grant_id),
        "access": [INCOMING, QUOTE],
        "client": {"walletAddress": CLIENT.wallet_address_url},
    }


async def test_one_uncovered_item_makes_the_token_inactive(services: Services) -> None:
    _, token = await finalized_grant(services)
    requested = [
        {"type": "quote", "actions": ["read"]},
        {"type": "outgoing-payment", "actions": ["create"], "identifier": BOB},
    ]
    assert await introspect(services.sessions, token, requested) == {"active": False}


# -- the HTTP introspector -----------------------------------------------------------------


async def test_the_http_introspector_gets_the_listeners_answer(
    app: Starlette, settings: Settings, services: Services
) -> None:
    grant_id, token = await finalized_grant(services)
    introspection_app = build_introspection_app(settings, services)
    introspector = HttpIntrospector(
        "http://introspection.test/", transport=httpx.ASGITransport(app=introspection_app)
    )
    try:
        answer = await introspector.introspect(token, [{"type": "quote", "actions": ["create"]}])
        assert answer == {
            "active": True,
            "grant": str(grant_id),
            "access": [QUOTE],
            "client": {"walletAddress": CLIENT.wallet_address_url},
        }
        assert await introspector.introspect(
            token, [{"type": "quote", "actions": ["read-all"]}]
        ) == {"active": False}
        assert await introspector.introspect("unknown") == {"active": False}
    finally:
        await introspector.aclose()


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def test_an_unreachable_authorization_server_fails_closed() -> None:
    introspector = HttpIntrospector(f"http://127.0.0.1:{closed_port()}", timeout_s=2)
    try:
        with pytest.raises(IntrospectionUnavailable) as raised:
            await introspector.introspect("some-token")
    finally:
        await introspector.aclose()
    response = error_response(raised.value, auth_server_url=f"{PUBLIC_URL}/auth")
    assert response.status_code == 503
    assert b"some-token" not in bytes(response.body)


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(500, json={"active": True}),
        httpx.Response(302, headers={"Location": "http://elsewhere.test/"}),
        httpx.Response(200, content=b"<html>not json</html>"),
        httpx.Response(200, json={"active": "true"}),
        httpx.Response(200, json={"active": True}),
        httpx.Response(200, json=[{"active": True}]),
        httpx.Response(200, json={"active": False, "pad": "x" * 70_000}),
    ],
    ids=[
        "500",
        "redirect",
        "not-json",
        "active-not-bool",
        "active-without-grant",
        "list",
        "too-large",
    ],
)
async def test_a_doubtful_answer_fails_closed(answer: httpx.Response) -> None:
    transport = httpx.MockTransport(lambda request: answer)
    introspector = HttpIntrospector("http://introspection.test/", transport=transport)
    try:
        with pytest.raises(IntrospectionUnavailable):
            await introspector.introspect("some-token")
    finally:
        await introspector.aclose()


async def test_services_ask_over_http_only_when_an_introspection_url_is_set(
    settings: Settings,
) -> None:
    assert isinstance(Services.create(settings).introspector, InProcessIntrospector)
    remote = Settings(**(settings.model_dump() | {"introspection_url": "http://10.0.0.2:4200"}))
    services = Services.create(remote)
    try:
        # Over HTTP, with the answers cached briefly in front of it.
        assert isinstance(services.introspector, CachedIntrospector)
        assert isinstance(services.introspector.inner, HttpIntrospector)
    finally:
        await services.close()
