"""The webhook outbox: `enqueue` writes an event in the caller's transaction, beside the
change it reports, so the event exists exactly when the change does. Sending is the
delivery worker's job (`opase.webhooks.delivery`); the admin API lists events a page at a
time and re-drives dead ones (`list_events`, `redrive`)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from opase.storage.keyset import KeysetCursor, past
from opase.storage.tables import (
    WEBHOOK_EVENT_STATUSES,
    WebhookEvent,
    new_row,
    sa_table,
    utc_now,
)

WEBHOOK_EVENT_TYPES: Final = (
    "incoming_payment.created",
    "incoming_payment.completed",
    "incoming_payment.expired",
    "outgoing_payment.created",
    "outgoing_payment.completed",
    "outgoing_payment.failed",
    "wallet_address.not_found",
    "wallet_address.liquidity_low",
)


def new_event_row(
    event_type: str, data: dict[str, Any], *, now: datetime | None = None
) -> dict[str, Any]:
    """An outbox event as a new row, due at once; its `id` is what receivers use to drop
    repeats. Written by `enqueue`, or inserted by its caller together with the change it
    reports (`RequestContext.insert`)."""
    assert event_type in WEBHOOK_EVENT_TYPES, event_type
    at = now or utc_now()
    return new_row(WebhookEvent, type=event_type, data=data, next_attempt_at=at, created_at=at)


OUTBOX: Final = sa_table(WebhookEvent)
"""The outbox table, for callers that insert `new_event_row`s with their own rows."""


async def enqueue(
    session: AsyncSession, event_type: str, data: dict[str, Any], *, now: datetime | None = None
) -> uuid.UUID:
    """Add an event to the outbox in the caller's transaction; its id. The caller's pending
    objects are flushed first, as before any statement."""
    row = new_event_row(event_type, data, now=now)
    await session.flush()
    await session.execute(sa.insert(OUTBOX), row)
    event_id: uuid.UUID = row["id"]
    return event_id


EVENT_PAGE_COUNT_MAX: Final = 100


class EventNotDead(Exception):
    """Only a dead event can be re-driven: a pending one is still being tried, a delivered
    one arrived."""


EventCursor = KeysetCursor


@dataclass(frozen=True, slots=True)
class EventPage:
    """Up to `first` events, oldest first; `end_cursor` names the last one (None when the
    page is empty), `has_next_page` whether more follow it."""

    events: list[WebhookEvent]
    end_cursor: str | None
    has_next_page: bool


async def list_events(
    session: AsyncSession, *, status: str | None, first: int, cursor: str | None
) -> EventPage:
    """Events oldest first, optionally of one status, after `cursor`. Keyset pagination on
    (created_at, id): the last page's cursor stays valid for polling newer events."""
    assert status is None or status in WEBHOOK_EVENT_STATUSES, status
    if not 0 < first <= EVENT_PAGE_COUNT_MAX:
        raise ValueError(f"first must be in 1..{EVENT_PAGE_COUNT_MAX}, not {first}")
    created_at, event_id = col(WebhookEvent.created_at), col(WebhookEvent.id)
    query = sa.select(WebhookEvent).order_by(created_at, event_id).limit(first + 1)
    if status is not None:
        query = query.where(col(WebhookEvent.status) == status)
    if cursor is not None:
        after = EventCursor.from_token(cursor, of="webhook event")
        query = query.where(
            past(created_at, event_id, after.created_at, after.id, going_back_in_time=False)
        )
    rows = list((await session.execute(query)).scalars().all())
    events = rows[:first]
    end_cursor = cursor
    if events:
        end_cursor = EventCursor(events[-1].created_at, events[-1].id).to_token()
    return EventPage(events, end_cursor, len(rows) > first)


async def redrive(
    session: AsyncSession, event_id: uuid.UUID, *, now: datetime | None = None
) -> WebhookEvent:
    """Put a dead event back in line, due at once with a fresh count of attempts.
    LookupError for an unknown event, EventNotDead for one that is not dead."""
    at = now or utc_now()
    # Conditional, so a redrive racing another one (or the worker) moves the event once.
    moved = await session.execute(
        sa.update(WebhookEvent)
        .where(col(WebhookEvent.id) == event_id, col(WebhookEvent.status) == "dead")
        .values(status="pending", attempts=0, next_attempt_at=at, last_error=None)
        .execution_options(synchronize_session=False)
    )
    event = await session.get(WebhookEvent, event_id, populate_existing=True)
    if event is None:
        raise LookupError(f"no webhook event {event_id}")
    if moved.rowcount != 1:  # type: ignore[attr-defined]
        raise EventNotDead(f"webhook event {event_id} is {event.status}, not dead")
    assert event.status == "pending" and event.attempts == 0
    return event
