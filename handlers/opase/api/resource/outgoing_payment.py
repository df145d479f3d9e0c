"""Outgoing payment operations and grant spent amounts (resource-server.yaml).

Create, in one transaction: authorize (an outgoing-payment grant for the sending wallet
address), take the quote (`quoteId`: refused when unknown, expired, used, or for another
wallet address) or price one (`incomingPayment` + `debitAmount`), check the grant's
`receiver` and amount limits and count the payment against them (`spending.reserve`, one
conditional UPDATE, so concurrent payments cannot overspend), then reserve the debit on the
ledger (`opase.payments.outgoing.start`). Any refusal rolls all of it back. After the commit
the payment settles in the background; the response shows it as stored (`sentAmount` 0).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from opase.amounts import wire_amount
from opase.api.resource.authorize import Authorized, authorize
from opase.api.resource.common import check_metadata, local_wallet_address
from opase.api.resource.pagination import Page, own_page, page_request
from opase.api.resource.quote import PATH as QUOTES_PATH
from opase.api.resource.quote import make_quote
from opase.authorization.spending import (
    LimitExceeded,
    OutsideInterval,
    Reservation,
    SpendingNotFound,
    reserve,
    spent,
)
from opase.errors import Forbidden, InvalidRequest, NotFound, Unauthorized
from opase.ledger import InsufficientFunds
from opase.payments.outgoing import PaymentRecord, find, start, view
from opase.security.authenticator import gnap_token
from opase.storage.tables import OutgoingPayment, Quote, sa_table, utc_now
from opase.wallets.service import WalletAddressRecord, find_wallet_address_by_url
from opase.web.router import RequestContext

RESOURCE_TYPE: Final = "outgoing-payment"


def _limits(authorized: Authorized) -> dict[str, Any]:
    """The limits of the granted outgoing-payment item that allowed the request."""
    for item in authorized.access:
        if item.get("type") == RESOURCE_TYPE:
            limits: dict[str, Any] = item.get("limits") or {}
            return limits
    return {}


def _asset(amount: dict[str, Any] | None) -> tuple[str, int] | None:
    return None if amount is None else (amount["assetCode"], amount["assetScale"])


async def _take_quote(
    ctx: RequestContext, session: AsyncSession, url: str, sender: WalletAddressRecord, now: datetime
) -> Quote:
    """The quote `url` names, marked used; 400 when it cannot pay this payment."""
    prefix = f"{ctx.settings.resource_server_url}{QUOTES_PATH}/"
    try:
        quote_id = uuid.UUID(url.removeprefix(prefix)) if url.startswith(prefix) else None
    except ValueError:
        quote_id = None
    quote = None if quote_id is None else await session.get(Quote, quote_id)
    if quote is None:
        raise InvalidRequest(f"quoteId {url} is not a quote of this ASE")
    if quote.wallet_address_id != sender.id:
        raise InvalidRequest("the quote is for another wallet address")
    if quote.expires_at <= now:
        raise InvalidRequest("the quote has expired: ask for a new one")
    table = sa_table(Quote)
    taken = await session.execute(
        sa.update(table)
        .where(table.c.id == quote.id, table.c.used_at.is_(None), table.c.expires_at > now)
        .values(used_at=now)
    )
    if taken.rowcount != 1:  # type: ignore[attr-defined]
        raise InvalidRequest("the quote was already used by another outgoing payment")
    return quote


async def _price(
    ctx: RequestContext,
    session: AsyncSession,
    authorized: Authorized,
    document: dict[str, Any],
    now: datetime,
) -> Quote:
    """A quote, used at once, for `incomingPayment` + `debitAmount` (fixed-send)."""
    asked = {
        "walletAddress": document["walletAddress"],
        "receiver": document["incomingPayment"],
        "debitAmount": document["debitAmount"],
    }
    quote, _ = await make_quote(ctx, session, authorized, asked, now)
    quote.used_at = now
    return quote


def _check_limits(limits: dict[str, Any], quote: Quote) -> None:
    """The grant's `receiver` and the assets of its amount limits (the amounts themselves
    are counted by `spending.reserve`)."""
    receiver = limits.get("receiver")
    if receiver is not None and receiver != quote.receiver:
        raise Forbidden(f"the grant allows payments to {receiver} only")
    debit_asset = _asset(limits.get("debitAmount"))
    if debit_asset is not None and debit_asset != (quote.debit_asset_code, quote.debit_asset_scale):
        raise Forbidden("the grant's debitAmount limit is in another asset")
    receive_asset = _asset(limits.get("receiveAmount"))
    receive = (quote.receive_asset_code, quote.receive_asset_scale)
    if receive_asset is not None and receive_asset != receive:
        raise Forbidden("the grant's receiveAmount limit is in another asset than the receiver's")


async def _count_against_grant(
    session: AsyncSession, grant_id: uuid.UUID, quote: Quote, now: datetime
) -> Reservation:
    try:
        return await reserve(
            session,
            grant_id,
            at=now,
            debit_minor=quote.debit_amount_minor,
            receive_minor=quote.receive_amount_minor,
        )
    except (LimitExceeded, OutsideInterval) as exc:
        raise Forbidden(str(exc)) from None
    except SpendingNotFound:
        raise Forbidden("the access token's grant allows no outgoing payments") from None


async def _spent_amounts(
    session: AsyncSession,
    grant_id: uuid.UUID,
    limits: dict[str, Any],
    debit_asset: tuple[str, int] | None,
    now: datetime,
) -> dict[str, Any]:
    """What payments under the grant have spent in the current interval: the debit in the
    sending wallet's asset, the receive amount in the asset of the grant's `receiveAmount`
    limit (None without one, since receivers' assets differ)."""
    try:
        used = await spent(session, grant_id, at=now)
        debit_minor, receive_minor = used.debit_minor, used.receive_minor
    except OutsideInterval:
        debit_minor = receive_minor = 0  # no current interval: nothing spent in it
    debit_asset = _asset(limits.get("debitAmount")) or debit_asset
    receive_asset = _asset(limits.get("receiveAmount"))
    return {
        "spentDebitAmount": None if debit_asset is None else wire_amount(debit_minor, *debit_asset),
        "spentReceiveAmount": None
        if receive_asset is None
        else wire_amount(receive_minor, *receive_asset),
    }


async def create_outgoing_payment(ctx: RequestContext) -> dict[str, Any]:
    document = ctx.document
    wallet_address_url: str = document["walletAddress"]
    authorized = await authorize(ctx, RESOURCE_TYPE, "create", wallet_address_url)
    assert authorized.grant_id is not None  # an active token always names its grant
    limits = _limits(authorized)
    metadata = check_metadata(document.get("metadata"))
    now = datetime.now(UTC)
    async with ctx.transaction() as session:
        sender = await local_wallet_address(ctx.services, wallet_address_url, session=session)
        quote_shown = "quoteId" in document
        if quote_shown:
            quote = await _take_quote(ctx, session, document["quoteId"], sender, now)
        else:
            quote = await _price(ctx, session, authorized, document, now)
        _check_limits(limits, quote)
        spending = await _count_against_grant(session, authorized.grant_id, quote, now)
        try:
            record = await start(
                session,
                ctx.settings,
                quote=quote,
                wallet_address_path=sender.path,
                grant_id=authorized.grant_id,
                spending=spending,
                client_wallet_address=authorized.client_wallet_address,
                client_key_thumbprint=authorized.client_key_thumbprint,
                quote_shown=quote_shown,
                metadata=metadata,
                now=now,
            )
        except InsufficientFunds:
            raise Forbidden("the wallet address's balance cannot cover the debitAmount") from None
        spent_amounts = await _spent_amounts(
            session, authorized.grant_id, limits, (sender.asset_code, sender.asset_scale), now
        )
    ctx.services.payments.start(record.payment.id)
    grant_spent: dict[str, Any] = {
        "grantSpentDebitAmount": spent_amounts["spentDebitAmount"],
        "grantSpentReceiveAmount": spent_amounts["spentReceiveAmount"],
    }
    document = view(ctx.settings, record)
    document.update((name, amount) for name, amount in grant_spent.items() if amount is not None)
    return document


async def get_outgoing_payment(ctx: RequestContext) -> dict[str, Any]:
    if ctx.client is None:
        raise Unauthorized("this operation needs an access token: Authorization: GNAP <token>")
    try:
        payment_id = uuid.UUID(ctx.path_params["id"])
    except ValueError:
        raise NotFound("no such outgoing payment") from None
    async with ctx.services.sessions() as session:
        record = await find(session, payment_id)
    if record is None:
        raise NotFound("no such outgoing payment")
    wallet_address_url = ctx.settings.public_url + record.wallet_address_path
    authorized = await authorize(ctx, RESOURCE_TYPE, "read", wallet_address_url)
    authorized.check_own(
        record.payment.client_wallet_address,
        record.payment.client_key_thumbprint,
        "read of another client's payment",
    )
    return view(ctx.settings, record)


async def list_outgoing_payments(ctx: RequestContext) -> dict[str, Any]:
    wallet_address_url: str = ctx.query["wallet-address"]
    request = page_request(ctx.query)
    authorized = await authorize(ctx, RESOURCE_TYPE, "list", wallet_address_url)
    async with ctx.services.sessions() as session:
        sender = await local_wallet_address(ctx.services, wallet_address_url, session=session)
        page: Page[OutgoingPayment] = await own_page(
            session, authorized, OutgoingPayment, sender.id, request
        )
        quote_ids = [payment.quote_id for payment in page.items]
        quotes = {
            quote.id: quote
            for quote in (
                await session.execute(sa.select(Quote).where(col(Quote.id).in_(quote_ids)))
            ).scalars()
        }
    return {
        "pagination": page.page_info,
        "result": [
            view(ctx.settings, PaymentRecord(payment, quotes[payment.quote_id], sender.path))
            for payment in page.items
        ],
    }


async def get_outgoing_payment_grant(ctx: RequestContext) -> dict[str, Any]:
    """What payments under the token's grant have spent in the current interval."""
    token = gnap_token(ctx.headers)
    if token is None:
        raise Unauthorized("this operation needs an access token: Authorization: GNAP <token>")
    answer = await ctx.services.introspector.introspect(token)
    if not answer.get("active"):
        raise Unauthorized("the access token is not active")
    outgoing = [item for item in answer["access"] if item["type"] == RESOURCE_TYPE]
    if not outgoing:
        raise Forbidden("the access token's grant allows no outgoing payments")
    limits = outgoing[0].get("limits") or {}
    async with ctx.transaction() as session:
        wallet = await find_wallet_address_by_url(
            session, ctx.settings.public_url, outgoing[0]["identifier"]
        )
        debit_asset = None if wallet is None else (wallet.asset_code, wallet.asset_scale)
        try:
            amounts = await _spent_amounts(
                session, uuid.UUID(answer["grant"]), limits, debit_asset, utc_now()
            )
        except SpendingNotFound:
            amounts = {"spentDebitAmount": None, "spentReceiveAmount": None}
    return amounts
