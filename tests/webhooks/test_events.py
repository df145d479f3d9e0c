"""The events opase writes to the outbox, each in the transaction of the change it reports:
incoming payments created, completed and expired (each expiry once), unknown wallet
addresses (at most once per path per period, with a bound on paths), and low liquidity
(only when the available balance crosses the threshold)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col
from starlette.applications import Starlette

from opase.payments import incoming
from opase.settings import Settings
from opase.storage.tables import IncomingPayment, WebhookEvent
from opase.webhooks.liquidity import note_available_balance
from opase.webhooks.not_found import NotFoundReporter
from tests.actors import ClientApp, incoming_access
from tests.client import CheckedClient
from tests.money import usd
from tests.responses import error_code
from tests.world import ALICE, PUBLIC_URL, Seeded


async def events(sessions: async_sessionmaker[AsyncSession]) -> list[tuple[str, dict[str, Any]]]:
    async with sessions() as session:
        rows = await session.execute(
            sa.select(WebhookEvent).order_by(col(WebhookEvent.created_at), col(WebhookEvent.id))
        )
        return [(event.type, event.data) for event in rows.scalars().all()]


async def test_creating_and_completing_an_incoming_payment_are_reported(
    app: Starlette, client_app: ClientApp
) -> None:
    token = await client_app.token(
        incoming_access(["create", "read", "list", "complete"], identifier=ALICE)
    )
    payment = await client_app.incoming_payment(
        token, incomingAmount=usd(2500), metadata={"invoice": "7"}
    )
    completed = await client_app.complete(payment["id"], token)
    assert completed.status_code == 200, completed.text
    reported = await events(app.state.services.sessions)
    assert [event_type for event_type, _ in reported] == [
        "incoming_payment.created",
        "incoming_payment.completed",
    ]
    # The data is the payment as its client sees it, without the method's shared secret.
    without_methods = {k: v for k, v in payment.items() if k != "methods"}
    assert reported[0][1] == without_methods
    assert reported[1][1] == completed.json()
    assert reported[1][1]["completed"] is True


async def test_a_refused_creation_reports_nothing(app: Starlette, client_app: ClientApp) -> None:
    token = await client_app.token(incoming_access(["create"], identifier=ALICE))
    refused = await client_app.create_incoming_payment(token, incomingAmount=usd(0))
    assert error_code(refused, 400) == "invalid_request"
    assert await events(app.state.services.sessions) == []


async def _payment(
    session: AsyncSession, wallet_address_id: Any, expires_at: datetime, **fields: Any
) -> IncomingPayment:
    payment = IncomingPayment(
        wallet_address_id=wallet_address_id,
        client_wallet_address=f"{PUBLIC_URL}/client-app",
        expires_at=expires_at,
        shared_secret="s" * 43,
        **fields,
    )
    session.add(payment)
    return payment


async def test_each_expired_payment_is_reported_once(
    app: Starlette, seeded: Seeded, settings: Settings
) -> None:
    sessions = app.state.services.sessions
    now = datetime.now(UTC)
    past, future = now - timedelta(seconds=1), now + timedelta(hours=1)
    async with sessions() as session:
        expired = await _payment(session, seeded.alice_id, past, incoming_amount_minor=500)
        partly = await _payment(session, seeded.alice_id, past, received_amount_minor=10)
        # Not expired, completed by hand, or filled to its cap: none of these is news.
        await _payment(session, seeded.alice_id, future)
        await _payment(session, seeded.alice_id, past, completed_at=past)
        await _payment(
            session, seeded.alice_id, past, incoming_amount_minor=5, received_amount_minor=5
        )
        await session.commit()
    async with sessions() as session:
        assert await incoming.report_expired(session, settings, now) == 2
        await session.commit()
    async with sessions() as session:
        assert await incoming.report_expired(session, settings, now) == 0
        await session.commit()
    reported = await events(sessions)
    assert {event_type for event_type, _ in reported} == {"incoming_payment.expired"}
    payment_urls = {f"{PUBLIC_URL}/op/incoming-payments/{p.id}" for p in (expired, partly)}
    assert {data["id"] for _, data in reported} == payment_urls
    assert all(data["completed"] is False for _, data in reported)
    assert all(data["walletAddress"] == ALICE for _, data in reported)


async def test_a_sweep_that_rolls_back_reports_again(
    app: Starlette, seeded: Seeded, settings: Settings
) -> None:
    sessions = app.state.services.sessions
    now = datetime.now(UTC)
    async with sessions() as session:
        await _payment(session, seeded.alice_id, now - timedelta(seconds=1))
        await session.commit()
    async with sessions() as session:
        assert await incoming.report_expired(session, settings, now) == 1
        await session.rollback()
    async with sessions() as session:
        assert await incoming.report_expired(session, settings, now) == 1
        await session.commit()
    assert len(await events(sessions)) == 1


async def test_unknown_wallet_addresses_are_reported_once_per_period(
    app: Starlette, seeded: Seeded, client: CheckedClient
) -> None:
    for path in ["/nobody", "/nobody", "/alice", "/carol", "/nobody"]:
        await client.get(path)
    # /carol is deactivated: not found either.
    assert await events(app.state.services.sessions) == [
        ("wallet_address.not_found", {"walletAddressUrl": f"{PUBLIC_URL}/nobody"}),
        ("wallet_address.not_found", {"walletAddressUrl": f"{PUBLIC_URL}/carol"}),
    ]


def test_the_not_found_reporter_is_bounded() -> None:
    reporter = NotFoundReporter(period_s=60, count_max=2)
    assert reporter._should_report("/a", 0.0) and reporter._should_report("/b", 1.0)
    assert not reporter._should_report("/a", 30.0)
    # Every slot holds a path reported within the period: a third path goes unreported.
    assert not reporter._should_report("/c", 30.0)
    # Once /a's period is over, it is reported again, and room is made for /c.
    assert reporter._should_report("/a", 60.0)
    assert not reporter._should_report("/c", 60.5)
    assert reporter._should_report("/c", 61.0)
    assert len(reporter._reported_until) == 2


@pytest.mark.parametrize(
    ("threshold_minor", "before_minor", "after_minor", "reported"),
    [
        (None, 1000, 0, False),
        (800, 1000, 500, True),
        (800, 800, 799, True),
        (800, 799, 500, False),
        (800, 1000, 800, False),
        (800, 500, 1000, False),
    ],
)
async def test_low_liquidity_is_reported_when_the_threshold_is_crossed(
    app: Starlette,
    threshold_minor: int | None,
    before_minor: int,
    after_minor: int,
    reported: bool,
) -> None:
    sessions = app.state.services.sessions
    async with sessions() as session:
        await note_available_balance(
            session,
            wallet_address_url=ALICE,
            asset_code="USD",
            asset_scale=2,
            threshold_minor=threshold_minor,
            before_minor=before_minor,
            after_minor=after_minor,
        )
        await session.commit()
    expected = [
        (
            "wallet_address.liquidity_low",
            {
                "walletAddress": ALICE,
                "threshold": usd(str(threshold_minor)),
                "available": usd(str(after_minor)),
            },
        )
    ]
    assert await events(sessions) == (expected if reported else [])
