"""Token introspection: the answer for live and dead tokens, the access coverage rules, the
HTTP API of the introspection listener (checked against specs/introspection.yaml), the HTTP
introspector the split resource server uses, which fails closed, and the role split of the
public app."""

from __future__ import annotations

import secrets
import socket
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from opase.app import build_app, build_introspection_app, check_roles, parse_roles
from opase.authorization.introspectors import (
    CachedIntrospector,
    HttpIntrospector,
    InProcessIntrospector,
    IntrospectionUnavailable,
    covers,
    introspect,
)
from opase.errors import error_response
from opase.security.access_tokens import token_sha256
from opase.services import Services
from opase.settings import Settings
from opase.storage.tables import AccessToken, Grant
from tests.client import CheckedClient
from tests.signing import ClientIdentity
from tests.world import PUBLIC_URL

ALICE = f"{PUBLIC_URL}/alice"
BOB = f"{PUBLIC_URL}/bob"
CLIENT = ClientIdentity("https://client.example/app", "client-key-1")
INCOMING = {
    "type": "incoming-payment",
    "actions": ["create", "read-all", "list"],
    "identifier": ALICE,
}
LIMITS = {
    "debitAmount": {"value": "500", "assetCode": "USD", "assetScale": 2},
    "interval": "R/2025-01-01T00:00:00Z/P1M",
}
OUTGOING = {
    "type": "outgoing-payment",
    "actions": ["create", "read"],
    "identifier": ALICE,
    "limits": LIMITS,
}
QUOTE = {"type": "quote", "actions": ["create", "read"]}
GRANTED: list[dict[str, Any]] = [INCOMING, OUTGOING, QUOTE]
API_KEY = "introspection-key-0123456789"


async def finalized_grant(
    services: Services,
    *,
    access: list[dict[str, Any]] | None = None,
    by_jwk: bool = False,
    state: str = "finalized",
    expires_at: datetime | None = None,
    revoked_at: datetime | None = None,
) -> tuple[uuid.UUID, str]:
    """A grant as the authorization server stores it once its token is issued; (grant id,
    token value)."""
    token = secrets.token_urlsafe(24)
    grant = Grant(
        state=state,
        client_wallet_address=None if by_jwk else CLIENT.wallet_address_url,
        client_jwk=CLIENT.jwk if by_jwk else None,
        client_key_id=CLIENT.key_id,
        client_key_thumbprint=CLIENT.thumbprint,
        continue_token_sha256=token_sha256(secrets.token_urlsafe(24)),
        access=GRANTED if access is None else access,
    )
    async with services.sessions() as session:
        session.add(grant)
        await session.flush()
        session.add(
            AccessToken(
                grant_id=grant.id,
                value_sha256=token_sha256(token),
                expires_at=expires_at or datetime.now(UTC) + timedelta(minutes=10),
                revoked_at=revoked_at,
            )
        )
        await session.commit()
    return grant.id, token


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


# -- the HTTP API --------------------------------------------------------------------------


@pytest.fixture
async def api(app: Starlette, settings: Settings) -> AsyncIterator[CheckedClient]:
    """The introspection listener's app beside the public one, sharing its services."""
    async with CheckedClient(build_introspection_app(settings, app.state.services)) as client:
        yield client


async def test_the_api_answers_active_and_inactive_as_the_spec_says(
    api: CheckedClient, services: Services
) -> None:
    grant_id, token = await finalized_grant(services, by_jwk=True)
    response = await api.post("/", json={"access_token": token})
    assert response.status_code == 200
    assert response.json() == {
        "active": True, "grant": str(grant_id), "access": GRANTED, "client": {"jwk": CLIENT.jwk}
    }  # fmt: skip
    requested = {"type": "outgoing-payment", "actions": ["read"], "identifier": ALICE}
    response = await api.post("/", json={"access_token": token, "access": [requested]})
    assert response.json()["access"] == [OUTGOING]
    requested["actions"] = ["list"]
    response = await api.post("/", json={"access_token": token, "access": [requested]})
    assert response.json() == {"active": False}
    assert (await api.post("/", json={"access_token": "nope"})).json() == {"active": False}
    assert api.checked_count == 4


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"access_token": ""},
        {"access_token": "t", "access": []},
        {"access_token": "t", "access": [{"type": "quote", "actions": ["list"]}]},
        {"access_token": "t", "extra": 1},
    ],
)
async def test_the_api_refuses_what_is_not_an_introspection_request(
    api: CheckedClient, body: dict[str, Any]
) -> None:
    response = await api.post("/", json=body)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_request"


async def test_the_api_routes_nothing_else(api: CheckedClient) -> None:
    assert (await api.get("/")).status_code == 405
    assert (await api.post("/introspect", json={"access_token": "t"})).status_code == 404
    assert (await api.post("/auth", json={"access_token": "t"})).status_code == 404


async def test_the_api_key_when_set_is_required(app: Starlette, settings: Settings) -> None:
    keyed = Settings(**(settings.model_dump() | {"introspection_api_key": API_KEY}))
    introspection_app = build_introspection_app(keyed, app.state.services)
    async with CheckedClient(introspection_app) as api:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": API_KEY}):
            response = await api.post("/", json={"access_token": "t"}, headers=headers)
            assert response.status_code == 401
            assert response.headers["www-authenticate"].startswith("Bearer")
        response = await api.post(
            "/", json={"access_token": "t"}, headers={"Authorization": f"Bearer {API_KEY}"}
        )
        assert response.status_code == 200 and response.json() == {"active": False}
    introspector = HttpIntrospector(
        "http://introspection.test/",
        api_key=API_KEY,
        transport=httpx.ASGITransport(app=introspection_app),
    )
    try:
        assert await introspector.introspect("t") == {"active": False}
    finally:
        await introspector.aclose()


async def test_the_public_app_does_not_route_introspection(
    client: CheckedClient, services: Services
) -> None:
    _, token = await finalized_grant(services)
    response = await client.post(f"{PUBLIC_URL}/", json={"access_token": token})
    assert response.status_code == 404


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


# -- roles ---------------------------------------------------------------------------------


async def test_the_auth_role_serves_no_resource_server_and_resource_no_auth(
    settings: Settings, app: Starlette
) -> None:
    services = app.state.services
    auth_only = build_app(settings, services, roles=parse_roles(["auth"]))
    async with CheckedClient(auth_only) as client:
        assert (await client.get(f"{PUBLIC_URL}/op/incoming-payments/abc")).status_code == 404
        assert (await client.get(f"{PUBLIC_URL}/alice")).status_code == 404
        assert (await client.post(f"{PUBLIC_URL}/auth", json={})).status_code != 404
    remote = Settings(**(settings.model_dump() | {"introspection_url": "http://127.0.0.1:4200"}))
    resource_only = build_app(remote, services, roles=parse_roles(["resource"]))
    async with CheckedClient(resource_only) as client:
        assert (await client.post(f"{PUBLIC_URL}/auth", json={})).status_code == 404
        assert (await client.get(f"{PUBLIC_URL}/op/quotes/abc")).status_code != 404


def test_the_resource_role_alone_needs_an_introspection_url(settings: Settings) -> None:
    with pytest.raises(ValueError, match="introspection_url"):
        check_roles(settings, parse_roles(["resource"]))
    check_roles(settings, parse_roles(["all"]))
    check_roles(settings, parse_roles(["auth"]))
    assert parse_roles(["all"]) == ("auth", "resource", "wallet")
    assert parse_roles(["wallet", "auth"]) == ("auth", "wallet")
    with pytest.raises(ValueError, match="roles"):
        parse_roles(["admin"])
