"""Quote operations (resource-server.yaml), for receivers that are incoming payments of this
same ASE.

A quote prices a payment from a wallet address of this ASE to an incoming payment: fixed-send
(`debitAmount`), fixed-receive (`receiveAmount`), or neither, when the incoming payment has an
`incomingAmount` (then the rest it still expects is the receive amount). The arithmetic, its
fees and its rounding live in `opase.pricing.quoting`; this module finds the parties, the
fees and the rate, and stores the result. `expiresAt` is the earlier of `quote_lifespan_s`
ahead and the incoming payment's own expiry.

A receiver at another ASE needs the Interledger rail (a STREAM rate probe over a peering);
until it exists such a quote is refused, never settled by a shortcut between two databases.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from opase.amounts import wire_amount
from opase.api.resource.authorize import Authorized, authorize
from opase.api.resource.common import local_wallet_address, wire_time
from opase.api.resource.incoming_payment import PATH as INCOMING_PAYMENTS_PATH
from opase.errors import InvalidRequest, NotFound, Unauthorized
from opase.pricing import ExchangeRatesUnavailable, fee_for, rates_for
from opase.pricing.quoting import (
    FeeTerms,
    QuoteAmounts,
    QuoteRefused,
    QuoteTerms,
    fixed_receive,
    fixed_send,
)
from opase.pricing.rates import rate_text
from opase.storage.tables import Asset, IncomingPayment, Quote, WalletAddress
from opase.wallets.service import (
    WalletAddressRecord,
)
from opase.web.router import RequestContext

RESOURCE_TYPE: Final = "quote"
PATH: Final = "/quotes"
METHOD: Final = "ilp"
OTHER_ASE: Final = "payments to other ASEs need the Interledger rail, not available yet"


def _view(ctx: RequestContext, quote: Quote, wallet_address_url: str) -> dict[str, Any]:
    """The spec's `quote`."""
    return {
        "id": f"{ctx.settings.resource_server_url}{PATH}/{quote.id}",
        "walletAddress": wallet_address_url,
        "receiver": quote.receiver,
        "debitAmount": wire_amount(
            quote.debit_amount_minor, quote.debit_asset_code, quote.debit_asset_scale
        ),
        "receiveAmount": wire_amount(
            quote.receive_amount_minor, quote.receive_asset_code, quote.receive_asset_scale
        ),
        "method": METHOD,
        "createdAt": wire_time(quote.created_at),
        "expiresAt": wire_time(quote.expires_at),
    }


async def _receiver(
    ctx: RequestContext, session: AsyncSession, url: str, now: datetime
) -> tuple[IncomingPayment, Asset]:
    """The incoming payment of this ASE that `receiver` names, still receiving; 400 else."""
    prefix = f"{ctx.settings.resource_server_url}{INCOMING_PAYMENTS_PATH}/"
    if not url.startswith(prefix):
        ours = (ctx.settings.resource_server_url + "/", ctx.settings.public_url + "/")
        if url.startswith(ours):
            raise InvalidRequest(f"receiver {url} is not an incoming payment")
        raise InvalidRequest(f"receiver {url} is not at this ASE: {OTHER_ASE}")
    try:
        payment_id = uuid.UUID(url[len(prefix) :])
    except ValueError:
        raise InvalidRequest(f"receiver {url} is not an incoming payment") from None
    row = (
        await session.execute(
            sa.select(IncomingPayment, Asset, col(WalletAddress.status))
            .join(WalletAddress, col(WalletAddress.id) == col(IncomingPayment.wallet_address_id))
            .join(Asset, col(Asset.id) == col(WalletAddress.asset_id))
            .where(col(IncomingPayment.id) == payment_id)
        )
    ).one_or_none()
    if row is None:
        raise InvalidRequest(f"receiver {url} is not an incoming payment")
    payment, asset, status = row
    if status != "active":
        raise InvalidRequest("the receiver's wallet address is not active")
    if payment.expires_at <= now:
        raise InvalidRequest("the receiver incoming payment has expired")
    cap_minor = payment.incoming_amount_minor
    if payment.completed_at is not None or (
        cap_minor is not None and payment.received_amount_minor >= cap_minor
    ):
        raise InvalidRequest("the receiver incoming payment is completed")
    return payment, asset


def _amount_minor(name: str, amount: dict[str, Any], code: str, scale: int) -> int:
    if (amount["assetCode"], amount["assetScale"]) != (code, scale):
        raise InvalidRequest(f"{name} must be in {code} (scale {scale})")
    return int(amount["value"])  # the schema admits only uint64 strings


async def _rate(ctx: RequestContext, session: AsyncSession, base: str, counter: str) -> Decimal:
    if base == counter:
        return Decimal(1)  # the same asset converts one to one, whatever a table says
    try:
        rates = await rates_for(ctx.settings, session, base)
    except ExchangeRatesUnavailable:
        raise InvalidRequest(f"exchange rates from {base} are unavailable; try again") from None
    rate = rates.get(counter)
    if rate is None:
        raise InvalidRequest(f"no exchange rate from {base} to {counter}")
    return rate


async def _asset_id(session: AsyncSession, code: str, scale: int) -> uuid.UUID:
    query = select(Asset.id).where(col(Asset.code) == code, col(Asset.scale) == scale)
    asset_id: uuid.UUID = (await session.execute(query)).scalar_one()
    return asset_id


def _price(
    document: dict[str, Any],
    terms: QuoteTerms,
    sender: WalletAddressRecord,
    payment: IncomingPayment,
    receive_asset: Asset,
) -> QuoteAmounts:
    """The amounts for what the request fixes; 400 when they make no quote."""
    cap_minor = payment.incoming_amount_minor
    rest_minor = None if cap_minor is None else cap_minor - payment.received_amount_minor
    debit, receive = document.get("debitAmount"), document.get("receiveAmount")
    try:
        if debit is not None:
            debit_minor = _amount_minor("debitAmount", debit, sender.asset_code, sender.asset_scale)
            amounts = fixed_send(terms, debit_minor)
        else:
            if receive is not None:
                receive_minor = _amount_minor(
                    "receiveAmount", receive, receive_asset.code, receive_asset.scale
                )
            elif rest_minor is None:
                raise InvalidRequest(
                    "the receiver has no incomingAmount: give debitAmount or receiveAmount"
                )
            else:
                receive_minor = rest_minor
            amounts = fixed_receive(terms, receive_minor)
    except QuoteRefused as exc:
        raise InvalidRequest(str(exc)) from None
    if rest_minor is not None and amounts.receive_minor > rest_minor:
        raise InvalidRequest(
            f"the quote would deliver {amounts.receive_minor}, more than the {rest_minor} "
            "the incoming payment still expects"
        )
    return amounts


async def make_quote(
    ctx: RequestContext,
    session: AsyncSession,
    authorized: Authorized,
    document: dict[str, Any],
    now: datetime,
) -> tuple[Quote, WalletAddressRecord]:
    """Price and store a quote for `document` ({walletAddress, receiver, debitAmount |
    receiveAmount | neither}) in the caller's transaction; 400 when it makes no quote.
    Outgoing payments from `incomingPayment` + `debitAmount` are priced here too."""
    sender = await local_wallet_address(ctx.services, document["walletAddress"], session=session)
    receiver_url: str = document["receiver"]
    payment, receive_asset = await _receiver(ctx, session, receiver_url, now)
    send_asset_id = await _asset_id(session, sender.asset_code, sender.asset_scale)
    rate = await _rate(ctx, session, sender.asset_code, receive_asset.code)
    terms = QuoteTerms(
        rate=rate,
        send_scale=sender.asset_scale,
        receive_scale=receive_asset.scale,
        sending_fee=FeeTerms.of(await fee_for(session, send_asset_id, "sending")),
        receiving_fee=FeeTerms.of(await fee_for(session, receive_asset.id, "receiving")),
    )
    amounts = _price(document, terms, sender, payment, receive_asset)
    quote = Quote(
        wallet_address_id=sender.id,
        receiver=receiver_url,
        incoming_payment_id=payment.id,
        client_wallet_address=authorized.client_wallet_address,
        client_key_thumbprint=authorized.client_key_thumbprint,
        debit_amount_minor=amounts.debit_minor,
        debit_asset_code=sender.asset_code,
        debit_asset_scale=sender.asset_scale,
        receive_amount_minor=amounts.receive_minor,
        receive_asset_code=receive_asset.code,
        receive_asset_scale=receive_asset.scale,
        sending_fee_minor=amounts.sending_fee_minor,
        receiving_fee_minor=amounts.receiving_fee_minor,
        rate=rate_text(rate),
        expires_at=min(now + timedelta(seconds=ctx.settings.quote_lifespan_s), payment.expires_at),
        created_at=now,
    )
    session.add(quote)
    return quote, sender


async def create_quote(ctx: RequestContext) -> dict[str, Any]:
    document = ctx.document
    wallet_address_url: str = document["walletAddress"]
    authorized = await authorize(ctx, RESOURCE_TYPE, "create", wallet_address_url)
    if document.get("method", METHOD) != METHOD:
        raise InvalidRequest(f"method must be {METHOD!r}")
    async with ctx.transaction() as session:
        quote, _ = await make_quote(ctx, session, authorized, document, datetime.now(UTC))
    return _view(ctx, quote, wallet_address_url)


async def get_quote(ctx: RequestContext) -> dict[str, Any]:
    if ctx.client is None:
        # Not public (unlike an incoming payment): without a token, not even whether it exists.
        raise Unauthorized("this operation needs an access token: Authorization: GNAP <token>")
    try:
        quote_id = uuid.UUID(ctx.path_params["id"])
    except ValueError:
        raise NotFound("no such quote") from None
    async with ctx.services.sessions() as session:
        row = (
            await session.execute(
                sa.select(Quote, col(WalletAddress.path))
                .join(WalletAddress, col(WalletAddress.id) == col(Quote.wallet_address_id))
                .where(col(Quote.id) == quote_id)
            )
        ).one_or_none()
    if row is None:
        raise NotFound("no such quote")
    quote, path = row
    wallet_address_url = ctx.settings.public_url + path
    authorized = await authorize(ctx, RESOURCE_TYPE, "read", wallet_address_url)
    authorized.check_own(
        quote.client_wallet_address, quote.client_key_thumbprint, "read of another client's quote"
    )
    return _view(ctx, quote, wallet_address_url)
