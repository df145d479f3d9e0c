"""The wallet address server: documents, keys, DID documents, 404s, redirects, caching, CORS;
every response checked against wallet-address-server.yaml by the client."""

from __future__ import annotations

from pathlib import Path

import pytest
from starlette.applications import Starlette

from opase.app import build_app
from opase.settings import Settings
from opase.storage.migrate import upgrade
from opase.wallets.directory import add_key, deactivate_wallet_address
from opase.web.response_check import ResponseViolation
from tests.client import CheckedClient
from tests.responses import error_code
from tests.world import KEY_X, PUBLIC_URL, Seeded, seed


async def test_wallet_address_document_has_the_requested_url_as_id(
    client: CheckedClient, seeded: Seeded
) -> None:
    response = await client.get("/alice", headers={"Accept": "application/json"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "id": f"{PUBLIC_URL}/alice",
        "publicName": "Alice",
        "assetCode": "USD",
        "assetScale": 2,
        "authServer": f"{PUBLIC_URL}/auth",
        "resourceServer": f"{PUBLIC_URL}/op",
    }
    assert response.headers["cache-control"] == "public, max-age=300"


async def test_nested_path_without_public_name(client: CheckedClient, seeded: Seeded) -> None:
    response = await client.get("/accounts/bob")
    assert response.status_code == 200
    document = response.json()
    assert document["id"] == f"{PUBLIC_URL}/accounts/bob"
    assert "publicName" not in document
    assert (document["assetCode"], document["assetScale"]) == ("EUR", 3)


async def test_jwks_lists_active_keys_only(
    app: Starlette, client: CheckedClient, seeded: Seeded
) -> None:
    response = await client.get("/alice/jwks.json")
    assert response.status_code == 200
    assert response.json() == {
        "keys": [
            {
                "kid": "key-1",
                "alg": "EdDSA",
                "kty": "OKP",
                "crv": "Ed25519",
                "x": KEY_X,
                "use": "sig",
            }
        ]
    }
    empty = await client.get("/accounts/bob/jwks.json")
    assert empty.status_code == 200 and empty.json() == {"keys": []}


@pytest.mark.parametrize(
    "path", ["/nobody", "/carol", "/nobody/jwks.json", "/carol/jwks.json", "/carol/did.json"]
)
async def test_unknown_and_deactivated_addresses_are_404(
    client: CheckedClient, seeded: Seeded, path: str
) -> None:
    response = await client.get(path)
    assert error_code(response, 404) == "not_found"
    assert response.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize("path", ["/alice/", "/%61lice", "/", "/alice//jwks.json"])
async def test_only_the_exact_url_is_a_wallet_address(
    client: CheckedClient, seeded: Seeded, path: str
) -> None:
    # A signature covers the exact URL: no trailing-slash redirect, no decoded aliases.
    response = await client.get(path)
    assert error_code(response, 404) == "not_found"
    assert "location" not in response.headers


async def test_did_document_lists_the_keys(client: CheckedClient, seeded: Seeded) -> None:
    response = await client.get("/alice/did.json")
    assert response.status_code == 200
    document = response.json()
    assert document["id"] == "did:web:wallet.example:alice"
    [method] = document["verificationMethod"]
    assert method["id"] == "did:web:wallet.example:alice#key-1"
    assert method["publicKeyJwk"]["x"] == KEY_X


async def test_other_methods_are_405_with_allow(client: CheckedClient, seeded: Seeded) -> None:
    response = await client.post("/alice", json={})
    assert error_code(response, 405) == "method_not_allowed"
    assert response.headers["allow"] == "GET"


async def test_html_clients_are_redirected_when_a_page_is_configured(tmp_path: Path) -> None:
    settings = Settings(
        public_url=PUBLIC_URL,
        data_dir=tmp_path,
        wallet_address_html_url="https://bank.example/pay?to=%ewa&path=%wp",
    )
    await upgrade(settings)
    app = build_app(settings)
    await seed(app)
    async with CheckedClient(app) as client:
        response = await client.get("/alice", headers={"Accept": "text/html,*/*;q=0.8"})
        assert response.status_code == 302
        assert response.headers["location"] == (
            "https://bank.example/pay?to=https%3A%2F%2Fwallet.example%2Falice&path=/alice"
        )
        unknown = await client.get("/nobody", headers={"Accept": "text/html"})
        assert error_code(unknown, 404) == "not_found"
        as_json = await client.get("/alice", headers={"Accept": "application/json, text/html"})
        assert as_json.status_code == 200
    await app.state.services.close()


async def test_html_clients_get_json_when_no_page_is_configured(
    client: CheckedClient, seeded: Seeded
) -> None:
    response = await client.get("/alice", headers={"Accept": "text/html"})
    assert response.status_code == 200 and response.json()["id"] == f"{PUBLIC_URL}/alice"


async def test_browsers_may_read_cross_origin(client: CheckedClient, seeded: Seeded) -> None:
    response = await client.get("/alice", headers={"Origin": "https://app.example"})
    assert response.headers["access-control-allow-origin"] == "*"
    preflight = await client.options(
        "/alice/jwks.json",
        headers={"Origin": "https://app.example", "Access-Control-Request-Method": "GET"},
    )
    assert preflight.status_code == 200
    assert "GET" in preflight.headers["access-control-allow-methods"]


async def test_a_change_in_this_process_is_seen_at_once(
    app: Starlette, client: CheckedClient, seeded: Seeded
) -> None:
    assert (await client.get("/alice/jwks.json")).json()["keys"][0]["kid"] == "key-1"
    services = app.state.services
    async with services.sessions() as session:
        await add_key(session, seeded.alice_id, "key-2", KEY_X)
        await deactivate_wallet_address(session, seeded.bob_id)
        await session.commit()
    # Another process's change is seen when the cached copy expires (wallet_address_cache_s);
    # this process forgets its copy as soon as it makes the change.
    assert len((await client.get("/alice/jwks.json")).json()["keys"]) == 1
    services.forget_wallet_address("/alice")
    services.forget_wallet_address("/accounts/bob")
    kids = [key["kid"] for key in (await client.get("/alice/jwks.json")).json()["keys"]]
    assert sorted(kids) == ["key-1", "key-2"]
    assert error_code(await client.get("/accounts/bob"), 404) == "not_found"


async def test_without_a_cache_every_read_sees_the_database(tmp_path: Path) -> None:
    settings = Settings(public_url=PUBLIC_URL, data_dir=tmp_path, wallet_address_cache_s=0)
    await upgrade(settings)
    app = build_app(settings)
    seeded = await seed(app)
    async with CheckedClient(app) as client:
        assert (await client.get("/alice")).status_code == 200
        async with app.state.services.sessions() as session:
            await deactivate_wallet_address(session, seeded.alice_id)
            await session.commit()
        assert error_code(await client.get("/alice"), 404) == "not_found"
        bob = await client.get("/accounts/bob")
        assert bob.headers["cache-control"] == "public, max-age=0"
    await app.state.services.close()


async def test_the_test_client_rejects_a_document_that_breaks_the_spec(
    app: Starlette, client: CheckedClient, seeded: Seeded, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def without_asset_code(ctx: object) -> dict[str, object]:
        return {
            "id": f"{PUBLIC_URL}/alice",
            "assetScale": 2,
            "authServer": "a",
            "resourceServer": "r",
        }

    monkeypatch.setitem(app.state.router.handlers, "get-wallet-address", without_asset_code)
    with pytest.raises(ResponseViolation, match="assetCode"):
        await client.get("/alice")


async def test_the_fast_path_sends_what_the_full_path_sent(
    app: Starlette, client: CheckedClient, seeded: Seeded
) -> None:
    # The first GET loads through the handler; the second is answered from memory.
    for path in ("/alice", "/alice/jwks.json"):
        first = await client.get(path)
        second = await client.get(path)
        assert second.content == first.content
        assert second.headers.multi_items() == first.headers.multi_items()
    # A remembered 404 and a query string both take the full path, with the error body.
    assert error_code(await client.get("/nobody"), 404) == "not_found"
    again = await client.get("/nobody")
    assert again.status_code == 404 and again.json()["error"]["code"] == "not_found"
    assert (await client.get("/alice?x=1")).status_code == 200


async def test_a_cached_document_still_redirects_browsers(tmp_path: Path) -> None:
    settings = Settings(
        public_url=PUBLIC_URL, data_dir=tmp_path, wallet_address_html_url="https://b.example/%wp"
    )
    await upgrade(settings)
    app = build_app(settings)
    await seed(app)
    async with CheckedClient(app) as client:
        assert (
            await client.get("/alice", headers={"Accept": "application/json"})
        ).status_code == 200
        html = await client.get("/alice", headers={"Accept": "text/html"})
        assert html.status_code == 302 and html.headers["location"] == "https://b.example//alice"
    await app.state.services.close()
