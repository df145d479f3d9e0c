"""What the ASE's database holds after the requests of a test: balances, fees, a clean audit,
the outbox's events; and `settled`, which waits for the outgoing payments in flight."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlmodel import col
from starlette.applications import Starlette

from opase.ledger import audit, balance_minor, fees_account
from opase.storage.tables import Asset, WalletAddress, WebhookEvent


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
