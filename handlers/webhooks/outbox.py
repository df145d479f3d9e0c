"""The webhook outbox: `enqueue` writes an event in the caller's transaction, beside the
change it reports, so the event exists exactly when the change does. Sending is the
delivery worker's job (`opase.webhooks.delivery`)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Final

from sqlalchemy.ext.asyncio import AsyncSession

from opase.storage.tables import WebhookEvent, utc_now

WEBHOOK_EVENT_TYPES: Final = (
    "incoming_payment.created",
    "incoming_payment.completed",
    "incoming_payment.expired",
    "outgoing_payment.created",
    "outgoing_payment.completed",
    "outgoing_payment.failed",
    "wallet_address.not_found",
    "asset.liquidity_low",
)


async def enqueue(
    session: AsyncSession, event_type: str, data: dict[str, Any], *, now: datetime | None = None
) -> uuid.UUID:
    """Add an event to the outbox in the caller's transaction; its id, which receivers use
    to drop repeats. Due at once."""
    assert event_type in WEBHOOK_EVENT_TYPES, event_type
    at = now or utc_now()
    event = WebhookEvent(type=event_type, data=data, next_attempt_at=at, created_at=at)
    session.add(event)
    await session.flush()
    return event.id
