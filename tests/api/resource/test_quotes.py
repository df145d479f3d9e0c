"""Quotes through HTTP with grants issued over HTTP: fixed-send, fixed-receive and the
incoming payment's remainder, across currencies with fees and a rate set through the admin
services; every refusal (400, 401, 403, 404). Each response is checked against
resource-server.yaml by the client (openapi-core)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from starlette.applications import Starlette

from opase.settings import Settings
from tests.actors import ClientApp, incoming_access, quote_access
from tests.client import CheckedClient
from tests.money import eur, usd
from tests.responses import error_description
from tests.rows import set_incoming_payment
from tests.world import ALICE, AUTH, BOB, INCOMING_PAYMENTS, QUOTES

QUOTE_LIFESPAN_S = 300


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"list_all_interaction": False})


# --- the three kinds, across currencies --------------------------------------------------


async def test_fixed_send_across_currencies_matches_the_hand_calculation(
    client_app: ClientApp, priced: None
) -> None:
    receiver = await client_app.receiver(BOB)
    token = await client_app.token(quote_access())
    before = datetime.now(UTC)
    quote = await client_app.quote(token, receiver, debitAmount=usd(10000))
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
    fetched = await client_app.get(quote["id"], token)
    assert fetched.status_code == 200, fetched.text
    assert fetched.json() == quote


async def test_fixed_receive_across_currencies_matches_the_hand_calculation(
    client_app: ClientApp, priced: None
) -> None:
    receiver = await client_app.receiver(BOB)
    token = await client_app.token(quote_access())
    # The receiver needs converted >= (90000 + 100) * 10000 / 9970 = 90371.1 -> 90372; that
    # takes 90372 / 9.137 = 9890.99 -> 9891 cents sent, and so a debit of
    # (9891 + 25) * 10000 / 9950 = 9965.8 -> 9966 cents (its fee 25 + ceil(49.83) = 75).
    quote = await client_app.quote(token, receiver, receiveAmount=eur(90000))
    assert (quote["debitAmount"], quote["receiveAmount"]) == (usd(9966), eur(90000))
    # The exact inverse of the fixed-send quote above.
    inverse = await client_app.quote(token, receiver, receiveAmount=eur(90311))
    assert inverse["debitAmount"] == usd(10000)


async def test_neither_amount_quotes_the_rest_of_the_incoming_payment(
    client_app: ClientApp, app: Starlette, priced: None
) -> None:
    receiver = await client_app.receiver(BOB, incomingAmount=eur(90311))
    token = await client_app.token(quote_access())
    quote = await client_app.quote(token, receiver)
    assert (quote["debitAmount"], quote["receiveAmount"]) == (usd(10000), eur(90311))
    await set_incoming_payment(app, receiver, received_amount_minor=311)
    rest = await client_app.quote(token, receiver)
    assert (rest["debitAmount"], rest["receiveAmount"]) == (usd(9966), eur(90000))
    # Asking for more than the rest is refused, however it is asked.
    too_much = await client_app.create_quote(token, receiver, receiveAmount=eur(90001))
    assert "still expects" in error_description(too_much, 400)
    assert "still expects" in error_description(
        await client_app.create_quote(token, receiver, debitAmount=usd(10000)), 400
    )
    open_ended = await client_app.receiver(BOB)
    assert "no incomingAmount" in error_description(
        await client_app.create_quote(token, open_ended), 400
    )


async def test_the_same_asset_without_fees_is_one_to_one(client_app: ClientApp) -> None:
    receiver = await client_app.receiver(ALICE)
    token = await client_app.token(quote_access())
    quote = await client_app.quote(token, receiver, debitAmount=usd(2500))
    assert (quote["debitAmount"], quote["receiveAmount"]) == (usd(2500), usd(2500))


async def test_a_quote_expires_with_its_incoming_payment(client_app: ClientApp) -> None:
    payment_expires_at = datetime.now(UTC) + timedelta(seconds=60)
    receiver = await client_app.receiver(ALICE, expiresAt=payment_expires_at.isoformat())
    quote = await client_app.quote(
        await client_app.token(quote_access()), receiver, debitAmount=usd(1)
    )
    expires_at = datetime.fromisoformat(quote["expiresAt"])
    assert abs(expires_at - payment_expires_at) < timedelta(milliseconds=2)


# --- refusals ----------------------------------------------------------------------------


async def test_receivers_that_do_not_receive_are_refused(
    client_app: ClientApp, app: Starlette, client: CheckedClient
) -> None:
    token = await client_app.token(quote_access())
    expired = await client_app.receiver(ALICE)
    await set_incoming_payment(app, expired, expires_at=datetime.now(UTC) - timedelta(seconds=1))
    assert "expired" in error_description(
        await client_app.create_quote(token, expired, debitAmount=usd(1)), 400
    )
    completed = await client_app.receiver(ALICE)
    await set_incoming_payment(app, completed, completed_at=datetime.now(UTC))
    assert "completed" in error_description(
        await client_app.create_quote(token, completed, debitAmount=usd(1)), 400
    )
    full = await client_app.receiver(ALICE, incomingAmount=usd(5))
    await set_incoming_payment(app, full, received_amount_minor=5)
    assert "completed" in error_description(await client_app.create_quote(token, full), 400)
    for unknown in (
        f"{INCOMING_PAYMENTS}/{uuid.uuid4()}",
        f"{INCOMING_PAYMENTS}/abc",
        f"{QUOTES}/incoming-payments/{uuid.uuid4()}",
        f"{ALICE}/incoming-payments/{uuid.uuid4()}",
    ):
        response = await client_app.create_quote(token, unknown, debitAmount=usd(1))
        assert "is not an incoming payment" in error_description(response, 400)
    not_a_receiver = await client_app.create_quote(token, ALICE, debitAmount=usd(1))
    assert error_description(not_a_receiver, 400) == "invalid request body"  # the spec's pattern


async def test_a_receiver_at_another_ase_is_refused_explicitly(client_app: ClientApp) -> None:
    token = await client_app.token(quote_access())
    remote = f"https://bank.example/op/incoming-payments/{uuid.uuid4()}"
    response = await client_app.create_quote(token, remote, debitAmount=usd(100))
    assert "need the Interledger rail, not available yet" in error_description(response, 400)


async def test_amounts_that_make_no_quote_are_400(client_app: ClientApp, priced: None) -> None:
    receiver = await client_app.receiver(BOB)
    token = await client_app.token(quote_access())
    for body, message in (
        ({"debitAmount": eur(100)}, "debitAmount must be in USD"),
        ({"receiveAmount": usd(100)}, "receiveAmount must be in EUR"),
        ({"debitAmount": usd(26)}, "does not cover the sending fee"),
        ({"debitAmount": usd(27)}, "delivers nothing"),
        ({"debitAmount": usd(0)}, "debitAmount must be from 1"),
    ):
        assert message in error_description(
            await client_app.create_quote(token, receiver, **body), 400
        )


async def test_a_missing_exchange_rate_is_400(client_app: ClientApp) -> None:
    receiver = await client_app.receiver(BOB)
    token = await client_app.token(quote_access())
    response = await client_app.create_quote(token, receiver, debitAmount=usd(100))
    assert "no exchange rate from USD to EUR" in error_description(response, 400)


async def test_authorization(
    client_app: ClientApp, other_app: ClientApp, client: CheckedClient
) -> None:
    receiver = await client_app.receiver(ALICE)
    body = {"walletAddress": ALICE, "receiver": receiver, "method": "ilp"}
    unsigned = await client.post(QUOTES, json=body | {"debitAmount": usd(1)})
    error_description(unsigned, 401)
    assert unsigned.headers["WWW-Authenticate"] == f'GNAP as_uri="{AUTH}"'
    for url in (f"{QUOTES}/{uuid.uuid4()}", f"{QUOTES}/abc"):
        error_description(await client.get(url), 401)  # without a token, not even whether it exists
    read_only = await client_app.token(quote_access(["read"]))
    error_description(await client_app.create_quote(read_only, receiver, debitAmount=usd(1)), 403)
    incoming_only = await client_app.token(incoming_access(["create"]))
    error_description(
        await client_app.create_quote(incoming_only, receiver, debitAmount=usd(1)), 403
    )

    token = await client_app.token(quote_access())
    quote = await client_app.quote(token, receiver, debitAmount=usd(1))
    create_only = await client_app.token(quote_access(["create"]))
    error_description(await client_app.get(quote["id"], create_only), 403)
    other_read = await other_app.token(quote_access(["read"]))
    error_description(await other_app.get(quote["id"], other_read), 403)
    other_read_all = await other_app.token(quote_access(["read-all"]))
    seen = await other_app.get(quote["id"], other_read_all)
    assert seen.status_code == 200, seen.text
    assert seen.json() == quote
    revoked = await client.delete(token["manage"], auth=client_app.auth(token))
    assert revoked.status_code == 204, revoked.text
    error_description(await client_app.get(quote["id"], token), 401)
    error_description(await client_app.create_quote(token, receiver, debitAmount=usd(1)), 401)


async def test_unknown_quotes_are_404(client_app: ClientApp) -> None:
    token = await client_app.token(quote_access())
    for url in (f"{QUOTES}/{uuid.uuid4()}", f"{QUOTES}/abc"):
        error_description(await client_app.get(url, token), 404)
