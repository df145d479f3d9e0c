"""Quotes through HTTP with grants issued over HTTP: fixed-send, fixed-receive and the
incoming payment's remainder, across currencies with fees and a rate set through the admin
services; every refusal (400, 401, 403, 404). Each response is checked against
resource-server.yaml by the client (openapi-core)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlmodel import col
from starlette.applications import Starlette

from opase.pricing import set_fee, set_static_rates
from opase.settings import Settings
from opase.storage.tables import Asset, IncomingPayment
from tests.client import CheckedClient
from tests.conftest import PUBLIC_URL, Seeded
from tests.signing import ClientIdentity, GnapAuth, register_client

AUTH = f"{PUBLIC_URL}/auth"
QUOTES = f"{PUBLIC_URL}/op/quotes"
PAYMENTS = f"{PUBLIC_URL}/op/incoming-payments"
ALICE = f"{PUBLIC_URL}/alice"
BOB = f"{PUBLIC_URL}/accounts/bob"
QUOTE_LIFESPAN_S = 300


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"list_all_interaction": False})


def usd(value: int) -> dict[str, Any]:
    return {"value": str(value), "assetCode": "USD", "assetScale": 2}


def eur(value: int) -> dict[str, Any]:
    return {"value": str(value), "assetCode": "EUR", "assetScale": 3}


class Client:
    """A client app: tokens from the authorization server, quotes from the resource server."""

    def __init__(self, http: CheckedClient, identity: ClientIdentity) -> None:
        self.http = http
        self.identity = identity

    async def token(self, *access: dict[str, Any]) -> dict[str, Any]:
        body = {
            "access_token": {"access": list(access)},
            "client": {"walletAddress": self.identity.wallet_address_url},
        }
        response = await self.http.post(AUTH, json=body, auth=GnapAuth(self.identity))
        assert response.status_code == 200, response.text
        token: dict[str, Any] = response.json()["access_token"]
        return token

    async def quote_token(self, actions: list[str] | None = None) -> dict[str, Any]:
        # Quote access items name no wallet address: they cover every one of this ASE.
        return await self.token({"type": "quote", "actions": actions or ["create", "read"]})

    def auth(self, token: dict[str, Any]) -> GnapAuth:
        return GnapAuth(self.identity, token["value"])

    async def incoming_payment(self, wallet_address: str = BOB, **body: Any) -> str:
        token = await self.token(
            {"type": "incoming-payment", "actions": ["create"], "identifier": wallet_address}
        )
        response = await self.http.post(
            PAYMENTS, json={"walletAddress": wallet_address, **body}, auth=self.auth(token)
        )
        assert response.status_code == 201, response.text
        url: str = response.json()["id"]
        return url

    async def create(self, token: dict[str, Any], receiver: str, **body: Any) -> httpx.Response:
        document = {"walletAddress": ALICE, "receiver": receiver, "method": "ilp", **body}
        return await self.http.post(QUOTES, json=document, auth=self.auth(token))

    async def created(self, token: dict[str, Any], receiver: str, **body: Any) -> dict[str, Any]:
        response = await self.create(token, receiver, **body)
        assert response.status_code == 201, response.text
        quote: dict[str, Any] = response.json()
        return quote

    async def get(self, url: str, token: dict[str, Any]) -> httpx.Response:
        return await self.http.get(url, auth=self.auth(token))


@pytest.fixture
async def alice_app(app: Starlette, seeded: Seeded, client: CheckedClient) -> Client:
    return Client(client, await register_client(app))


@pytest.fixture
async def other_app(app: Starlette, alice_app: Client, client: CheckedClient) -> Client:
    return Client(client, await register_client(app, "/other-app", "other-key-1"))


@pytest.fixture
async def priced(app: Starlette, seeded: Seeded) -> None:
    """1 USD = 0.9137 EUR; USD sending fee 25 + 50 bp, EUR receiving fee 100 + 30 bp."""
    async with app.state.services.sessions() as session:
        assets = {
            asset.code: asset.id for asset in (await session.execute(sa.select(Asset))).scalars()
        }
        await set_static_rates(session, "USD", {"EUR": "0.9137"})
        await set_fee(session, assets["USD"], "sending", fixed_minor=25, basis_points=50)
        await set_fee(session, assets["EUR"], "receiving", fixed_minor=100, basis_points=30)
        await session.commit()


def error(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] in {
        400: "invalid_request", 401: "unauthorized", 403: "forbidden", 404: "not_found"
    }[status]  # fmt: skip
    return str(response.json()["error"]["description"])


async def set_payment(app: Starlette, url: str, **values: Any) -> None:
    async with app.state.services.sessions() as session:
        await session.execute(
            sa.update(IncomingPayment)
            .where(col(IncomingPayment.id) == uuid.UUID(url.rsplit("/", 1)[1]))
            .values(**values)
        )
        await session.commit()


# --- the three kinds, across currencies --------------------------------------------------


async def test_fixed_send_across_currencies_matches_the_hand_calculation(
    alice_app: Client, priced: None
) -> None:
    receiver = await alice_app.incoming_payment()
    token = await alice_app.quote_token()
    before = datetime.now(UTC)
    quote = await alice_app.created(token, receiver, debitAmount=usd(10000))
    # Sending fee 25 + ceil(10000 * 0.005) = 75, so 9925 cents are sent; at 9.137 EUR
    # thousandths a cent they buy floor(90684.725) = 90684; the receiving fee is
    # 100 + ceil(90684 * 0.003 = 272.052) = 373, which leaves 90311.
    assert quote["debitAmount"] == usd(10000)
    assert quote["receiveAmount"] == eur(90311)
    assert quote["id"].startswith(f"{QUOTES}/")
    assert (quote["walletAddress"], quote["receiver"], quote["method"]) == (ALICE, receiver, "ilp")
    expires_at = datetime.fromisoformat(quote["expiresAt"])
    lifespan = timedelta(seconds=QUOTE_LIFESPAN_S)
    assert before + lifespan - timedelta(seconds=1) <= expires_at <= datetime.now(UTC) + lifespan
    fetched = await alice_app.get(quote["id"], token)
    assert fetched.status_code == 200, fetched.text
    assert fetched.json() == quote


async def test_fixed_receive_across_currencies_matches_the_hand_calculation(
    alice_app: Client, priced: None
) -> None:
    receiver = await alice_app.incoming_payment()
    token = await alice_app.quote_token()
    # The receiver needs converted >= (90000 + 100) * 10000 / 9970 = 90371.1 -> 90372; that
    # takes 90372 / 9.137 = 9890.99 -> 9891 cents sent, and so a debit of
    # (9891 + 25) * 10000 / 9950 = 9965.8 -> 9966 cents (its fee 25 + ceil(49.83) = 75).
    quote = await alice_app.created(token, receiver, receiveAmount=eur(90000))
    assert (quote["debitAmount"], quote["receiveAmount"]) == (usd(9966), eur(90000))
    # The exact inverse of the fixed-send quote above.
    inverse = await alice_app.created(token, receiver, receiveAmount=eur(90311))
    assert inverse["debitAmount"] == usd(10000)


async def test_neither_amount_quotes_the_rest_of_the_incoming_payment(
    alice_app: Client, app: Starlette, priced: None
) -> None:
    receiver = await alice_app.incoming_payment(incomingAmount=eur(90311))
    token = await alice_app.quote_token()
    quote = await alice_app.created(token, receiver)
    assert (quote["debitAmount"], quote["receiveAmount"]) == (usd(10000), eur(90311))
    await set_payment(app, receiver, received_amount_minor=311)
    rest = await alice_app.created(token, receiver)
    assert (rest["debitAmount"], rest["receiveAmount"]) == (usd(9966), eur(90000))
    # Asking for more than the rest is refused, however it is asked.
    too_much = await alice_app.create(token, receiver, receiveAmount=eur(90001))
    assert "still expects" in error(too_much, 400)
    assert "still expects" in error(
        await alice_app.create(token, receiver, debitAmount=usd(10000)), 400
    )
    open_ended = await alice_app.incoming_payment()
    assert "no incomingAmount" in error(await alice_app.create(token, open_ended), 400)


async def test_the_same_asset_without_fees_is_one_to_one(alice_app: Client) -> None:
    receiver = await alice_app.incoming_payment(ALICE)
    token = await alice_app.quote_token()
    quote = await alice_app.created(token, receiver, debitAmount=usd(2500))
    assert (quote["debitAmount"], quote["receiveAmount"]) == (usd(2500), usd(2500))


async def test_a_quote_expires_with_its_incoming_payment(alice_app: Client) -> None:
    payment_expires_at = datetime.now(UTC) + timedelta(seconds=60)
    receiver = await alice_app.incoming_payment(ALICE, expiresAt=payment_expires_at.isoformat())
    quote = await alice_app.created(await alice_app.quote_token(), receiver, debitAmount=usd(1))
    expires_at = datetime.fromisoformat(quote["expiresAt"])
    assert abs(expires_at - payment_expires_at) < timedelta(milliseconds=2)


# --- refusals ----------------------------------------------------------------------------


async def test_receivers_that_do_not_receive_are_refused(
    alice_app: Client, app: Starlette, client: CheckedClient
) -> None:
    token = await alice_app.quote_token()
    expired = await alice_app.incoming_payment(ALICE)
    await set_payment(app, expired, expires_at=datetime.now(UTC) - timedelta(seconds=1))
    assert "expired" in error(await alice_app.create(token, expired, debitAmount=usd(1)), 400)
    completed = await alice_app.incoming_payment(ALICE)
    await set_payment(app, completed, completed_at=datetime.now(UTC))
    assert "completed" in error(await alice_app.create(token, completed, debitAmount=usd(1)), 400)
    full = await alice_app.incoming_payment(ALICE, incomingAmount=usd(5))
    await set_payment(app, full, received_amount_minor=5)
    assert "completed" in error(await alice_app.create(token, full), 400)
    for unknown in (
        f"{PAYMENTS}/{uuid.uuid4()}",
        f"{PAYMENTS}/abc",
        f"{QUOTES}/incoming-payments/{uuid.uuid4()}",
        f"{ALICE}/incoming-payments/{uuid.uuid4()}",
    ):
        response = await alice_app.create(token, unknown, debitAmount=usd(1))
        assert "is not an incoming payment" in error(response, 400)
    not_a_receiver = await alice_app.create(token, ALICE, debitAmount=usd(1))
    assert error(not_a_receiver, 400) == "invalid request body"  # the spec's pattern


async def test_a_receiver_at_another_ase_is_refused_explicitly(alice_app: Client) -> None:
    token = await alice_app.quote_token()
    remote = f"https://bank.example/op/incoming-payments/{uuid.uuid4()}"
    response = await alice_app.create(token, remote, debitAmount=usd(100))
    assert "need the Interledger rail, not available yet" in error(response, 400)


async def test_amounts_that_make_no_quote_are_400(alice_app: Client, priced: None) -> None:
    receiver = await alice_app.incoming_payment()
    token = await alice_app.quote_token()
    for body, message in (
        ({"debitAmount": eur(100)}, "debitAmount must be in USD"),
        ({"receiveAmount": usd(100)}, "receiveAmount must be in EUR"),
        ({"debitAmount": usd(26)}, "does not cover the sending fee"),
        ({"debitAmount": usd(27)}, "delivers nothing"),
        ({"debitAmount": usd(0)}, "debitAmount must be from 1"),
    ):
        assert message in error(await alice_app.create(token, receiver, **body), 400)


async def test_a_missing_exchange_rate_is_400(alice_app: Client) -> None:
    receiver = await alice_app.incoming_payment()
    token = await alice_app.quote_token()
    response = await alice_app.create(token, receiver, debitAmount=usd(100))
    assert "no exchange rate from USD to EUR" in error(response, 400)


async def test_authorization(alice_app: Client, other_app: Client, client: CheckedClient) -> None:
    receiver = await alice_app.incoming_payment(ALICE)
    body = {"walletAddress": ALICE, "receiver": receiver, "method": "ilp"}
    unsigned = await client.post(QUOTES, json=body | {"debitAmount": usd(1)})
    assert unsigned.status_code == 401
    assert unsigned.headers["WWW-Authenticate"] == f'GNAP as_uri="{AUTH}"'
    for url in (f"{QUOTES}/{uuid.uuid4()}", f"{QUOTES}/abc"):
        error(await client.get(url), 401)  # without a token, not even whether it exists
    read_only = await alice_app.quote_token(["read"])
    error(await alice_app.create(read_only, receiver, debitAmount=usd(1)), 403)
    incoming_only = await alice_app.token({"type": "incoming-payment", "actions": ["create"]})
    error(await alice_app.create(incoming_only, receiver, debitAmount=usd(1)), 403)

    token = await alice_app.quote_token()
    quote = await alice_app.created(token, receiver, debitAmount=usd(1))
    create_only = await alice_app.quote_token(["create"])
    error(await alice_app.get(quote["id"], create_only), 403)
    other_read = await other_app.quote_token(["read"])
    error(await other_app.get(quote["id"], other_read), 403)
    other_read_all = await other_app.quote_token(["read-all"])
    seen = await other_app.get(quote["id"], other_read_all)
    assert seen.status_code == 200, seen.text
    assert seen.json() == quote
    revoked = await client.delete(token["manage"], auth=alice_app.auth(token))
    assert revoked.status_code == 204, revoked.text
    error(await alice_app.get(quote["id"], token), 401)
    error(await alice_app.create(token, receiver, debitAmount=usd(1)), 401)


async def test_unknown_quotes_are_404(alice_app: Client) -> None:
    token = await alice_app.quote_token()
    for url in (f"{QUOTES}/{uuid.uuid4()}", f"{QUOTES}/abc"):
        error(await alice_app.get(url, token), 404)
