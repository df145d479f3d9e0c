"""Who the client is: its wallet address's public name, from the database or one bounded
fetch; every failure is an unknown name, never an error."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx
import pytest
from starlette.applications import Starlette

from opase.idp.clients import (
    KEY_ONLY_NAME,
    PUBLIC_NAME_LENGTH_MAX,
    ClientView,
    clean_public_name,
    describe_client,
)
from opase.wallets.directory import create_asset, create_wallet_address
from tests.world import PUBLIC_URL

REMOTE = "https://apps.example/shop"


async def describe(
    app: Starlette, client: dict[str, object], handler: Callable[[httpx.Request], httpx.Response]
) -> ClientView:
    services = app.state.services
    async with services.sessions() as session:
        return await describe_client(
            session, app.state.settings, client,
            fetchable=services.client_keys.fetchable, transport=httpx.MockTransport(handler),
        )  # fmt: skip


def never(request: httpx.Request) -> httpx.Response:
    raise AssertionError(f"no fetch expected, got {request.url}")


async def test_a_local_client_is_named_from_the_database(app: Starlette) -> None:
    async with app.state.services.sessions() as session:
        asset = await create_asset(session, "USD", 2)
        await create_wallet_address(session, "/shop", asset.id, "Local Shop")
        await create_wallet_address(session, "/anon", asset.id, None)
        await session.commit()
    shop = f"{PUBLIC_URL}/shop"
    assert await describe(app, {"walletAddress": shop}, never) == ClientView("Local Shop", shop)
    anon = f"{PUBLIC_URL}/anon"
    assert await describe(app, {"walletAddress": anon}, never) == ClientView(None, anon)
    gone = f"{PUBLIC_URL}/gone"
    assert await describe(app, {"walletAddress": gone}, never) == ClientView(None, gone)


async def test_a_key_only_client_says_so(app: Starlette) -> None:
    jwk = {"kid": "k1", "kty": "OKP", "crv": "Ed25519", "x": "abc"}
    assert await describe(app, {"jwk": jwk}, never) == ClientView(KEY_ONLY_NAME, None, "k1")


async def test_a_remote_client_is_fetched_once_with_bounds(app: Starlette) -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"id": REMOTE, "publicName": "  Shop\u202e Co\n"})

    assert await describe(app, {"walletAddress": REMOTE}, answer) == ClientView("Shop Co", REMOTE)
    [request] = seen
    assert request.method == "GET" and request.headers["accept"] == "application/json"


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(404, json={"error": "nope"}),
        httpx.Response(302, headers={"location": "https://elsewhere.example/"}),
        httpx.Response(200, content=b"not json"),
        httpx.Response(200, json=["a", "list"]),
        httpx.Response(200, json={"publicName": 42}),
        httpx.Response(200, json={"publicName": "x" * 100_000}),  # over the size limit
    ],
)
async def test_every_failure_is_an_unknown_name(app: Starlette, response: httpx.Response) -> None:
    view = await describe(app, {"walletAddress": REMOTE}, lambda request: response)
    assert view == ClientView(None, REMOTE)


async def test_a_slow_server_is_an_unknown_name(app: Starlette) -> None:
    async def stall(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(3600)
        raise AssertionError("not reached")

    services = app.state.services
    settings = app.state.settings.model_copy(update={"client_keys_fetch_timeout_s": 0.05})
    async with services.sessions() as session:
        view = await describe_client(
            session, settings, {"walletAddress": REMOTE},
            fetchable=services.client_keys.fetchable, transport=httpx.MockTransport(stall),
        )  # fmt: skip
    assert view == ClientView(None, REMOTE)


@pytest.mark.parametrize(
    "url", ["http://apps.example/shop", "https://apps.example/shop?x=1", "https://u@apps.example/"]
)
async def test_what_is_not_fetchable_is_not_fetched(app: Starlette, url: str) -> None:
    assert await describe(app, {"walletAddress": url}, never) == ClientView(None, url)


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("Shop", "Shop"),
        ("  Two   words ", "Two words"),
        ("tab\there", "tab here"),
        ("bidi\u202eevil", "bidievil"),
        ("zero\u200bwidth", "zerowidth"),
        ("", None),
        ("\u0000", None),
        (None, None),
        (7, None),
        ("n" * 1000, "n" * PUBLIC_NAME_LENGTH_MAX),
    ],
)
def test_public_names_are_cleaned(raw: object, clean: str | None) -> None:
    assert clean_public_name(raw) == clean
