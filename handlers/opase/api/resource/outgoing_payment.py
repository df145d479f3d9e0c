"""Outgoing payment operations and grant spent amounts (resource-server.yaml): authorize,
convert the wire forms, call `opase.payments.outgoing`, render.

A payment is created in one transaction with everything it decides (the quote taken, the
grant's limits counted, the debit reserved: `outgoing.create`); any refusal rolls all of it
back. After the commit it settles in the background; the response shows it as stored
(`sentAmount` 0).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, Final

from opase.amounts import Amount
from opase.api.resource.authorize import (
    access_token,
    authorize,
    authorize_grant,
    local_wallet_address,
)
from opase.api.resource.pagination import Page, own_page, page_request
from opase.authorization.spending import SpendingNotFound
from opase.errors import NotFound
from opase.payments import outgoing, urls
from opase.payments.metadata import check_metadata
from opase.payments.outgoing import GrantUse, PaymentRecord, SpentAmounts
from opase.storage.tables import OutgoingPayment, utc_now
from opase.wallets.directory import find_wallet_address_by_url
from opase.web.context import RequestContext

RESOURCE_TYPE: Final = "outgoing-payment"


def _limits(access: tuple[dict[str, Any], ...]) -> dict[str, Any]:
    """The limits of the granted outgoing-payment item that allowed the request."""
    for item in access:
        if item.get("type") == RESOURCE_TYPE:
            limits: dict[str, Any] = item.get("limits") or {}
            return limits
    return {}


def _spent_view(spent: SpentAmounts) -> dict[str, Any]:
    """The grant's `spentDebitAmount` and `spentReceiveAmount`: both required, null where
    no asset can be named."""
    return {
        "spentDebitAmount": None if spent.debit is None else spent.debit.wire(),
        "spentReceiveAmount": None if spent.receive is None else spent.receive.wire(),
    }


def _grant_spent_view(spent: SpentAmounts) -> dict[str, Any]:
    """An outgoing payment's optional `grantSpentDebitAmount` and `grantSpentReceiveAmount`:
    left out where no asset can be named."""
    view = {}
    if spent.debit is not None:
        view["grantSpentDebitAmount"] = spent.debit.wire()
    if spent.receive is not None:
        view["grantSpentReceiveAmount"] = spent.receive.wire()
    return view


async def create_outgoing_payment(ctx: RequestContext) -> dict[str, Any]:
    document = ctx.document
    wallet_address_url: str = document["walletAddress"]
    authorized = await authorize(ctx, RESOURCE_TYPE, "create", wallet_address_url)
    assert authorized.grant_id is not None  # an active token always names its grant
    grant = GrantUse(
        authorized.grant_id,
        _limits(authorized.access),
        authorized.client_wallet_address,
        authorized.client_key_thumbprint,
    )
    metadata = check_metadata(document.get("metadata"))
    debit = document.get("debitAmount")
    async with ctx.transaction() as session:
        sender = await local_wallet_address(ctx.services, wallet_address_url, session=session)
        record, spent = await outgoing.create(
            session,
            ctx.settings,
            sender=sender,
            grant=grant,
            quote_url=document.get("quoteId"),
            incoming_payment_url=document.get("incomingPayment"),
            debit=None if debit is None else Amount.from_wire(debit),
            metadata=metadata,
            now=datetime.now(UTC),
        )
    ctx.services.payments.start(record.payment.id)
    return outgoing.view(ctx.settings, record) | _grant_spent_view(spent)


async def get_outgoing_payment(ctx: RequestContext) -> dict[str, Any]:
    access_token(ctx)
    try:
        payment_id = uuid.UUID(ctx.path_params["id"])
    except ValueError:
        raise NotFound("no such outgoing payment") from None
    async with ctx.services.sessions() as session:
        record = await outgoing.find(session, payment_id)
    if record is None:
        raise NotFound("no such outgoing payment")
    wallet_address_url = urls.wallet_address_url(ctx.settings, record.wallet_address_path)
    authorized = await authorize(ctx, RESOURCE_TYPE, "read", wallet_address_url)
    authorized.check_own(
        record.payment.client_wallet_address,
        record.payment.client_key_thumbprint,
        "read of another client's payment",
    )
    return outgoing.view(ctx.settings, record)


async def list_outgoing_payments(ctx: RequestContext) -> dict[str, Any]:
    wallet_address_url: str = ctx.query["wallet-address"]
    request = page_request(ctx.query)
    authorized = await authorize(ctx, RESOURCE_TYPE, "list", wallet_address_url)
    async with ctx.services.sessions() as session:
        sender = await local_wallet_address(ctx.services, wallet_address_url, session=session)
        page: Page[OutgoingPayment] = await own_page(
            session, authorized, OutgoingPayment, sender.id, request
        )
        quotes = await outgoing.quotes_of(session, page.items)
    return {
        "pagination": page.page_info,
        "result": [
            outgoing.view(
                ctx.settings, PaymentRecord(payment, quotes[payment.quote_id], sender.path)
            )
            for payment in page.items
        ],
    }


async def get_outgoing_payment_grant(ctx: RequestContext) -> dict[str, Any]:
    """What payments under the token's grant have spent in the current interval."""
    authorized, item = await authorize_grant(ctx, RESOURCE_TYPE)
    assert authorized.grant_id is not None  # an active token always names its grant
    async with ctx.transaction() as session:
        wallet = await find_wallet_address_by_url(
            session, ctx.settings.public_url, item["identifier"]
        )
        debit_asset = None if wallet is None else (wallet.asset_code, wallet.asset_scale)
        try:
            spent = await outgoing.spent_amounts(
                session, authorized.grant_id, item.get("limits") or {}, debit_asset, utc_now()
            )
        except SpendingNotFound:
            spent = SpentAmounts(None, None)
    return _spent_view(spent)
