"""Outgoing payments through HTTP with grants issued over HTTP and approved as the identity
provider would: refused with nothing changed (limits, balance, quotes), never beyond the
grant or the balance when created at once, read and listed, metadata kept. Responses are
checked against resource-server.yaml by the client (openapi-core). How they settle is
tests/payments/test_outgoing.py."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlmodel import col
from starlette.applications import Starlette

from opase.storage import engine as storage_engine
from opase.storage.tables import (
    OutgoingPayment,
    Quote,
    utc_now,
)
from tests.actors import ClientApp, id_of, quote_access
from tests.client import CheckedClient
from tests.money import usd
from tests.responses import error_description
from tests.signing import register_client
from tests.state import audit_clean, balances, settled
from tests.world import ALICE, ALICE_FUNDS_MINOR, AUTH, DAVE, OUTGOING_PAYMENTS, PUBLIC_URL, QUOTES

# --- refusals change nothing ----------------------------------------------------------------


async def nothing_moved(app: Starlette) -> None:
    async with app.state.services.sessions() as session:
        count = (
            await session.execute(sa.select(sa.func.count()).select_from(OutgoingPayment))
        ).scalar()
        assert count == 0
    assert await balances(app, "/alice") == [ALICE_FUNDS_MINOR]
    await audit_clean(app)


async def test_a_payment_over_the_grants_debit_limit_is_refused(
    app: Starlette, payer: ClientApp
) -> None:
    receiver = await payer.receiver(DAVE)
    token = await payer.outgoing_token(debitAmount=usd(5000))
    await payer.paid(token, incomingPayment=receiver, debitAmount=usd(4000))
    await settled(app)
    over = await payer.pay(token, incomingPayment=receiver, debitAmount=usd(1001))
    assert "exceeds the grant's limits" in error_description(over, 403)
    quote = await payer.quote(await payer.token(quote_access()), receiver, debitAmount=usd(1001))
    over_by_quote = await payer.pay(token, quoteId=quote["id"])
    assert "exceeds the grant's limits" in error_description(over_by_quote, 403)
    # The refused payment left its quote unused: a payment within the limit may still take it.
    fits = await payer.quote(await payer.token(quote_access()), receiver, debitAmount=usd(1000))
    assert (await payer.pay(token, quoteId=fits["id"])).status_code == 201
    await settled(app)
    assert await balances(app, "/alice") == [ALICE_FUNDS_MINOR - 5000]


async def test_a_receiver_limit_allows_that_receiver_only(app: Starlette, payer: ClientApp) -> None:
    allowed = await payer.receiver(DAVE)
    other = await payer.receiver(DAVE)
    token = await payer.outgoing_token(receiver=allowed)
    refused = await payer.pay(token, incomingPayment=other, debitAmount=usd(100))
    assert "allows payments to" in error_description(refused, 403)
    await nothing_moved(app)
    assert (
        await payer.pay(token, incomingPayment=allowed, debitAmount=usd(100))
    ).status_code == 201


async def test_a_payment_beyond_the_balance_is_refused(app: Starlette, payer: ClientApp) -> None:
    receiver = await payer.receiver(DAVE)
    token = await payer.outgoing_token()
    refused = await payer.pay(
        token, incomingPayment=receiver, debitAmount=usd(ALICE_FUNDS_MINOR + 1)
    )
    assert "balance" in error_description(refused, 403)
    await nothing_moved(app)
    spent = await payer.spent(token)
    assert spent.json()["spentDebitAmount"] == usd(0)  # the refused payment counted nothing


async def test_a_quote_pays_once_for_its_own_wallet_before_it_expires(
    app: Starlette, payer: ClientApp
) -> None:
    receiver = await payer.receiver(DAVE)
    quotes = await payer.token(quote_access())
    token = await payer.outgoing_token()
    quote = await payer.quote(quotes, receiver, debitAmount=usd(100))
    assert (await payer.pay(token, quoteId=quote["id"])).status_code == 201
    assert "already used" in error_description(await payer.pay(token, quoteId=quote["id"]), 400)

    expired = await payer.quote(quotes, receiver, debitAmount=usd(100))
    async with app.state.services.sessions() as session:
        await session.execute(
            sa.update(Quote)
            .where(col(Quote.id) == id_of(expired["id"]))
            .values(expires_at=utc_now() - timedelta(seconds=1))
        )
        await session.commit()
    assert "expired" in error_description(await payer.pay(token, quoteId=expired["id"]), 400)
    unknown = f"{PUBLIC_URL}/op/quotes/{uuid.uuid4()}"
    assert "not a quote" in error_description(await payer.pay(token, quoteId=unknown), 400)
    assert "not a quote" in error_description(
        await payer.pay(token, quoteId="https://elsewhere.example/q"), 400
    )
    await settled(app)
    assert await balances(app, "/alice") == [ALICE_FUNDS_MINOR - 100]


async def test_a_quote_for_another_wallet_address_is_refused(
    app: Starlette, payer: ClientApp
) -> None:
    receiver = await payer.receiver(ALICE)
    quotes = await payer.token(quote_access())
    document = {
        "walletAddress": DAVE,
        "receiver": receiver,
        "method": "ilp",
        "debitAmount": usd(10),
    }
    dave_quote = await payer.http.post(QUOTES, json=document, auth=payer.auth(quotes))
    assert dave_quote.status_code == 201, dave_quote.text
    token = await payer.outgoing_token()
    refused = await payer.pay(token, quoteId=dave_quote.json()["id"])
    assert "another wallet address" in error_description(refused, 400)


async def test_without_an_outgoing_payment_grant_nothing_is_paid(
    app: Starlette, payer: ClientApp
) -> None:
    receiver = await payer.receiver(DAVE)
    quotes = await payer.token(quote_access())
    error_description(await payer.pay(quotes, incomingPayment=receiver, debitAmount=usd(1)), 403)
    response = await payer.http.post(
        OUTGOING_PAYMENTS,
        json={"walletAddress": ALICE, "incomingPayment": receiver, "debitAmount": usd(1)},
    )
    error_description(response, 401)
    assert response.headers["www-authenticate"] == f'GNAP as_uri="{AUTH}"'
    await nothing_moved(app)


# --- reading --------------------------------------------------------------------------------


async def test_reading_and_listing_show_a_client_its_own_payments(
    app: Starlette, payer: ClientApp, client: CheckedClient
) -> None:
    receiver = await payer.receiver(DAVE)
    token = await payer.outgoing_token()
    made = [
        await payer.paid(token, incomingPayment=receiver, debitAmount=usd(value))
        for value in (10, 20, 30)
    ]
    await settled(app)
    other = ClientApp(client, await register_client(app, "/other-app", "other-key-1"), app)
    other_token = await other.outgoing_token()
    theirs = await other.paid(other_token, incomingPayment=receiver, debitAmount=usd(40))
    await settled(app)

    error_description(await payer.get(theirs["id"], token), 403)
    error_description(await payer.http.get(made[0]["id"]), 401)
    error_description(await payer.get(f"{OUTGOING_PAYMENTS}/{uuid.uuid4()}", token), 404)
    error_description(await payer.get(f"{OUTGOING_PAYMENTS}/not-a-uuid", token), 404)

    first = await payer.list_outgoing_payments(token, first="2")
    assert first.status_code == 200, first.text
    page = first.json()
    assert [p["id"] for p in page["result"]] == [made[2]["id"], made[1]["id"]]  # newest first
    assert page["pagination"]["hasNextPage"] is True
    rest = await payer.list_outgoing_payments(
        token, first="2", cursor=page["pagination"]["endCursor"]
    )
    assert [p["id"] for p in rest.json()["result"]] == [made[0]["id"]]
    assert rest.json()["result"][0]["sentAmount"] == usd(10)


# --- races ----------------------------------------------------------------------------------

RACE_COUNT = 200


@pytest.fixture
def patient_sqlite_writers(monkeypatch: pytest.MonkeyPatch) -> None:
    """SQLite writers that wait up to a minute for the write lock (the app's engine is made
    after this): 200 payments at once queue for it for seconds, and on a CPU shared with
    other work (a loaded machine, the other xdist worker) a writer could otherwise wait past
    the 5 s busy timeout and answer 503, which says nothing about the limits tested here."""
    monkeypatch.setattr(storage_engine, "SQLITE_BUSY_TIMEOUT_MS", 60_000)


@pytest.mark.parametrize(
    ("limit_minor", "funds_minor", "refusal"),
    [
        (30_000, ALICE_FUNDS_MINOR, "exceeds the grant's limits"),
        (ALICE_FUNDS_MINOR * 2, ALICE_FUNDS_MINOR, "balance"),
    ],
    ids=["grant-limit-binds", "balance-binds"],
)
async def test_concurrent_payments_never_exceed_the_grant_or_the_balance(
    patient_sqlite_writers: None,
    app: Starlette,
    payer: ClientApp,
    limit_minor: int,
    funds_minor: int,
    refusal: str,
) -> None:
    receiver = await payer.receiver(DAVE)
    token = await payer.outgoing_token(debitAmount=usd(limit_minor))
    each_minor = 700
    responses = await asyncio.gather(
        *(
            payer.pay(token, incomingPayment=receiver, debitAmount=usd(each_minor))
            for _ in range(RACE_COUNT)
        )
    )
    await settled(app)
    created = sum(r.status_code == 201 for r in responses)
    # Every other one refused for what binds: a 403 saying so (never a 409 or a 5xx).
    for refused in (r for r in responses if r.status_code != 201):
        assert refusal in error_description(refused, 403)
    assert created == min(limit_minor, funds_minor) // each_minor
    alice, dave = await balances(app, "/alice", "/dave")
    assert alice == funds_minor - created * each_minor >= 0
    assert dave == created * each_minor
    spent = await payer.spent(token)
    assert spent.json()["spentDebitAmount"] == usd(created * each_minor)
    await audit_clean(app)


async def test_metadata_numbers_beyond_64_bits_come_back_as_json_numbers(
    app: Starlette, payer: ClientApp
) -> None:
    receiver = await payer.receiver(DAVE)
    token = await payer.outgoing_token()
    body = {"incomingPayment": receiver, "debitAmount": usd(1)}
    # 1e20 is an integral float: it stays one (as JSON wrote it), not a 67-bit integer.
    kept = await payer.paid(token, **body, metadata={"x": 1e20, "n": 12.0})
    assert kept["metadata"] == {"x": 1e20, "n": 12}
    # A 65-bit integer literal parses as the double a JavaScript client would make of it.
    response = await payer.http.post(
        OUTGOING_PAYMENTS,
        content=b'{"walletAddress": "%s", "incomingPayment": "%s", '
        b'"debitAmount": {"value": "1", "assetCode": "USD", "assetScale": 2}, '
        b'"metadata": {"x": 18446744073709551616}}' % (ALICE.encode(), receiver.encode()),
        headers={"Content-Type": "application/json"},
        auth=payer.auth(token),
    )
    assert response.status_code == 201, response.text
    assert response.json()["metadata"] == {"x": 18446744073709551616.0}
    await settled(app)
    assert await balances(app, "/alice") == [ALICE_FUNDS_MINOR - 2]
