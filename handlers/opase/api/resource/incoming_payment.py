"""Incoming payment operations (resource-server.yaml): authorize, convert the wire forms, call
`opase.payments.incoming`, render.

Every operation is authorized through token introspection (`opase.api.resource.authorize`);
a plain `read`/`list` shows a client only the payments it created, `read-all`/`list-all`
every payment. The one exception is get-incoming-payment without a token: anyone who knows
the URL sees the public view (`receivedAmount`, `authServer`), never the payment method.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy.ext.asyncio import AsyncSession

from opase.amounts import Amount
from opase.api.resource.authorize import authorize, local_wallet_address
from opase.api.resource.pagination import Page, own_page, page_request
from opase.errors import InvalidRequest, NotFound
from opase.payments import incoming, views
from opase.payments.metadata import check_metadata
from opase.payments.views import WalletView
from opase.storage.tables import IncomingPayment, column_values
from opase.web.context import RequestContext

RESOURCE_TYPE: Final = "incoming-payment"


def _expires_at(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise InvalidRequest(f"expiresAt {text!r} is not an RFC 3339 date-time") from None


async def create_incoming_payment(ctx: RequestContext) -> dict[str, Any]:
    document = ctx.document
    wallet_address_url: str = document["walletAddress"]
    authorized = await authorize(ctx, RESOURCE_TYPE, "create", wallet_address_url)
    wallet = await local_wallet_address(ctx.services, wallet_address_url)
    amount = document.get("incomingAmount")
    created = incoming.new_payment(
        ctx.settings,
        wallet,
        client_wallet_address=authorized.client_wallet_address,
        client_key_thumbprint=authorized.client_key_thumbprint,
        incoming_amount=None if amount is None else Amount.from_wire(amount),
        expires_at=_expires_at(document.get("expiresAt")),
        metadata=check_metadata(document.get("metadata")),
        now=datetime.now(UTC),
    )
    # Two new rows that nothing in the database decides: no transaction to hold open.
    await ctx.insert(created.rows)
    return created.view


async def _find(ctx: RequestContext, session: AsyncSession) -> tuple[IncomingPayment, WalletView]:
    """The payment the path names, with its wallet address; 404 when there is none."""
    try:
        payment_id = uuid.UUID(ctx.path_params["id"])
    except ValueError:
        raise NotFound("no such incoming payment") from None
    found = await incoming.find(session, ctx.settings, payment_id)
    if found is None:
        raise NotFound("no such incoming payment")
    return found


async def get_incoming_payment(ctx: RequestContext) -> dict[str, Any]:
    async with ctx.services.autocommit() as session:
        payment, wallet = await _find(ctx, session)
    if ctx.client is None:
        # No token: the public view, which tells a payer where to ask for a grant.
        return views.public_incoming_payment(ctx.settings, payment.received_amount_minor, wallet)
    authorized = await authorize(ctx, RESOURCE_TYPE, "read", wallet.url)
    authorized.check_own(
        payment.client_wallet_address,
        payment.client_key_thumbprint,
        "read of another client's payment",
    )
    return views.incoming_payment_with_methods(ctx.settings, column_values(payment), wallet)


async def list_incoming_payments(ctx: RequestContext) -> dict[str, Any]:
    wallet_address_url: str = ctx.query["wallet-address"]
    request = page_request(ctx.query)
    authorized = await authorize(ctx, RESOURCE_TYPE, "list", wallet_address_url)
    async with ctx.services.sessions() as session:
        record = await local_wallet_address(ctx.services, wallet_address_url, session=session)
        page: Page[IncomingPayment] = await own_page(
            session, authorized, IncomingPayment, record.id, request
        )
    wallet = WalletView(wallet_address_url, record.asset_code, record.asset_scale)
    return {
        "pagination": page.page_info,
        "result": [
            views.incoming_payment(ctx.settings, column_values(payment), wallet)
            for payment in page.items
        ],
    }


async def complete_incoming_payment(ctx: RequestContext) -> dict[str, Any]:
    now = datetime.now(UTC)
    async with ctx.transaction() as session:
        payment, wallet = await _find(ctx, session)
        authorized = await authorize(ctx, RESOURCE_TYPE, "complete", wallet.url)
        authorized.check_own(
            payment.client_wallet_address,
            payment.client_key_thumbprint,
            "complete of another client's payment",
        )
        return await incoming.complete(session, ctx.settings, payment, wallet, now)
