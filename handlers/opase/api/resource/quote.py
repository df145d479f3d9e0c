"""Quote operations (resource-server.yaml): authorize, convert the wire forms, call
`opase.payments.quotes`, render. Quotes are not public: without a token, not even whether
one exists."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, Final

from opase.amounts import Amount
from opase.api.resource.authorize import access_token, authorize, local_wallet_address
from opase.errors import InvalidRequest, NotFound
from opase.payments import quotes, views
from opase.payments.urls import wallet_address_url
from opase.web.context import RequestContext

RESOURCE_TYPE: Final = "quote"


def _amount(document: dict[str, Any], name: str) -> Amount | None:
    amount = document.get(name)
    return None if amount is None else Amount.from_wire(amount)


async def create_quote(ctx: RequestContext) -> dict[str, Any]:
    document = ctx.document
    sender_url: str = document["walletAddress"]
    authorized = await authorize(ctx, RESOURCE_TYPE, "create", sender_url)
    if document.get("method", views.QUOTE_METHOD) != views.QUOTE_METHOD:
        raise InvalidRequest(f"method must be {views.QUOTE_METHOD!r}")
    async with ctx.transaction() as session:
        sender = await local_wallet_address(ctx.services, sender_url, session=session)
        quote = await quotes.create(
            session,
            ctx.settings,
            sender=sender,
            receiver_url=document["receiver"],
            debit=_amount(document, "debitAmount"),
            receive=_amount(document, "receiveAmount"),
            client_wallet_address=authorized.client_wallet_address,
            client_key_thumbprint=authorized.client_key_thumbprint,
            now=datetime.now(UTC),
        )
    return views.quote(ctx.settings, quote, sender_url)


async def get_quote(ctx: RequestContext) -> dict[str, Any]:
    access_token(ctx)
    try:
        quote_id = uuid.UUID(ctx.path_params["id"])
    except ValueError:
        raise NotFound("no such quote") from None
    async with ctx.services.sessions() as session:
        found = await quotes.find(session, quote_id)
    if found is None:
        raise NotFound("no such quote")
    quote, path = found
    sender_url = wallet_address_url(ctx.settings, path)
    authorized = await authorize(ctx, RESOURCE_TYPE, "read", sender_url)
    authorized.check_own(
        quote.client_wallet_address, quote.client_key_thumbprint, "read of another client's quote"
    )
    return views.quote(ctx.settings, quote, sender_url)
