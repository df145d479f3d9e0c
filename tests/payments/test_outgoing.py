"""Outgoing payments settled (`opase.payments.outgoing`), created through HTTP with grants
issued over HTTP and approved as the identity provider would: from a quote or from an
incoming payment + debitAmount, settled on the ledger (balances, fees, receivedAmount exact;
audit clean), failed cleanly when the receiver refuses, taken up by the worker after a
crash, and settled once by racing executors. Responses are checked against
resource-server.yaml by the client (openapi-core)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlmodel import col
from starlette.applications import Starlette

from opase.payments import outgoing, runner
from opase.storage.tables import (
    IncomingPayment,
    LedgerAccount,
    OutgoingPayment,
    Quote,
    WalletAddress,
    utc_now,
)
from tests.actors import ClientApp, id_of, quote_access
from tests.money import usd
from tests.rows import set_incoming_payment
from tests.state import audit_clean, balances, events, fees_minor, settled
from tests.world import ALICE_FUNDS_MINOR, BOB, DAVE

# --- settling -------------------------------------------------------------------------------


async def test_a_payment_from_a_cross_currency_quote_moves_exactly_the_quoted_amounts(
    app: Starlette, payer: ClientApp, priced: None
) -> None:
    receiver = await payer.receiver(BOB)
    quote = await payer.quote(await payer.token(quote_access()), receiver, debitAmount=usd(10000))
    # The quote tests' worked example: 10000 USD cents -> 90311 EUR thousandths.
    assert quote["receiveAmount"]["value"] == "90311"
    token = await payer.outgoing_token(debitAmount=usd(20000))
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
        stored = await session.get(Quote, id_of(quote["id"]))
        assert stored is not None and stored.used_at is not None
        incoming = await session.get(IncomingPayment, id_of(receiver))
        assert incoming is not None and incoming.received_amount_minor == 90311
    assert await fees_minor(app, "EUR") == stored.receiving_fee_minor
    await audit_clean(app)
    assert [e["id"] for e in await events(app, "outgoing_payment.created")] == [payment["id"]]
    completed = await events(app, "outgoing_payment.completed")
    assert [e["sentAmount"] for e in completed] == [usd(10000 - 75)]


async def test_a_payment_from_an_incoming_payment_and_a_debit_amount_needs_no_quote(
    app: Starlette, payer: ClientApp
) -> None:
    receiver = await payer.receiver(DAVE, incomingAmount=usd(3000))
    token = await payer.outgoing_token()
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


# --- failing and resuming -------------------------------------------------------------------


async def test_a_receiver_that_expired_before_settling_fails_the_payment_and_gives_all_back(
    app: Starlette, payer: ClientApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(app.state.services.payments, "start", lambda payment_id: None)
    receiver = await payer.receiver(DAVE)
    token = await payer.outgoing_token(debitAmount=usd(1000))
    payment = await payer.paid(token, incomingPayment=receiver, debitAmount=usd(700))
    assert await balances(app, "/alice") == [ALICE_FUNDS_MINOR]  # reserved, not yet moved
    await set_incoming_payment(app, receiver, expires_at=utc_now() - timedelta(seconds=1))

    later = utc_now() + timedelta(seconds=app.state.settings.outgoing_payment_lease_s + 1)
    assert await runner.run_due(app.state.services.sessions, app.state.settings, now=later) == 1
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
        stored = await session.get(OutgoingPayment, id_of(payment["id"]))
        assert stored is not None and stored.failure_reason is not None
        assert "expired" in stored.failure_reason
    spent = await payer.spent(token)
    assert spent.json()["spentDebitAmount"] == usd(0)  # the grant got its 700 back
    failed = await events(app, "outgoing_payment.failed")
    assert [e["id"] for e in failed] == [payment["id"]]
    await audit_clean(app)


async def test_the_worker_settles_a_payment_its_creator_never_settled(
    app: Starlette, payer: ClientApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As if the process died between the commit and the settling.
    monkeypatch.setattr(app.state.services.payments, "start", lambda payment_id: None)
    receiver = await payer.receiver(DAVE)
    token = await payer.outgoing_token()
    payment = await payer.paid(token, incomingPayment=receiver, debitAmount=usd(250))
    sessions, settings = app.state.services.sessions, app.state.settings
    assert await runner.run_due(sessions, settings) == 0  # its lease has not run out
    later = utc_now() + timedelta(seconds=app.state.settings.outgoing_payment_lease_s + 1)
    assert await runner.run_due(sessions, settings, now=later) == 1
    assert await runner.run_due(sessions, settings, now=later) == 0  # settled once
    assert (await payer.get(payment["id"], token)).json()["sentAmount"] == usd(250)
    assert await balances(app, "/alice", "/dave") == [ALICE_FUNDS_MINOR - 250, 250]
    await audit_clean(app)


async def test_two_executors_settle_one_payment_once(
    app: Starlette, payer: ClientApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(app.state.services.payments, "start", lambda payment_id: None)
    receiver = await payer.receiver(DAVE)
    token = await payer.outgoing_token()
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
        *(outgoing.execute(sessions, settings, id_of(payment["id"])) for _ in range(4))
    )
    assert finishes.count(True) == 1, finishes
    assert "completed" in states and set(states) <= {"completed", "finished elsewhere"}, states
    assert await balances(app, "/alice", "/dave") == [ALICE_FUNDS_MINOR - 300, 300]
    await audit_clean(app)
