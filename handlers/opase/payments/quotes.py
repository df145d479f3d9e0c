"""Quotes: the price of a payment from a wallet address of this ASE to a receiver.

A quote is fixed-send (`debitAmount`), fixed-receive (`receiveAmount`), or neither, when the
receiver has an `incomingAmount` (then the rest it still expects is the receive amount). The
arithmetic, its fees and its rounding live in `opase.pricing.quoting`; this module resolves
the receiver, finds the fees and the rate, and stores the result. `expiresAt` is the earlier
of `quote_lifespan_s` ahead and the receiver's own expiry.

`resolve_receiver` is the one place a receiver URL becomes a `Receiver`: an incoming payment
of this ASE today; an incoming payment at another ASE (read through its Open Payments API,
priced by a STREAM rate probe) with the Interledger rail. Until then such a quote is refused,
never settled by a shortcut between two databases.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Final

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from opase.amounts import Amount
from opase.payments.receiving import closed_reason
from opase.payments.refusals import InvalidPaymentRequest, ReceiverClosed
from opase.payments.urls import INCOMING_PAYMENTS, QUOTES, is_this_ase, local_id
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
from opase.settings import Settings
from opase.storage.tables import (
    Asset,
    IncomingPayment,
    Quote,
    WalletAddress,
    column_values,
    sa_table,
)
from opase.wallets.directory import WalletAddressRecord

OTHER_ASE: Final = "payments to other ASEs need the Interledger rail, not available yet"


@dataclass(frozen=True, slots=True)
class Receiver:
    """Where a quote's money goes: an incoming payment that still receives."""

    url: str
    incoming_payment_id: uuid.UUID | None
    """Its row at this ASE; None for a receiver at another ASE (the quote then refers to it
    by `url` alone)."""
    asset_id: uuid.UUID
    asset_code: str
    asset_scale: int
    expires_at: datetime
    rest_minor: int | None
    """What it still expects before its cap; None when it has no `incomingAmount`."""


async def resolve_receiver(
    session: AsyncSession, settings: Settings, url: str, now: datetime
) -> Receiver:
    """The receiver `url` names, still receiving at `now`; InvalidPaymentRequest (or its
    ReceiverClosed) when it cannot be paid."""
    payment_id = local_id(settings, INCOMING_PAYMENTS, url)
    if payment_id is None:
        if is_this_ase(settings, url):
            raise InvalidPaymentRequest(f"receiver {url} is not an incoming payment")
        raise InvalidPaymentRequest(f"receiver {url} is not at this ASE: {OTHER_ASE}")
    row = (
        await session.execute(
            sa.select(IncomingPayment, Asset, col(WalletAddress.status))
            .join(WalletAddress, col(WalletAddress.id) == col(IncomingPayment.wallet_address_id))
            .join(Asset, col(Asset.id) == col(WalletAddress.asset_id))
            .where(col(IncomingPayment.id) == payment_id)
        )
    ).one_or_none()
    if row is None:
        raise InvalidPaymentRequest(f"receiver {url} is not an incoming payment")
    payment, asset, status = row
    if status != "active":
        raise InvalidPaymentRequest("the receiver's wallet address is not active")
    closed = closed_reason(column_values(payment), now)
    if closed is not None:
        raise ReceiverClosed(closed)
    cap_minor = payment.incoming_amount_minor
    return Receiver(
        url=url,
        incoming_payment_id=payment.id,
        asset_id=asset.id,
        asset_code=asset.code,
        asset_scale=asset.scale,
        expires_at=payment.expires_at,
        rest_minor=None if cap_minor is None else cap_minor - payment.received_amount_minor,
    )


def _amount_minor(name: str, amount: Amount, code: str, scale: int) -> int:
    if amount.asset != (code, scale):
        raise InvalidPaymentRequest(f"{name} must be in {code} (scale {scale})")
    return amount.value_minor


async def _rate(settings: Settings, session: AsyncSession, base: str, counter: str) -> Decimal:
    if base == counter:
        return Decimal(1)  # the same asset converts one to one, whatever a table says
    try:
        rates = await rates_for(settings, session, base)
    except ExchangeRatesUnavailable:
        raise InvalidPaymentRequest(
            f"exchange rates from {base} are unavailable; try again"
        ) from None
    rate = rates.get(counter)
    if rate is None:
        raise InvalidPaymentRequest(f"no exchange rate from {base} to {counter}")
    return rate


async def _asset_id(session: AsyncSession, code: str, scale: int) -> uuid.UUID:
    query = select(Asset.id).where(col(Asset.code) == code, col(Asset.scale) == scale)
    asset_id: uuid.UUID = (await session.execute(query)).scalar_one()
    return asset_id


def _price(
    terms: QuoteTerms,
    sender: WalletAddressRecord,
    receiver: Receiver,
    debit: Amount | None,
    receive: Amount | None,
) -> QuoteAmounts:
    """The amounts for what the request fixes."""
    rest_minor = receiver.rest_minor
    try:
        if debit is not None:
            debit_minor = _amount_minor("debitAmount", debit, sender.asset_code, sender.asset_scale)
            amounts = fixed_send(terms, debit_minor)
        else:
            if receive is not None:
                receive_minor = _amount_minor(
                    "receiveAmount", receive, receiver.asset_code, receiver.asset_scale
                )
            elif rest_minor is None:
                raise InvalidPaymentRequest(
                    "the receiver has no incomingAmount: give debitAmount or receiveAmount"
                )
            else:
                receive_minor = rest_minor
            amounts = fixed_receive(terms, receive_minor)
    except QuoteRefused as exc:
        raise InvalidPaymentRequest(str(exc)) from None
    if rest_minor is not None and amounts.receive_minor > rest_minor:
        raise InvalidPaymentRequest(
            f"the quote would deliver {amounts.receive_minor}, more than the {rest_minor} "
            "the incoming payment still expects"
        )
    return amounts


async def create(
    session: AsyncSession,
    settings: Settings,
    *,
    sender: WalletAddressRecord,
    receiver_url: str,
    debit: Amount | None,
    receive: Amount | None,
    client_wallet_address: str | None,
    client_key_thumbprint: str | None,
    now: datetime,
) -> Quote:
    """Price and store a quote in the caller's transaction: fixed-send when `debit` is
    given, else fixed-receive (`receive`, or the rest the receiver expects);
    InvalidPaymentRequest when it makes no quote."""
    receiver = await resolve_receiver(session, settings, receiver_url, now)
    send_asset_id = await _asset_id(session, sender.asset_code, sender.asset_scale)
    rate = await _rate(settings, session, sender.asset_code, receiver.asset_code)
    terms = QuoteTerms(
        rate=rate,
        send_scale=sender.asset_scale,
        receive_scale=receiver.asset_scale,
        sending_fee=FeeTerms.of(await fee_for(session, send_asset_id, "sending")),
        receiving_fee=FeeTerms.of(await fee_for(session, receiver.asset_id, "receiving")),
    )
    amounts = _price(terms, sender, receiver, debit, receive)
    quote = Quote(
        wallet_address_id=sender.id,
        receiver=receiver.url,
        incoming_payment_id=receiver.incoming_payment_id,
        client_wallet_address=client_wallet_address,
        client_key_thumbprint=client_key_thumbprint,
        debit_amount_minor=amounts.debit_minor,
        debit_asset_code=sender.asset_code,
        debit_asset_scale=sender.asset_scale,
        receive_amount_minor=amounts.receive_minor,
        receive_asset_code=receiver.asset_code,
        receive_asset_scale=receiver.asset_scale,
        sending_fee_minor=amounts.sending_fee_minor,
        receiving_fee_minor=amounts.receiving_fee_minor,
        rate=rate_text(rate),
        expires_at=min(now + timedelta(seconds=settings.quote_lifespan_s), receiver.expires_at),
        created_at=now,
    )
    session.add(quote)
    return quote


async def find(session: AsyncSession, quote_id: uuid.UUID) -> tuple[Quote, str] | None:
    """The quote with its wallet address's path; None when there is none."""
    row = (
        await session.execute(
            sa.select(Quote, col(WalletAddress.path))
            .join(WalletAddress, col(WalletAddress.id) == col(Quote.wallet_address_id))
            .where(col(Quote.id) == quote_id)
        )
    ).one_or_none()
    if row is None:
        return None
    quote, path = row
    return quote, path


async def take(
    session: AsyncSession,
    settings: Settings,
    url: str,
    sender: WalletAddressRecord,
    now: datetime,
) -> Quote:
    """The quote `url` names, marked used by one conditional UPDATE (two payments cannot
    both take it); InvalidPaymentRequest when it cannot pay a payment from `sender`."""
    quote_id = local_id(settings, QUOTES, url)
    quote = None if quote_id is None else await session.get(Quote, quote_id)
    if quote is None:
        raise InvalidPaymentRequest(f"quoteId {url} is not a quote of this ASE")
    if quote.wallet_address_id != sender.id:
        raise InvalidPaymentRequest("the quote is for another wallet address")
    if quote.expires_at <= now:
        raise InvalidPaymentRequest("the quote has expired: ask for a new one")
    table = sa_table(Quote)
    taken = await session.execute(
        sa.update(table)
        .where(table.c.id == quote.id, table.c.used_at.is_(None), table.c.expires_at > now)
        .values(used_at=now)
    )
    if taken.rowcount != 1:  # type: ignore[attr-defined]
        raise InvalidPaymentRequest("the quote was already used by another outgoing payment")
    return quote
