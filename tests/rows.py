"""Stored rows changed behind the API's back, as time passing or another process would change
them: a grant, an incoming payment."""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from sqlmodel import col
from starlette.applications import Starlette

from opase.storage.tables import Grant, IncomingPayment


async def set_grant(app: Starlette, grant_id: uuid.UUID, **values: Any) -> None:
    async with app.state.services.sessions() as session:
        await session.execute(sa.update(Grant).where(col(Grant.id) == grant_id).values(**values))
        await session.commit()


async def set_incoming_payment(app: Starlette, url: str, **values: Any) -> None:
    """Set `values` on the incoming payment at `url`."""
    async with app.state.services.sessions() as session:
        await session.execute(
            sa.update(IncomingPayment)
            .where(col(IncomingPayment.id) == uuid.UUID(url.rsplit("/", 1)[1]))
            .values(**values)
        )
        await session.commit()
