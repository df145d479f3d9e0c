"""The webhook endpoint. Its secret goes in and never comes out."""

from __future__ import annotations

from typing import Any

from opase.admin import admin_session
from opase.admin._wire import wire_datetime
from opase.routing import RequestContext
from opase.webhooks import service as webhooks


def _webhook_view(webhook: webhooks.Webhook) -> dict[str, Any]:
    return {
        "url": webhook.url,
        "secretSet": webhook.secret_set,
        "updatedAt": wire_datetime(webhook.updated_at),
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
