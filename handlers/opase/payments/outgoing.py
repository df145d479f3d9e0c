"""Outgoing payments between two wallet addresses of this ASE, on its ledger.

A payment's life, in three transactions, each all-or-nothing:

1. `create` (in the create request's transaction): take the quote (`take_quote`) or price one
   (`incomingPayment` + `debitAmount`), check the grant's `receiver` and the assets of its
   limits, count the payment against the grant's limits (`spending.reserve`, one
   conditional UPDATE, so concurrent payments cannot overspend), reserve the debit on the
   sender's account (a pending transfer to the send asset's settlement account) and store
   the payment as `sending` with an `outgoing_payment.created` event.
2. `execute` settles it: the receiver is credited the receive amount (`incoming.receive`,
   the one crediting function: only while it still receives, never past its cap), the
   reservation is posted, and the settlement accounts pay the receiver and the fees
   accounts. The ASE's settlement account in each asset is the counterparty of the
   conversion: for one asset the legs net to zero on it; across two, it keeps the
   send-asset debit and pays out in the receive asset.
3. `fail`, when the receiver refuses or the reservation has expired: the grant's spent sums
   and the reservation are given back; the payment ends `failed` with its reason.

The request that creates a payment executes it at once after its commit; a worker takes up
every payment still `sending` past its lease (`opase.payments.runner`), so a payment whose
process died is finished by another or after a restart. Claims are conditional UPDATEs of
`state`: two executors never both settle one payment.

Lock order, the same in every transaction so none can deadlock: the payment row, the
incoming payment row, the grant's spending row, then the ledger accounts (all at once,
sorted).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from opase.amounts import Amount
from opase.authorization.spending import (
    LimitExceeded,
    OutsideInterval,
    Reservation,
    SpendingNotFound,
    release,
    spent,
)
from opase.authorization.spending import (
    reserve as reserve_spending,
)
from opase.ledger import (
    BalanceOverflow,
    InsufficientFunds,
    PendingExpired,
    TransferNotPending,
    balance_of,
    fees_account,
    lock_accounts,
    post_pending,
    reserve,
    settlement_account,
    transfer,
    void_pending,
    wallet_account,
)
from opase.payments import incoming, quotes, views
from opase.payments.refusals import NotPermitted, ReceiverClosed
from opase.payments.urls import wallet_address_url
from opase.settings import Settings
from opase.storage.tables import (
    OUTGOING_PAYMENT_FAILURE_LENGTH_MAX,
    IncomingPayment,
    LedgerAccount,
    OutgoingPayment,
    Quote,
    WalletAddress,
    sa_table,
    utc_now,
)
from opase.wallets.directory import WalletAddressRecord
from opase.webhooks.liquidity import note_available_balance
from opase.webhooks.outbox import enqueue

log = logging.getLogger(__name__)

RESERVATION_TIMEOUT_S: Final = 24 * 60 * 60
"""How long a payment's funds stay reserved: past it, a payment that could not be settled
(its executors kept failing) fails and its funds go back (`ledger.void_expired`, a worker
loop, releases a reservation nobody voided)."""


class PaymentRefused(Exception):
    """A reason the payment can never be settled: it fails with this message."""


@dataclass(frozen=True, slots=True)
class PaymentRecord:
    payment: OutgoingPayment
    quote: Quote
    wallet_address_path: str


@dataclass(frozen=True, slots=True)
class SpentAmounts:
    """What payments under a grant have spent in its current interval; None where no asset
    can be named (receivers' assets differ, so a receive sum needs a `receiveAmount` limit)."""

    debit: Amount | None
    receive: Amount | None


@dataclass(frozen=True, slots=True)
class GrantUse:
    """The outgoing-payment grant a payment is made under, as the authorization server
    answered for the request."""

    grant_id: uuid.UUID
    limits: dict[str, Any]
    client_wallet_address: str | None
    client_key_thumbprint: str | None


def view(settings: Settings, record: PaymentRecord) -> dict[str, Any]:
    """The payment's `outgoing-payment` document."""
    url = wallet_address_url(settings, record.wallet_address_path)
    return views.outgoing_payment(settings, record.payment, record.quote, url)


def _event_data(settings: Settings, record: PaymentRecord) -> dict[str, Any]:
    url = wallet_address_url(settings, record.wallet_address_path)
    return views.outgoing_payment_event(settings, record.payment, record.quote, url)


def _ledger_key(payment_id: uuid.UUID, step: str) -> str:
    return f"outgoing-payment:{payment_id}:{step}"


def _select_records() -> sa.Select[OutgoingPayment, Quote, str]:
    return (
        sa.select(OutgoingPayment, Quote, col(WalletAddress.path))
        .join(Quote, col(Quote.id) == col(OutgoingPayment.quote_id))
        .join(WalletAddress, col(WalletAddress.id) == col(OutgoingPayment.wallet_address_id))
    )


async def find(session: AsyncSession, payment_id: uuid.UUID) -> PaymentRecord | None:
    row = (
        await session.execute(
            _select_records()
            .where(col(OutgoingPayment.id) == payment_id)
            .execution_options(populate_existing=True)
        )
    ).one_or_none()
    if row is None:
        return None
    payment, quote, path = row
    return PaymentRecord(payment, quote, path)


async def quotes_of(
    session: AsyncSession, payments: list[OutgoingPayment]
) -> dict[uuid.UUID, Quote]:
    """The quotes `payments` paid, by id (one query for a page of payments)."""
    quote_ids = [payment.quote_id for payment in payments]
    found = await session.execute(sa.select(Quote).where(col(Quote.id).in_(quote_ids)))
    return {quote.id: quote for quote in found.scalars()}


def _asset(amount: dict[str, Any] | None) -> tuple[str, int] | None:
    return None if amount is None else (amount["assetCode"], amount["assetScale"])


def _check_limits(limits: dict[str, Any], quote: Quote) -> None:
    """The grant's `receiver` and the assets of its amount limits (the amounts themselves
    are counted by `spending.reserve`)."""
    receiver = limits.get("receiver")
    if receiver is not None and receiver != quote.receiver:
        raise NotPermitted(f"the grant allows payments to {receiver} only")
    debit_asset = _asset(limits.get("debitAmount"))
    if debit_asset is not None and debit_asset != (quote.debit_asset_code, quote.debit_asset_scale):
        raise NotPermitted("the grant's debitAmount limit is in another asset")
    receive_asset = _asset(limits.get("receiveAmount"))
    receive = (quote.receive_asset_code, quote.receive_asset_scale)
    if receive_asset is not None and receive_asset != receive:
        raise NotPermitted(
            "the grant's receiveAmount limit is in another asset than the receiver's"
        )


async def _count_against_grant(
    session: AsyncSession, grant_id: uuid.UUID, quote: Quote, now: datetime
) -> Reservation:
    try:
        return await reserve_spending(
            session,
            grant_id,
            at=now,
            debit_minor=quote.debit_amount_minor,
            receive_minor=quote.receive_amount_minor,
        )
    except (LimitExceeded, OutsideInterval) as exc:
        raise NotPermitted(str(exc)) from None
    except SpendingNotFound:
        raise NotPermitted("the access token's grant allows no outgoing payments") from None


async def spent_amounts(
    session: AsyncSession,
    grant_id: uuid.UUID,
    limits: dict[str, Any],
    debit_asset: tuple[str, int] | None,
    now: datetime,
) -> SpentAmounts:
    """What payments under the grant have spent in the current interval: the debit in the
    asset of the grant's `debitAmount` limit, else `debit_asset` (the sending wallet's);
    the receive amount in the asset of its `receiveAmount` limit. SpendingNotFound for a
    grant that allows no outgoing payments."""
    try:
        used = await spent(session, grant_id, at=now)
        debit_minor, receive_minor = used.debit_minor, used.receive_minor
    except OutsideInterval:
        debit_minor = receive_minor = 0  # no current interval: nothing spent in it
    debit_asset = _asset(limits.get("debitAmount")) or debit_asset
    receive_asset = _asset(limits.get("receiveAmount"))
    return SpentAmounts(
        None if debit_asset is None else Amount(debit_minor, *debit_asset),
        None if receive_asset is None else Amount(receive_minor, *receive_asset),
    )


async def create(
    session: AsyncSession,
    settings: Settings,
    *,
    sender: WalletAddressRecord,
    grant: GrantUse,
    quote_url: str | None,
    incoming_payment_url: str | None,
    debit: Amount | None,
    metadata: dict[str, Any] | None,
    now: datetime,
) -> tuple[PaymentRecord, SpentAmounts]:
    """A new payment from `sender` under `grant`, in the caller's transaction: from the quote
    `quote_url`, or priced here for `incoming_payment_url` + `debit` (fixed-send); with what
    the grant has spent after it. InvalidPaymentRequest or NotPermitted, to roll back."""
    if quote_url is not None:
        quote = await quotes.take(session, settings, quote_url, sender, now)
    else:
        assert incoming_payment_url is not None and debit is not None
        quote = await quotes.create(
            session,
            settings,
            sender=sender,
            receiver_url=incoming_payment_url,
            debit=debit,
            receive=None,
            client_wallet_address=grant.client_wallet_address,
            client_key_thumbprint=grant.client_key_thumbprint,
            now=now,
        )
        quote.used_at = now
    _check_limits(grant.limits, quote)
    spending = await _count_against_grant(session, grant.grant_id, quote, now)
    try:
        record = await start(
            session,
            settings,
            quote=quote,
            wallet_address_path=sender.path,
            grant_id=grant.grant_id,
            spending=spending,
            client_wallet_address=grant.client_wallet_address,
            client_key_thumbprint=grant.client_key_thumbprint,
            quote_shown=quote_url is not None,
            metadata=metadata,
            now=now,
        )
    except InsufficientFunds:
        raise NotPermitted("the wallet address's balance cannot cover the debitAmount") from None
    debit_asset = (sender.asset_code, sender.asset_scale)
    spent_now = await spent_amounts(session, grant.grant_id, grant.limits, debit_asset, now)
    return record, spent_now


async def start(
    session: AsyncSession,
    settings: Settings,
    *,
    quote: Quote,
    wallet_address_path: str,
    grant_id: uuid.UUID,
    spending: Reservation,
    client_wallet_address: str | None,
    client_key_thumbprint: str | None,
    quote_shown: bool,
    metadata: dict[str, Any] | None,
    now: datetime,
) -> PaymentRecord:
    """Reserve the debit on the sender's account and store the payment, in the caller's
    transaction; InsufficientFunds (nothing written) when the sender cannot cover it."""
    assert spending.debit_minor == quote.debit_amount_minor
    assert spending.receive_minor == quote.receive_amount_minor
    payment_id = uuid.uuid4()
    sender = await wallet_account(session, quote.wallet_address_id)
    settlement = await settlement_account(session, sender.asset_id)
    held = await reserve(
        session,
        debit_account_id=sender.id,
        credit_account_id=settlement.id,
        amount_minor=quote.debit_amount_minor,
        idempotency_key=_ledger_key(payment_id, "reserve"),
        timeout_s=RESERVATION_TIMEOUT_S,
    )
    available_after_minor = balance_of(sender).available_minor
    await note_available_balance(
        session,
        wallet_address_url=wallet_address_url(settings, wallet_address_path),
        asset_code=quote.debit_asset_code,
        asset_scale=quote.debit_asset_scale,
        threshold_minor=settings.liquidity_low_threshold_minor,
        before_minor=available_after_minor + quote.debit_amount_minor,
        after_minor=available_after_minor,
    )
    payment = OutgoingPayment(
        id=payment_id,
        wallet_address_id=quote.wallet_address_id,
        quote_id=quote.id,
        quote_shown=quote_shown,
        grant_id=grant_id,
        client_wallet_address=client_wallet_address,
        client_key_thumbprint=client_key_thumbprint,
        metadata_=metadata,
        ledger_reservation_id=held.id,
        spending_interval_start=spending.interval_start,
        # The creating request executes it at once; the worker waits out this lease first.
        next_attempt_at=now + timedelta(seconds=settings.outgoing_payment_lease_s),
        created_at=now,
        updated_at=now,
    )
    session.add(payment)
    await session.flush()
    record = PaymentRecord(payment, quote, wallet_address_path)
    await enqueue(session, "outgoing_payment.created", _event_data(settings, record), now=now)
    return record


async def _finish(
    session: AsyncSession, payment_id: uuid.UUID, now: datetime, **values: Any
) -> bool:
    """Move a `sending` payment to its end state; False when it is no longer sending. The
    UPDATE takes the payment's row lock first: a racing executor waits, then finds it done."""
    finished = await session.execute(
        sa.update(sa_table(OutgoingPayment))
        .where(
            sa_table(OutgoingPayment).c.id == payment_id,
            sa_table(OutgoingPayment).c.state == "sending",
        )
        .values(finished_at=now, updated_at=now, **values)
    )
    return finished.rowcount == 1  # type: ignore[attr-defined,no-any-return]


async def _deliver(
    session: AsyncSession, settings: Settings, quote: Quote, now: datetime
) -> LedgerAccount:
    """Hand the receive amount to the receiver, in the caller's transaction; the account
    the ledger credits for it. A receiver of this ASE is credited by `incoming.receive`;
    a receiver at another ASE will be paid here by the STREAM sender, its peer's liquidity
    account credited. PaymentRefused when the receiver takes no more."""
    if quote.incoming_payment_id is None:
        raise PaymentRefused(quotes.OTHER_ASE)
    try:
        await incoming.receive(
            session, settings, quote.incoming_payment_id, quote.receive_amount_minor, now
        )
    except ReceiverClosed as closed:
        raise PaymentRefused(str(closed)) from None
    receiving = await session.get(IncomingPayment, quote.incoming_payment_id)
    assert receiving is not None  # the quote's foreign key
    return await wallet_account(session, receiving.wallet_address_id)


async def _settle(session: AsyncSession, settings: Settings, payment_id: uuid.UUID) -> str:
    """Settle a sending payment in the caller's transaction; its state after."""
    now = utc_now()
    record = await find(session, payment_id)
    assert record is not None, payment_id
    payment, quote = record.payment, record.quote
    if payment.state != "sending":
        return payment.state
    sent_minor = quote.debit_amount_minor - quote.sending_fee_minor
    if not await _finish(session, payment_id, now, state="completed", sent_amount_minor=sent_minor):
        return "finished elsewhere"
    receiver = await _deliver(session, settings, quote, now)
    sender = await wallet_account(session, payment.wallet_address_id)
    send_settlement = await settlement_account(session, sender.asset_id)
    send_fees = await fees_account(session, sender.asset_id)
    if receiver.asset_id == sender.asset_id:  # one asset: its accounts are the same rows
        receive_settlement, receive_fees = send_settlement, send_fees
    else:
        receive_settlement = await settlement_account(session, receiver.asset_id)
        receive_fees = await fees_account(session, receiver.asset_id)
    accounts = (sender, receiver, send_settlement, receive_settlement, send_fees, receive_fees)
    await lock_accounts(session, (account.id for account in accounts))
    try:
        await post_pending(
            session,
            payment.ledger_reservation_id,
            idempotency_key=_ledger_key(payment_id, "post"),
            now=now,
        )
    except PendingExpired:
        raise PaymentRefused("the funds reservation expired before the payment settled") from None
    legs = (
        ("sending-fee", send_settlement.id, send_fees.id, quote.sending_fee_minor),
        ("receive", receive_settlement.id, receiver.id, quote.receive_amount_minor),
        ("receiving-fee", receive_settlement.id, receive_fees.id, quote.receiving_fee_minor),
    )
    try:
        for step, debit_id, credit_id, amount_minor in legs:
            if amount_minor > 0:
                await transfer(
                    session,
                    debit_account_id=debit_id,
                    credit_account_id=credit_id,
                    amount_minor=amount_minor,
                    idempotency_key=_ledger_key(payment_id, step),
                )
    except BalanceOverflow as exc:
        raise PaymentRefused(f"the ledger refused the payment: {exc}") from None
    payment.state, payment.sent_amount_minor = "completed", sent_minor
    await enqueue(session, "outgoing_payment.completed", _event_data(settings, record), now=now)
    return "completed"


async def fail(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    payment_id: uuid.UUID,
    reason: str,
) -> str:
    """End a sending payment as failed: give back the grant's spent sums and the funds."""
    now = utc_now()
    reason = reason[:OUTGOING_PAYMENT_FAILURE_LENGTH_MAX]
    async with sessions() as session:
        record = await find(session, payment_id)
        assert record is not None, payment_id
        payment, quote = record.payment, record.quote
        if not await _finish(session, payment_id, now, state="failed", failure_reason=reason):
            return payment.state if payment.state != "sending" else "finished elsewhere"
        spending = Reservation(
            payment.grant_id,
            payment.spending_interval_start,
            quote.debit_amount_minor,
            quote.receive_amount_minor,
        )
        await release(session, spending)
        try:
            await void_pending(
                session,
                payment.ledger_reservation_id,
                idempotency_key=_ledger_key(payment_id, "void"),
                now=now,
                expired_ok=True,
            )
        except TransferNotPending:
            pass  # `ledger.void_expired` released it already: the funds are back either way
        payment.state, payment.failure_reason = "failed", reason
        await enqueue(session, "outgoing_payment.failed", _event_data(settings, record), now=now)
        await session.commit()
    log.info("outgoing payment %s failed: %s", payment_id, reason)
    return "failed"


async def execute(
    sessions: async_sessionmaker[AsyncSession], settings: Settings, payment_id: uuid.UUID
) -> str:
    """Settle a sending payment, or fail it for good; its state after. Any other error
    (the database went away) leaves it sending, for the worker to take up again."""
    try:
        async with sessions() as session:
            state = await _settle(session, settings, payment_id)
            await session.commit()
            return state
    except PaymentRefused as refused:
        return await fail(sessions, settings, payment_id, str(refused))
