"""The webhook endpoint, whose secret goes in and never comes out, and its events: listed
a page at a time, dead ones re-driven."""

from __future__ import annotations

from typing import Any

from opase.api.admin.operation import admin_session, path_id
from opase.errors import Conflict
from opase.storage.tables import WebhookEvent
from opase.timestamps import wire_time
from opase.web.context import RequestContext
from opase.webhooks import endpoint as webhooks
from opase.webhooks import outbox

FIRST_DEFAULT = 20
"""The spec's default page size."""


def _webhook_view(webhook: webhooks.Webhook) -> dict[str, Any]:
    return {
        "url": webhook.url,
        "secretSet": webhook.secret_set,
        "updatedAt": wire_time(webhook.updated_at),
    }


async def get_webhook(ctx: RequestContext) -> dict[str, Any]:
    async with admin_session(ctx) as session:
        webhook = await webhooks.get_webhook(session)
    return _webhook_view(webhook)


async def set_webhook(ctx: RequestContext) -> dict[str, Any]:
    async with admin_session(ctx) as session:
        webhook = await webhooks.set_webhook(
            session, ctx.document["url"], ctx.document.get("secret")
        )
    return _webhook_view(webhook)


def _event_view(event: WebhookEvent) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": str(event.id),
        "type": event.type,
        "data": event.data,
        "status": event.status,
        "attempts": event.attempts,
        "createdAt": wire_time(event.created_at),
    }
    if event.status == "pending":
        view["nextAttemptAt"] = wire_time(event.next_attempt_at)
    if event.last_error is not None:
        view["lastError"] = event.last_error
    if event.delivered_at is not None:
        view["deliveredAt"] = wire_time(event.delivered_at)
    return view


async def list_webhook_events(ctx: RequestContext) -> dict[str, Any]:
    async with admin_session(ctx) as session:
        page = await outbox.list_events(
            session,
            status=ctx.query.get("status"),
            first=ctx.query.get("first", FIRST_DEFAULT),
            cursor=ctx.query.get("cursor"),
        )
        result = [_event_view(event) for event in page.events]
    page_info: dict[str, Any] = {"hasNextPage": page.has_next_page}
    if page.end_cursor is not None:
        page_info["endCursor"] = page.end_cursor
    return {"result": result, "pageInfo": page_info}


async def redrive_webhook_event(ctx: RequestContext) -> dict[str, Any]:
    event_id = path_id(ctx)
    async with admin_session(ctx) as session:
        try:
            event = await outbox.redrive(session, event_id)
        except outbox.EventNotDead as exc:
            raise Conflict(str(exc)) from exc
        view = _event_view(event)
    return view
