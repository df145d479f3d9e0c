"""The introspection listener's HTTP API (`opase.api.introspection`): active and inactive
answers as specs/introspection.yaml says (each response checked by the client), refusals,
nothing else routed, the API key; and the public app does not route it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from opase.app import build_introspection_app
from opase.authorization.introspectors import HttpIntrospector
from opase.settings import Settings
from tests.authorization.granted import ALICE, CLIENT, GRANTED, OUTGOING, finalized_grant
from tests.client import CheckedClient
from tests.responses import error_code
from tests.world import PUBLIC_URL

API_KEY = "introspection-key-0123456789"


# -- the HTTP API --------------------------------------------------------------------------


@pytest.fixture
async def api(app: Starlette, settings: Settings) -> AsyncIterator[CheckedClient]:
    """The introspection listener's app beside the public one, sharing its services."""
    async with CheckedClient(build_introspection_app(settings, app.state.services)) as client:
        yield client


async def test_the_api_answers_active_and_inactive_as_the_spec_says(
    api: CheckedClient, app: Starlette
) -> None:
    grant_id, token = await finalized_grant(app.state.services, by_jwk=True)
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
    assert error_code(await api.post("/", json=body), 400) == "invalid_request"


async def test_the_api_routes_nothing_else(api: CheckedClient) -> None:
    get = await api.get("/")
    assert error_code(get, 405) == "method_not_allowed"
    assert get.headers["allow"] == "POST"
    for path in ("/introspect", "/auth"):
        unrouted = await api.post(path, json={"access_token": "t"})
        assert error_code(unrouted, 404) == "not_found"
        assert unrouted.json()["error"]["description"] == f"no resource at {path}"


async def test_the_api_key_when_set_is_required(app: Starlette, settings: Settings) -> None:
    keyed = Settings(**(settings.model_dump() | {"introspection_api_key": API_KEY}))
    introspection_app = build_introspection_app(keyed, app.state.services)
    async with CheckedClient(introspection_app) as api:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": API_KEY}):
            response = await api.post("/", json={"access_token": "t"}, headers=headers)
            assert error_code(response, 401) == "unauthorized"
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
    client: CheckedClient, app: Starlette
) -> None:
    _, token = await finalized_grant(app.state.services)
    response = await client.post(f"{PUBLIC_URL}/", json={"access_token": token})
    assert error_code(response, 404) == "not_found"
    assert token not in response.text
