"""The app's roles (`opase.app`): which servers each role serves, and what a role alone
needs."""

from __future__ import annotations

import httpx
import pytest
from starlette.applications import Starlette

from opase.app import build_app, check_roles, parse_roles
from opase.settings import Settings
from tests.client import CheckedClient
from tests.responses import error_code
from tests.world import AUTH, PUBLIC_URL


def assert_unrouted(response: httpx.Response) -> None:
    """The router's own 404: no server of the app's roles has the path (a handler's 404
    names what it did not find)."""
    assert error_code(response, 404) == "not_found"
    path = response.request.url.path
    assert response.json()["error"]["description"] == f"no resource at {path}"


async def test_the_auth_role_serves_no_resource_server_and_resource_no_auth(
    settings: Settings, app: Starlette
) -> None:
    services = app.state.services
    auth_only = build_app(settings, services, roles=parse_roles(["auth"]))
    async with CheckedClient(auth_only) as client:
        assert_unrouted(await client.get(f"{PUBLIC_URL}/op/incoming-payments/abc"))
        assert_unrouted(await client.get(f"{PUBLIC_URL}/alice"))
        # Routed: the grant endpoint itself refuses the empty request.
        asked = await client.post(AUTH, json={})
        assert error_code(asked, 400) == "invalid_request"
        assert "access_token" in asked.text
    remote = Settings(**(settings.model_dump() | {"introspection_url": "http://127.0.0.1:4200"}))
    resource_only = build_app(remote, services, roles=parse_roles(["resource"]))
    async with CheckedClient(resource_only) as client:
        assert_unrouted(await client.post(AUTH, json={}))
        # Routed: the quote handler's authentication asks for a token of this ASE's server.
        unsigned = await client.get(f"{PUBLIC_URL}/op/quotes/abc")
        assert error_code(unsigned, 401) == "unauthorized"
        assert unsigned.headers["www-authenticate"] == f'GNAP as_uri="{AUTH}"'


def test_the_resource_role_alone_needs_an_introspection_url(settings: Settings) -> None:
    with pytest.raises(ValueError, match="introspection_url"):
        check_roles(settings, parse_roles(["resource"]))
    check_roles(settings, parse_roles(["all"]))
    check_roles(settings, parse_roles(["auth"]))
    assert parse_roles(["all"]) == ("auth", "resource", "wallet")
    assert parse_roles(["wallet", "auth"]) == ("auth", "wallet")
    with pytest.raises(ValueError, match="roles"):
        parse_roles(["admin"])
