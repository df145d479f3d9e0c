"""Incoming payments through HTTP with grants issued over HTTP: create, get (public and
private), list with cursor pagination, complete; every refusal (401, 403, 400, 409). Each
response is checked against resource-server.yaml by the client (openapi-core)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from starlette.applications import Starlette

from opase.settings import Settings
from tests.actors import ClientApp, incoming_access
from tests.client import CheckedClient
from tests.money import usd
from tests.responses import error_code
from tests.rows import set_incoming_payment
from tests.signing import ClientIdentity
from tests.world import ALICE, AUTH, BOB, INCOMING_PAYMENTS, PUBLIC_URL

ALL_ACTIONS = ["create", "read", "list", "complete"]
ILP_ADDRESS = re.compile(r"^test\.opase\.[0-9a-f]{32}$")
SHARED_SECRET = re.compile(r"^[A-Za-z0-9_-]{43}$")


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # `list-all` without the owner's consent, so a test can hold it without a browser.
    return settings.model_copy(update={"list_all_interaction": False})


async def incoming_token(
    client_app: ClientApp, actions: list[str] = ALL_ACTIONS, identifier: str | None = ALICE
) -> dict[str, Any]:
    """An incoming-payment token of `client_app` (by default: every action, at Alice's)."""
    extra = {} if identifier is None else {"identifier": identifier}
    return await client_app.token(incoming_access(actions, **extra))


# --- create, get, complete --------------------------------------------------------------


async def test_create_get_and_complete(client_app: ClientApp, client: CheckedClient) -> None:
    token = await incoming_token(client_app)
    expires_at = datetime.now(UTC) + timedelta(hours=1)
    payment = await client_app.incoming_payment(
        token,
        incomingAmount=usd("2500"),
        expiresAt=expires_at.isoformat(),
        metadata={"externalRef": "INV-1", "lines": [1, 2]},
    )
    assert payment["id"].startswith(f"{INCOMING_PAYMENTS}/")
    assert payment["walletAddress"] == ALICE
    assert payment["completed"] is False
    assert payment["incomingAmount"] == usd("2500")
    assert payment["receivedAmount"] == usd("0")
    assert payment["metadata"] == {"externalRef": "INV-1", "lines": [1, 2]}
    assert abs(datetime.fromisoformat(payment["expiresAt"]) - expires_at) < timedelta(seconds=1)
    [method] = payment["methods"]
    assert method["type"] == "ilp"
    assert ILP_ADDRESS.match(method["ilpAddress"])
    assert SHARED_SECRET.match(method["sharedSecret"])

    private = await client_app.get(payment["id"], token)
    assert private.status_code == 200, private.text
    assert private.json() == payment

    public = await client.get(payment["id"])
    assert public.status_code == 200, public.text
    assert public.json() == {"receivedAmount": usd("0"), "authServer": AUTH}

    completed = await client_app.complete(payment["id"], token)
    assert completed.status_code == 200, completed.text
    assert completed.json() == {k: v for k, v in payment.items() if k != "methods"} | {
        "completed": True
    }
    assert error_code(await client_app.complete(payment["id"], token), 409) == "conflict"
    assert (await client_app.get(payment["id"], token)).json()["completed"] is True


async def test_each_payment_has_its_own_address_and_secret(client_app: ClientApp) -> None:
    token = await incoming_token(client_app)
    one, two = await client_app.incoming_payment(token), await client_app.incoming_payment(token)
    assert one["methods"][0]["ilpAddress"] != two["methods"][0]["ilpAddress"]
    assert one["methods"][0]["sharedSecret"] != two["methods"][0]["sharedSecret"]
    assert "incomingAmount" not in one and "metadata" not in one


async def test_expiry_defaults_to_the_maximum_and_may_not_exceed_it(
    client_app: ClientApp, app: Starlette
) -> None:
    token = await incoming_token(client_app)
    expiry_max = timedelta(seconds=app.state.settings.incoming_payment_expiry_s_max)
    assert expiry_max == timedelta(days=30)
    before = datetime.now(UTC)
    payment = await client_app.incoming_payment(token)
    expires_at = datetime.fromisoformat(payment["expiresAt"])
    assert before + expiry_max - timedelta(seconds=1) <= expires_at
    assert expires_at <= datetime.now(UTC) + expiry_max
    too_late = (datetime.now(UTC) + expiry_max + timedelta(minutes=1)).isoformat()
    assert (
        error_code(await client_app.create_incoming_payment(token, expiresAt=too_late), 400)
        == "invalid_request"
    )
    past = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    assert (
        error_code(await client_app.create_incoming_payment(token, expiresAt=past), 400)
        == "invalid_request"
    )


async def test_an_expired_payment_cannot_be_completed(
    client_app: ClientApp, app: Starlette
) -> None:
    token = await incoming_token(client_app)
    payment = await client_app.incoming_payment(token)
    await set_incoming_payment(
        app, payment["id"], expires_at=datetime.now(UTC) - timedelta(seconds=1)
    )
    assert error_code(await client_app.complete(payment["id"], token), 409) == "conflict"
    seen = (await client_app.get(payment["id"], token)).json()
    assert seen["completed"] is False
    assert datetime.fromisoformat(seen["expiresAt"]) < datetime.now(UTC)


async def test_invalid_creations_are_400(client_app: ClientApp) -> None:
    token = await incoming_token(client_app, identifier=None)
    eur = {"value": "100", "assetCode": "EUR", "assetScale": 3}
    assert (
        error_code(await client_app.create_incoming_payment(token, incomingAmount=eur), 400)
        == "invalid_request"
    )
    wrong_scale = {"value": "100", "assetCode": "USD", "assetScale": 3}
    response = await client_app.create_incoming_payment(token, incomingAmount=wrong_scale)
    assert error_code(response, 400) == "invalid_request"
    response = await client_app.create_incoming_payment(token, incomingAmount=usd("0"))
    assert error_code(response, 400) == "invalid_request"
    big = {"blob": "x" * 9000}
    assert (
        error_code(await client_app.create_incoming_payment(token, metadata=big), 400)
        == "invalid_request"
    )
    for unknown in (f"{PUBLIC_URL}/carol", f"{PUBLIC_URL}/nobody", "https://elsewhere.example/a"):
        response = await client_app.http.post(
            INCOMING_PAYMENTS, json={"walletAddress": unknown}, auth=client_app.auth(token)
        )
        assert error_code(response, 400) == "invalid_request"


async def test_unknown_payments_are_404(client_app: ClientApp, client: CheckedClient) -> None:
    token = await incoming_token(client_app)
    for url in (
        f"{INCOMING_PAYMENTS}/00000000-0000-4000-8000-000000000000",
        f"{INCOMING_PAYMENTS}/abc",
    ):
        assert error_code(await client.get(url), 404) == "not_found"
        assert error_code(await client_app.get(url, token), 404) == "not_found"
        assert error_code(await client_app.complete(url, token), 404) == "not_found"


# --- authorization -----------------------------------------------------------------------


async def test_no_token_or_a_revoked_one_is_401(
    client_app: ClientApp, client: CheckedClient
) -> None:
    unsigned = await client.post(INCOMING_PAYMENTS, json={"walletAddress": ALICE})
    assert error_code(unsigned, 401) == "unauthorized"
    assert unsigned.headers["WWW-Authenticate"] == f'GNAP as_uri="{AUTH}"'
    token = await incoming_token(client_app)
    payment = await client_app.incoming_payment(token)
    revoked = await client.delete(token["manage"], auth=client_app.auth(token))
    assert revoked.status_code == 204, revoked.text
    for response in (
        await client_app.create_incoming_payment(token),
        await client_app.get(payment["id"], token),
        await client_app.list_incoming_payments(token),
        await client_app.complete(payment["id"], token),
    ):
        assert error_code(response, 401) == "unauthorized"
        assert response.headers["WWW-Authenticate"] == f'GNAP as_uri="{AUTH}"'


async def test_a_token_without_the_action_is_403(client_app: ClientApp) -> None:
    creator = await incoming_token(client_app)
    payment = await client_app.incoming_payment(creator)
    read_only = await incoming_token(client_app, ["read"])
    assert error_code(await client_app.create_incoming_payment(read_only), 403) == "forbidden"
    assert error_code(await client_app.list_incoming_payments(read_only), 403) == "forbidden"
    assert error_code(await client_app.complete(payment["id"], read_only), 403) == "forbidden"
    create_only = await incoming_token(client_app, ["create"])
    assert error_code(await client_app.get(payment["id"], create_only), 403) == "forbidden"


async def test_a_token_for_another_wallet_address_is_403(client_app: ClientApp) -> None:
    alice_token = await incoming_token(client_app)
    payment = await client_app.incoming_payment(alice_token)
    bob_token = await incoming_token(client_app, identifier=BOB)
    assert error_code(await client_app.create_incoming_payment(bob_token), 403) == "forbidden"
    assert error_code(await client_app.get(payment["id"], bob_token), 403) == "forbidden"
    assert error_code(await client_app.list_incoming_payments(bob_token), 403) == "forbidden"
    assert error_code(await client_app.complete(payment["id"], bob_token), 403) == "forbidden"
    # A grant without identifier covers every wallet address of this ASE.
    anywhere = await incoming_token(client_app, identifier=None)
    assert (await client_app.get(payment["id"], anywhere)).status_code == 200
    response = await client_app.http.post(
        INCOMING_PAYMENTS,
        json={"walletAddress": BOB, "incomingAmount": {"value": "1", "assetCode": "EUR", "assetScale": 3}},
        auth=client_app.auth(anywhere),
    )  # fmt: skip
    assert response.status_code == 201, response.text


async def test_read_sees_own_payments_and_read_all_everyones(
    client_app: ClientApp, other_app: ClientApp
) -> None:
    payment = await client_app.incoming_payment(await incoming_token(client_app))
    other_read = await incoming_token(other_app, ["read", "complete"])
    assert error_code(await other_app.get(payment["id"], other_read), 403) == "forbidden"
    assert error_code(await other_app.complete(payment["id"], other_read), 403) == "forbidden"
    other_read_all = await incoming_token(other_app, ["read-all"])
    seen = await other_app.get(payment["id"], other_read_all)
    assert seen.status_code == 200, seen.text
    assert seen.json()["methods"] == payment["methods"]


async def test_list_sees_own_payments_and_list_all_everyones(
    client_app: ClientApp, other_app: ClientApp
) -> None:
    mine = await client_app.incoming_payment(await incoming_token(client_app))
    theirs = await other_app.incoming_payment(await incoming_token(other_app))
    listed = await client_app.list_incoming_payments(await incoming_token(client_app, ["list"]))
    assert [p["id"] for p in listed.json()["result"]] == [mine["id"]]
    assert "methods" not in listed.json()["result"][0]
    listed_all = await client_app.list_incoming_payments(
        await incoming_token(client_app, ["list-all"])
    )
    assert [p["id"] for p in listed_all.json()["result"]] == [theirs["id"], mine["id"]]


# --- pagination --------------------------------------------------------------------------


async def test_list_pages_forward_and_back(client_app: ClientApp) -> None:
    token = await incoming_token(client_app)
    created = [(await client_app.incoming_payment(token))["id"] for _ in range(5)]
    newest_first = created[::-1]

    async def page(query: str) -> dict[str, Any]:
        response = await client_app.list_incoming_payments(token, query)
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    def ids(body: dict[str, Any]) -> list[str]:
        return [payment["id"] for payment in body["result"]]

    def cursor(payment_url: str) -> str:
        return payment_url.rsplit("/", 1)[1]

    everything = await page("")
    assert ids(everything) == newest_first
    assert everything["pagination"] == {
        "startCursor": cursor(newest_first[0]),
        "endCursor": cursor(newest_first[-1]),
        "hasNextPage": False,
        "hasPreviousPage": False,
    }
    first = await page("&first=2")
    assert ids(first) == newest_first[:2]
    assert first["pagination"]["hasNextPage"] is True
    assert first["pagination"]["hasPreviousPage"] is False
    second = await page(f"&first=2&cursor={first['pagination']['endCursor']}")
    assert ids(second) == newest_first[2:4]
    assert second["pagination"]["hasNextPage"] is True
    assert second["pagination"]["hasPreviousPage"] is True
    third = await page(f"&first=2&cursor={second['pagination']['endCursor']}")
    assert ids(third) == newest_first[4:]
    assert third["pagination"]["hasNextPage"] is False
    assert third["pagination"]["hasPreviousPage"] is True
    back = await page(f"&last=2&cursor={third['pagination']['startCursor']}")
    assert ids(back) == newest_first[2:4]
    assert back["pagination"]["hasPreviousPage"] is True
    assert back["pagination"]["hasNextPage"] is True
    start = await page(f"&last=3&cursor={second['pagination']['startCursor']}")
    assert ids(start) == newest_first[:2]
    assert start["pagination"]["hasPreviousPage"] is False
    assert start["pagination"]["hasNextPage"] is True
    past_the_end = await page(f"&first=2&cursor={cursor(newest_first[-1])}")
    assert past_the_end["result"] == []
    assert past_the_end["pagination"] == {"hasNextPage": False, "hasPreviousPage": True}


async def test_bad_page_requests_are_400(client_app: ClientApp, other_app: ClientApp) -> None:
    token = await incoming_token(client_app)
    mine = (await client_app.incoming_payment(token))["id"].rsplit("/", 1)[1]
    theirs = (await other_app.incoming_payment(await incoming_token(other_app)))["id"].rsplit(
        "/", 1
    )[1]
    for query in (
        f"&first=1&last=1&cursor={mine}",
        "&last=2",
        "&cursor=not-a-uuid",
        f"&cursor={theirs}",  # a cursor outside what this client may list
        "&first=0",
        "&first=101",
    ):
        response = await client_app.list_incoming_payments(token, query)
        assert error_code(response, 400) == "invalid_request", query


async def test_a_directed_identity_client_reads_only_what_its_key_created(
    client_app: ClientApp, client: CheckedClient, app: Starlette
) -> None:
    async def jwk_token(jwk_app: ClientApp) -> dict[str, Any]:
        access = incoming_access(["create", "read"], identifier=ALICE)
        body = {"access_token": {"access": [access]}, "client": {"jwk": jwk_app.identity.jwk}}
        response = await jwk_app.ask(body)
        assert response.status_code == 200, response.text
        token: dict[str, Any] = response.json()["access_token"]
        return token

    one = ClientApp(client, ClientIdentity("https://never-fetched.example/one", "jwk-1"), app)
    two = ClientApp(client, ClientIdentity("https://never-fetched.example/two", "jwk-2"), app)
    one_token = await jwk_token(one)
    payment = await one.incoming_payment(one_token)
    assert (await one.get(payment["id"], one_token)).json() == payment
    two_token = await jwk_token(two)
    assert error_code(await two.get(payment["id"], two_token), 403) == "forbidden"
