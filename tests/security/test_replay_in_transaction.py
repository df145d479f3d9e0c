"""The resource server's writes record their request's signature in their own transaction
(`opase.web.authentication.CLAIM_IN_TRANSACTION`): a replay is refused whether it races the original
or comes after a refusal, and whatever the state has become meanwhile it changes nothing."""

from __future__ import annotations

import asyncio

import sqlalchemy as sa
from sqlmodel import col
from starlette.applications import Starlette

from opase.storage.tables import IncomingPayment, WebhookEvent
from opase.wallets.directory import create_asset, create_wallet_address
from tests.client import CheckedClient
from tests.responses import reason_of
from tests.signing import ClientIdentity, issue_grant, register_client, signed
from tests.world import ALICE, DAVE, INCOMING_PAYMENTS, seed

COPIES = 6


async def stored_payments(app: Starlette) -> int:
    async with app.state.services.sessions() as session:
        count: int = (
            await session.execute(sa.select(sa.func.count()).select_from(IncomingPayment))
        ).scalar_one()
    return count


async def created_events(app: Starlette) -> int:
    async with app.state.services.sessions() as session:
        count: int = (
            await session.execute(
                sa.select(sa.func.count())
                .select_from(WebhookEvent)
                .where(col(WebhookEvent.type) == "incoming_payment.created")
            )
        ).scalar_one()
    return count


async def test_copies_of_one_signed_create_sent_at_once_create_one_payment(
    app: Starlette, client: CheckedClient
) -> None:
    await seed(app)
    identity = await register_client(app)
    grant = await issue_grant(app, identity)
    body = {"walletAddress": ALICE}
    original = signed(
        client, identity, "POST", INCOMING_PAYMENTS, body=body, token=grant.access_token
    )
    copies = [
        client.build_request(
            "POST", INCOMING_PAYMENTS, content=original.content, headers=original.headers
        )
        for _ in range(COPIES)
    ]
    responses = await asyncio.gather(*(client.send(copy) for copy in copies))
    statuses = sorted(response.status_code for response in responses)
    assert statuses == [201] + [401] * (COPIES - 1), statuses
    for response in responses:
        if response.status_code == 401:
            assert reason_of(response) == "replayed_signature"
    assert await stored_payments(app) == 1
    assert await created_events(app) == 1


async def test_a_refused_request_replayed_after_the_state_changed_is_still_refused(
    app: Starlette, client: CheckedClient
) -> None:
    identity: ClientIdentity = await register_client(app)
    grant = await issue_grant(app, identity)
    body = {"walletAddress": DAVE}  # no such wallet address yet
    original = signed(
        client, identity, "POST", INCOMING_PAYMENTS, body=body, token=grant.access_token
    )
    refused = await client.send(original)
    assert refused.status_code == 400, refused.text
    async with app.state.services.sessions() as session:
        asset = await create_asset(session, "USD", 2)
        await create_wallet_address(session, "/dave", asset.id, "Dave")
        await session.commit()
    replay = client.build_request(
        "POST", INCOMING_PAYMENTS, content=original.content, headers=original.headers
    )
    assert reason_of(await client.send(replay)) == "replayed_signature"
    assert await stored_payments(app) == 0
    # The client's own new request goes through.
    fresh = signed(client, identity, "POST", INCOMING_PAYMENTS, body=body, token=grant.access_token)
    assert (await client.send(fresh)).status_code == 201


async def test_a_signed_create_is_one_statement_on_postgresql(
    app: Starlette, client: CheckedClient
) -> None:
    """The claim, the payment and its event: one statement committed by itself on
    PostgreSQL (caches warm); on SQLite, where the claim is in memory, the two INSERTs."""
    await seed(app)
    identity = await register_client(app)
    grant = await issue_grant(app, identity)
    body = {"walletAddress": ALICE}

    async def create() -> None:
        request = signed(
            client, identity, "POST", INCOMING_PAYMENTS, body=body, token=grant.access_token
        )
        assert (await client.send(request)).status_code == 201

    await create()  # the token and the wallet address are cached from here on
    statements: list[str] = []

    def record(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        statements.append(statement)

    engine = app.state.services.engine.sync_engine
    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        await create()
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)
    tables = ("seen_signatures", "incoming_payments", "webhook_events")
    if app.state.services.settings.is_postgres:
        assert len(statements) == 1, statements
        assert all(table in statements[0] for table in tables), statements
    else:
        assert [s.split()[:3] for s in statements] == [
            ["INSERT", "INTO", "incoming_payments"],
            ["INSERT", "INTO", "webhook_events"],
        ], statements
    assert await stored_payments(app) == 2
    assert await created_events(app) == 2
