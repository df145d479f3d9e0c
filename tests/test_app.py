"""The app's roles (`opase.app`): which servers each role serves, and what a role alone
needs."""

from __future__ import annotations

import pytest
from starlette.applications import Starlette

from opase.app import build_app, check_roles, parse_roles
from opase.settings import Settings
from tests.client import CheckedClient
from tests.world import PUBLIC_URL


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
