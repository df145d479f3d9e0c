"""Incoming payments as a domain, called without HTTP, as the Interledger receiver will call
them: `receive` is the one crediting function; the still-receiving rule is one rule in
Python and SQL; a refusal leaves the payment as it was."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col
from starlette.applications import Starlette

from opase.amounts import Amount
from opase.payments import incoming
from opase.payments.receiving import closed_reason, still_receiving_sql
from opase.payments.refusals import InvalidPaymentRequest, ReceiverClosed, WrongState
from opase.storage.tables import IncomingPayment, WebhookEvent, column_values
from opase.wallets.directory import WalletAddressRecord, find_wallet_address_by_url
from tests.world import PUBLIC_URL, Seeded

CLIENT = f"{PUBLIC_URL}/client-app"


async def _alice(session: AsyncSession) -> WalletAddressRecord:
    wallet = await find_wallet_address_by_url(session, PUBLIC_URL, f"{PUBLIC_URL}/alice")
    assert wallet is not None
    return wallet


async def _new(app: Starlette, *, cap_minor: int | None, expires_in_s: float = 3600) -> uuid.UUID:
    settings = app.state.settings
    now = datetime.now(UTC)
    async with app.state.services.sessions() as session:
        created = incoming.new_payment(
            settings,
            await _alice(session),
            client_wallet_address=CLIENT,
            client_key_thumbprint=None,
            incoming_amount=None if cap_minor is None else Amount(cap_minor, "USD", 2),
            expires_at=now + timedelta(seconds=expires_in_s),
            metadata=None,
            now=now,
        )
        for table, row in created.rows:
            await session.execute(sa.insert(table), row)
        await session.commit()
    payment_id: uuid.UUID = created.rows[0][1]["id"]
    return payment_id


async def _stored(app: Starlette, payment_id: uuid.UUID) -> dict[str, Any]:
    async with app.state.services.sessions() as session:
        payment = await session.get(IncomingPayment, payment_id)
        assert payment is not None
        return column_values(payment)


async def _receive(app: Starlette, payment_id: uuid.UUID, amount_minor: int) -> bool:
    async with app.state.services.sessions() as session:
        completed = await incoming.receive(
            session, app.state.settings, payment_id, amount_minor, datetime.now(UTC)
        )
        await session.commit()
    return completed


async def _event_types(app: Starlette) -> list[str]:
    async with app.state.services.sessions() as session:
        rows = await session.execute(sa.select(col(WebhookEvent.type)))
        return sorted(rows.scalars())


async def test_receive_credits_until_the_cap_then_completes_once(
    app: Starlette, seeded: Seeded
) -> None:
    payment_id = await _new(app, cap_minor=1000)
    assert await _receive(app, payment_id, 400) is False
    assert (await _stored(app, payment_id))["received_amount_minor"] == 400
    assert await _receive(app, payment_id, 600) is True  # exactly the cap: completed
    stored = await _stored(app, payment_id)
    assert stored["received_amount_minor"] == 1000 and stored["completed_at"] is not None
    assert await _event_types(app) == ["incoming_payment.completed", "incoming_payment.created"]
    with pytest.raises(ReceiverClosed) as closed:
        await _receive(app, payment_id, 1)
    assert closed.value.reason == "completed"
    assert (await _stored(app, payment_id)) == stored


async def test_receive_past_the_cap_is_refused_and_changes_nothing(
    app: Starlette, seeded: Seeded
) -> None:
    payment_id = await _new(app, cap_minor=1000)
    await _receive(app, payment_id, 900)
    before = await _stored(app, payment_id)
    with pytest.raises(ReceiverClosed) as closed:
        await _receive(app, payment_id, 101)
    assert closed.value.reason == "over_cap"
    assert await _stored(app, payment_id) == before
    assert await _receive(app, payment_id, 100) is True  # what fits still does


async def test_an_expired_payment_receives_nothing(app: Starlette, seeded: Seeded) -> None:
    payment_id = await _new(app, cap_minor=None, expires_in_s=0.05)
    async with app.state.services.sessions() as session:
        later = datetime.now(UTC) + timedelta(seconds=1)
        with pytest.raises(ReceiverClosed) as closed:
            await incoming.receive(session, app.state.settings, payment_id, 5, later)
    assert closed.value.reason == "expired"
    assert (await _stored(app, payment_id))["received_amount_minor"] == 0


async def test_complete_twice_is_a_wrong_state(app: Starlette, seeded: Seeded) -> None:
    payment_id = await _new(app, cap_minor=None)
    settings = app.state.settings
    for attempt in range(2):
        async with app.state.services.sessions() as session:
            found = await incoming.find(session, settings, payment_id)
            assert found is not None
            if attempt == 0:
                view = await incoming.complete(session, settings, *found, datetime.now(UTC))
                assert view["completed"] is True
                await session.commit()
            else:
                with pytest.raises(WrongState, match="already completed"):
                    await incoming.complete(session, settings, *found, datetime.now(UTC))


async def test_new_payment_refuses_another_asset_and_a_past_expiry(
    app: Starlette, seeded: Seeded
) -> None:
    now = datetime.now(UTC)
    async with app.state.services.sessions() as session:
        alice = await _alice(session)
    asks: list[tuple[Amount | None, datetime | None, str]] = [
        (Amount(5, "EUR", 2), None, "in the wallet address's asset USD"),
        (Amount(0, "USD", 2), None, "from 1 to"),
        (None, now - timedelta(seconds=1), "in the future"),
        (None, now + timedelta(days=3650), "at most"),
    ]
    for amount, expires_at, message in asks:
        with pytest.raises(InvalidPaymentRequest, match=message):
            incoming.new_payment(
                app.state.settings,
                alice,
                client_wallet_address=CLIENT,
                client_key_thumbprint=None,
                incoming_amount=amount,
                expires_at=expires_at,
                metadata=None,
                now=now,
            )


async def test_the_still_receiving_rule_agrees_in_python_and_sql(
    app: Starlette, seeded: Seeded
) -> None:
    ids = {
        "open": await _new(app, cap_minor=None),
        "capped-open": await _new(app, cap_minor=100),
        "full": await _new(app, cap_minor=100),
        "expiring": await _new(app, cap_minor=None, expires_in_s=0.05),
    }
    await _receive(app, ids["full"], 100)
    at = datetime.now(UTC) + timedelta(seconds=1)
    async with app.state.services.sessions() as session:
        in_sql = set(
            (
                await session.execute(
                    sa.select(col(IncomingPayment.id)).where(*still_receiving_sql(at))
                )
            ).scalars()
        )
    in_python = {
        payment_id
        for payment_id in ids.values()
        if closed_reason(await _stored(app, payment_id), at) is None
    }
    assert in_sql == in_python == {ids["open"], ids["capped-open"]}
