"""Outgoing payments through HTTP with grants issued over HTTP and approved as the identity
provider would: created from a quote or from an incoming payment + debitAmount, settled on
the ledger (balances, fees, receivedAmount exact; audit clean), refused with nothing
changed (limits, balance, quotes), failed cleanly when the receiver refuses, taken up by the
worker after a crash, read and listed. Responses are checked against resource-server.yaml
by the client (openapi-core)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlmodel import col
from starlette.applications import Starlette

from opase.ledger import audit, balance_minor, deposit, fees_account
from opase.payments import outgoing
from opase.storage import engine as storage_engine
from opase.storage.tables import (
    Asset,
    IncomingPayment,
    LedgerAccount,
    OutgoingPayment,
    Quote,
    WalletAddress,
    WebhookEvent,
    utc_now,
)
from opase.wallets.service import create_wallet_address
from tests.authorization.test_grants import FINISH, approve
from tests.client import CheckedClient
from tests.conftest import PUBLIC_URL, Seeded
from tests.resource.test_quotes import ALICE, BOB, Client, error, priced, set_payment, usd
from tests.signing import register_client

__all__ = ["priced"]  # a fixture, used by name

AUTH = f"{PUBLIC_URL}/auth"
PAYMENTS = f"{PUBLIC_URL}/op/outgoing-payments"
DAVE = f"{PUBLIC_URL}/dave"
ALICE_FUNDS_MINOR = 50_000


class Payer(Client):
    """A client app with an approved outgoing-payment grant for Alice."""

    async def outgoing_token(self, app: Starlette, **limits: Any) -> dict[str, Any]:
        item: dict[str, Any] = {
            "type": "outgoing-payment",
            "actions": ["create", "read", "list"],
            "identifier": ALICE,
        }
        if limits:
            item["limits"] = limits
        body = {
            "access_token": {"access": [item]},
            "client": {"walletAddress": self.identity.wallet_address_url},
            "interact": {"start": ["redirect"], "finish": FINISH},
        }
        from tests.signing import GnapAuth

        response = await self.http.post(AUTH, json=body, auth=GnapAuth(self.identity))
        assert response.status_code == 200, response.text
        grant = response.json()
        interact_ref = await approve(app, grant)
        continued = await self.http.post(
            grant["continue"]["uri"],
            json={"interact_ref": interact_ref},
            auth=GnapAuth(self.identity, grant["continue"]["access_token"]["value"]),
        )
        assert continued.status_code == 200, continued.text
        token: dict[str, Any] = continued.json()["access_token"]
        return token

    async def pay(self, token: dict[str, Any], **body: Any) -> httpx.Response:
        document = {"walletAddress": ALICE, **body}
        return await self.http.post(PAYMENTS, json=document, auth=self.auth(token))

    async def paid(self, token: dict[str, Any], **body: Any) -> dict[str, Any]:
        response = await self.pay(token, **body)
        assert response.status_code == 201, response.text
        payment: dict[str, Any] = response.json()
        return payment


@pytest.fixture
async def payer(app: Starlette, seeded: Seeded, client: CheckedClient) -> Payer:
    async with app.state.services.sessions() as session:
        usd_id = (await session.execute(sa.select(Asset.id).where(Asset.code == "USD"))).scalar()
        assert usd_id is not None
        await create_wallet_address(session, "/dave", usd_id, "Dave")
        await deposit(session, seeded.alice_id, ALICE_FUNDS_MINOR, "fund-alice")  # type: ignore[arg-type]
        await session.commit()
    return Payer(client, await register_client(app))


async def settled(app: Starlette) -> None:
    await app.state.services.payments.idle()


async def balances(app: Starlette, *paths: str) -> list[int]:
    async with app.state.services.sessions() as session:
        found = []
        for path in paths:
            wallet_id = (
                await session.execute(sa.select(WalletAddress.id).where(WalletAddress.path == path))
            ).scalar_one()
            found.append(await balance_minor(session, wallet_id))
        return found


async def fees_minor(app: Starlette, code: str) -> int:
    async with app.state.services.sessions() as session:
        asset_id = (await session.execute(sa.select(Asset.id).where(Asset.code == code))).scalar()
        assert asset_id is not None
        account = await fees_account(session, asset_id)
        return account.credits_posted_minor - account.debits_posted_minor


async def audit_clean(app: Starlette) -> None:
    async with app.state.services.sessions() as session:
        assert await audit(session) == []


async def events(app: Starlette, event_type: str) -> list[dict[str, Any]]:
    async with app.state.services.sessions() as session:
        rows = await session.execute(
            sa.select(WebhookEvent.data)
            .where(WebhookEvent.type == event_type)
            .order_by(col(WebhookEvent.created_at))
        )
        return [data for (data,) in rows]


def payment_id(payment: dict[str, Any]) -> uuid.UUID:
    return uuid.UUID(payment["id"].rsplit("/", 1)[1])


# --- settling -------------------------------------------------------------------------------


async def test_a_payment_from_a_cross_currency_quote_moves_exactly_the_quoted_amounts(
    app: Starlette, payer: Payer, priced: None
) -> None:
    receiver = await payer.incoming_payment(BOB)
    quote = await payer.created(await payer.quote_token(), receiver, debitAmount=usd(10000))
    # The quote tests' worked example: 10000 USD cents -> 90311 EUR thousandths.
    assert quote["receiveAmount"]["value"] == "90311"
    token = await payer.outgoing_token(app, debitAmount=usd(20000))
    payment = await payer.paid(token, quoteId=quote["id"], metadata={"invoice": "7"})
    assert payment["failed"] is False
    assert payment["sentAmount"] == usd(0)  # stored: settling comes after the response
    assert payment["quoteId"] == quote["id"]
    assert payment["grantSpentDebitAmount"] == usd(10000)
    assert payment["metadata"] == {"invoice": "7"}
    await settled(app)

    read = await payer.get(payment["id"], token)
    assert read.status_code == 200, read.text
    # sentAmount: the debit less the sending fee (25 + ceil(10000 * 50 bp) = 75).
    assert read.json()["sentAmount"] == usd(10000 - 75)
    assert read.json()["failed"] is False
    assert await balances(app, "/alice", "/accounts/bob") == [ALICE_FUNDS_MINOR - 10000, 90311]
    assert await fees_minor(app, "USD") == 75
    # Receiving fee: 100 + ceil(90311 * 30 bp)... as the quote computed it, never more.
    async with app.state.services.sessions() as session:
        stored = await session.get(Quote, uuid.UUID(quote["id"].rsplit("/", 1)[1]))
        assert stored is not None and stored.used_at is not None
        incoming = await session.get(IncomingPayment, uuid.UUID(receiver.rsplit("/", 1)[1]))
        assert incoming is not None and incoming.received_amount_minor == 90311
    assert await fees_minor(app, "EUR") == stored.receiving_fee_minor
    await audit_clean(app)
    assert [e["id"] for e in await events(app, "outgoing_payment.created")] == [payment["id"]]
    completed = await events(app, "outgoing_payment.completed")
    assert [e["sentAmount"] for e in completed] == [usd(10000 - 75)]


async def test_a_payment_from_an_incoming_payment_and_a_debit_amount_needs_no_quote(
    app: Starlette, payer: Payer
) -> None:
    receiver = await payer.incoming_payment(DAVE, incomingAmount=usd(3000))
    token = await payer.outgoing_token(app)
    payment = await payer.paid(token, incomingPayment=receiver, debitAmount=usd(3000))
    assert "quoteId" not in payment
    assert payment["receiveAmount"] == usd(3000)  # same asset, no fees configured
    await settled(app)
    assert await balances(app, "/alice", "/dave") == [ALICE_FUNDS_MINOR - 3000, 3000]
    # The cap reached, the incoming payment completed.
    public = await payer.http.get(receiver)
    assert public.json()["receivedAmount"] == usd(3000)
    incoming_token = await payer.token(
        {"type": "incoming-payment", "actions": ["read"], "identifier": DAVE}
    )
    assert (await payer.get(receiver, incoming_token)).json()["completed"] is True
    assert len(await events(app, "incoming_payment.completed")) == 1
    await audit_clean(app)


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
    app: Starlette, payer: Payer
) -> None:
    receiver = await payer.incoming_payment(DAVE)
    token = await payer.outgoing_token(app, debitAmount=usd(5000))
    await payer.paid(token, incomingPayment=receiver, debitAmount=usd(4000))
    await settled(app)
    over = await payer.pay(token, incomingPayment=receiver, debitAmount=usd(1001))
    assert "exceeds the grant's limits" in error(over, 403)
    quote = await payer.created(await payer.quote_token(), receiver, debitAmount=usd(1001))
    assert (await payer.pay(token, quoteId=quote["id"])).status_code == 403
    # The refused payment left its quote unused: a payment within the limit may still take it.
    fits = await payer.created(await payer.quote_token(), receiver, debitAmount=usd(1000))
    assert (await payer.pay(token, quoteId=fits["id"])).status_code == 201
    await settled(app)
    assert await balances(app, "/alice") == [ALICE_FUNDS_MINOR - 5000]


async def test_a_receiver_limit_allows_that_receiver_only(app: Starlette, payer: Payer) -> None:
    allowed = await payer.incoming_payment(DAVE)
    other = await payer.incoming_payment(DAVE)
    token = await payer.outgoing_token(app, receiver=allowed)
    refused = await payer.pay(token, incomingPayment=other, debitAmount=usd(100))
    assert "allows payments to" in error(refused, 403)
    await nothing_moved(app)
    assert (
        await payer.pay(token, incomingPayment=allowed, debitAmount=usd(100))
    ).status_code == 201


async def test_a_payment_beyond_the_balance_is_refused(app: Starlette, payer: Payer) -> None:
    receiver = await payer.incoming_payment(DAVE)
    token = await payer.outgoing_token(app)
    refused = await payer.pay(
        token, incomingPayment=receiver, debitAmount=usd(ALICE_FUNDS_MINOR + 1)
    )
    assert "balance" in error(refused, 403)
    await nothing_moved(app)
    spent = await payer.http.get(f"{PUBLIC_URL}/op/outgoing-payment-grant", auth=payer.auth(token))
    assert spent.json()["spentDebitAmount"] == usd(0)  # the refused payment counted nothing


async def test_a_quote_pays_once_for_its_own_wallet_before_it_expires(
    app: Starlette, payer: Payer
) -> None:
    receiver = await payer.incoming_payment(DAVE)
    quotes = await payer.quote_token()
    token = await payer.outgoing_token(app)
    quote = await payer.created(quotes, receiver, debitAmount=usd(100))
    assert (await payer.pay(token, quoteId=quote["id"])).status_code == 201
    assert "already used" in error(await payer.pay(token, quoteId=quote["id"]), 400)

    expired = await payer.created(quotes, receiver, debitAmount=usd(100))
    async with app.state.services.sessions() as session:
        await session.execute(
            sa.update(Quote)
            .where(col(Quote.id) == uuid.UUID(expired["id"].rsplit("/", 1)[1]))
            .values(expires_at=utc_now() - timedelta(seconds=1))
        )
        await session.commit()
    assert "expired" in error(await payer.pay(token, quoteId=expired["id"]), 400)
    unknown = f"{PUBLIC_URL}/op/quotes/{uuid.uuid4()}"
    assert "not a quote" in error(await payer.pay(token, quoteId=unknown), 400)
    assert "not a quote" in error(
        await payer.pay(token, quoteId="https://elsewhere.example/q"), 400
    )
    await settled(app)
    assert await balances(app, "/alice") == [ALICE_FUNDS_MINOR - 100]


async def test_a_quote_for_another_wallet_address_is_refused(app: Starlette, payer: Payer) -> None:
    receiver = await payer.incoming_payment(ALICE)
    quotes = await payer.quote_token()
    document = {
        "walletAddress": DAVE,
        "receiver": receiver,
        "method": "ilp",
        "debitAmount": usd(10),
    }
    dave_quote = await payer.http.post(
        f"{PUBLIC_URL}/op/quotes", json=document, auth=payer.auth(quotes)
    )
    assert dave_quote.status_code == 201, dave_quote.text
    token = await payer.outgoing_token(app)
    refused = await payer.pay(token, quoteId=dave_quote.json()["id"])
    assert "another wallet address" in error(refused, 400)


async def test_without_an_outgoing_payment_grant_nothing_is_paid(
    app: Starlette, payer: Payer
) -> None:
    receiver = await payer.incoming_payment(DAVE)
    quotes = await payer.quote_token()
    assert (
        await payer.pay(quotes, incomingPayment=receiver, debitAmount=usd(1))
    ).status_code == 403
    response = await payer.http.post(
        PAYMENTS, json={"walletAddress": ALICE, "incomingPayment": receiver, "debitAmount": usd(1)}
    )
    assert response.status_code == 401
    await nothing_moved(app)


# --- failing and resuming -------------------------------------------------------------------


async def test_a_receiver_that_expired_before_settling_fails_the_payment_and_gives_all_back(
    app: Starlette, payer: Payer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(app.state.services.payments, "start", lambda payment_id: None)
    receiver = await payer.incoming_payment(DAVE)
    token = await payer.outgoing_token(app, debitAmount=usd(1000))
    payment = await payer.paid(token, incomingPayment=receiver, debitAmount=usd(700))
    assert await balances(app, "/alice") == [ALICE_FUNDS_MINOR]  # reserved, not yet moved
    await set_payment(app, receiver, expires_at=utc_now() - timedelta(seconds=1))

    later = utc_now() + timedelta(seconds=app.state.settings.outgoing_payment_lease_s + 1)
    assert await outgoing.run_due(app.state.services.sessions, app.state.settings, now=later) == 1
    read = (await payer.get(payment["id"], token)).json()
    assert read["failed"] is True and read["sentAmount"] == usd(0)
    assert await balances(app, "/alice", "/dave") == [ALICE_FUNDS_MINOR, 0]
    async with app.state.services.sessions() as session:
        alice = (
            await session.execute(
                sa.select(LedgerAccount)
                .join(WalletAddress, col(WalletAddress.id) == col(LedgerAccount.wallet_address_id))
                .where(WalletAddress.path == "/alice")
            )
        ).scalar_one()
        assert alice.debits_pending_minor == 0  # the reservation is released
        stored = await session.get(OutgoingPayment, payment_id(payment))
        assert stored is not None and stored.failure_reason is not None
        assert "expired" in stored.failure_reason
    spent = await payer.http.get(f"{PUBLIC_URL}/op/outgoing-payment-grant", auth=payer.auth(token))
    assert spent.json()["spentDebitAmount"] == usd(0)  # the grant got its 700 back
    failed = await events(app, "outgoing_payment.failed")
    assert [e["id"] for e in failed] == [payment["id"]]
    await audit_clean(app)


async def test_the_worker_settles_a_payment_its_creator_never_settled(
    app: Starlette, payer: Payer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As if the process died between the commit and the settling.
    monkeypatch.setattr(app.state.services.payments, "start", lambda payment_id: None)
    receiver = await payer.incoming_payment(DAVE)
    token = await payer.outgoing_token(app)
    payment = await payer.paid(token, incomingPayment=receiver, debitAmount=usd(250))
    sessions, settings = app.state.services.sessions, app.state.settings
    assert await outgoing.run_due(sessions, settings) == 0  # its lease has not run out
    later = utc_now() + timedelta(seconds=app.state.settings.outgoing_payment_lease_s + 1)
    assert await outgoing.run_due(sessions, settings, now=later) == 1
    assert await outgoing.run_due(sessions, settings, now=later) == 0  # settled once
    assert (await payer.get(payment["id"], token)).json()["sentAmount"] == usd(250)
    assert await balances(app, "/alice", "/dave") == [ALICE_FUNDS_MINOR - 250, 250]
    await audit_clean(app)


async def test_two_executors_settle_one_payment_once(
    app: Starlette, payer: Payer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(app.state.services.payments, "start", lambda payment_id: None)
    receiver = await payer.incoming_payment(DAVE)
    token = await payer.outgoing_token(app)
    payment = await payer.paid(token, incomingPayment=receiver, debitAmount=usd(300))
    sessions, settings = app.state.services.sessions, app.state.settings
    # Counted where the settling happens: an executor that starts only after the winner
    # committed (a busy CPU can delay one that long) reads the state, "completed", instead
    # of losing the race at the UPDATE ("finished elsewhere").
    finishes: list[bool] = []
    finish = outgoing._finish

    async def counted_finish(*args: Any, **kwargs: Any) -> bool:
        finishes.append(await finish(*args, **kwargs))
        return finishes[-1]

    monkeypatch.setattr(outgoing, "_finish", counted_finish)
    states = await asyncio.gather(
        *(outgoing.execute(sessions, settings, payment_id(payment)) for _ in range(4))
    )
    assert finishes.count(True) == 1, finishes
    assert "completed" in states and set(states) <= {"completed", "finished elsewhere"}, states
    assert await balances(app, "/alice", "/dave") == [ALICE_FUNDS_MINOR - 300, 300]
    await audit_clean(app)


# --- reading --------------------------------------------------------------------------------


async def test_reading_and_listing_show_a_client_its_own_payments(
    app: Starlette, payer: Payer, client: CheckedClient
) -> None:
    receiver = await payer.incoming_payment(DAVE)
    token = await payer.outgoing_token(app)
    made = [
        await payer.paid(token, incomingPayment=receiver, debitAmount=usd(value))
        for value in (10, 20, 30)
    ]
    await settled(app)
    other = Payer(client, await register_client(app, "/other-app", "other-key-1"))
    other_token = await other.outgoing_token(app)
    theirs = await other.paid(other_token, incomingPayment=receiver, debitAmount=usd(40))
    await settled(app)

    assert (await payer.get(theirs["id"], token)).status_code == 403
    assert (await payer.http.get(made[0]["id"])).status_code == 401
    assert (await payer.get(f"{PAYMENTS}/{uuid.uuid4()}", token)).status_code == 404
    assert (await payer.get(f"{PAYMENTS}/not-a-uuid", token)).status_code == 404

    first = await payer.http.get(
        PAYMENTS, params={"wallet-address": ALICE, "first": "2"}, auth=payer.auth(token)
    )
    assert first.status_code == 200, first.text
    page = first.json()
    assert [p["id"] for p in page["result"]] == [made[2]["id"], made[1]["id"]]  # newest first
    assert page["pagination"]["hasNextPage"] is True
    rest = await payer.http.get(
        PAYMENTS,
        params={"wallet-address": ALICE, "first": "2", "cursor": page["pagination"]["endCursor"]},
        auth=payer.auth(token),
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
    ("limit_minor", "funds_minor"),
    [(30_000, ALICE_FUNDS_MINOR), (ALICE_FUNDS_MINOR * 2, ALICE_FUNDS_MINOR)],
    ids=["grant-limit-binds", "balance-binds"],
)
async def test_concurrent_payments_never_exceed_the_grant_or_the_balance(
    patient_sqlite_writers: None, app: Starlette, payer: Payer, limit_minor: int, funds_minor: int
) -> None:
    receiver = await payer.incoming_payment(DAVE)
    token = await payer.outgoing_token(app, debitAmount=usd(limit_minor))
    each_minor = 700
    responses = await asyncio.gather(
        *(
            payer.pay(token, incomingPayment=receiver, debitAmount=usd(each_minor))
            for _ in range(RACE_COUNT)
        )
    )
    await settled(app)
    statuses = sorted({r.status_code for r in responses})
    assert set(statuses) <= {201, 403}, [r.text for r in responses if r.status_code >= 500][:3]
    created = sum(r.status_code == 201 for r in responses)
    assert created == min(limit_minor, funds_minor) // each_minor
    alice, dave = await balances(app, "/alice", "/dave")
    assert alice == funds_minor - created * each_minor >= 0
    assert dave == created * each_minor
    spent = await payer.http.get(f"{PUBLIC_URL}/op/outgoing-payment-grant", auth=payer.auth(token))
    assert spent.json()["spentDebitAmount"] == usd(created * each_minor)
    await audit_clean(app)


async def test_metadata_numbers_beyond_64_bits_come_back_as_json_numbers(
    app: Starlette, payer: Payer
) -> None:
    receiver = await payer.incoming_payment(DAVE)
    token = await payer.outgoing_token(app)
    body = {"incomingPayment": receiver, "debitAmount": usd(1)}
    # 1e20 is an integral float: it stays one (as JSON wrote it), not a 67-bit integer.
    kept = await payer.paid(token, **body, metadata={"x": 1e20, "n": 12.0})
    assert kept["metadata"] == {"x": 1e20, "n": 12}
    # A 65-bit integer literal parses as the double a JavaScript client would make of it.
    response = await payer.http.post(
        PAYMENTS,
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
