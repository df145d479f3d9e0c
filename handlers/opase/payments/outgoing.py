"""Outgoing payments between two wallet addresses of this ASE, on its ledger.

A payment's life, in three transactions, each all-or-nothing:

1. `start` (in the create request's transaction, with the quote taken and the grant's
   limits reserved by the caller): the debit amount is reserved on the sender's account, a
   pending transfer to the send asset's settlement account, and the payment is stored as
   `sending` with an `outgoing_payment.created` event.
2. `execute` settles it: the incoming payment receives the receive amount (one conditional
   UPDATE: only while it is open, unexpired and below its cap), the reservation is posted,
   and the settlement accounts pay the receiver and the fees accounts. The ASE's settlement
   account in each asset is the counterparty of the conversion: for one asset the legs net
   to zero on it; across two, it keeps the send-asset debit and pays out in the receive asset.
3. `fail`, when the receiver refuses or the reservation has expired: the grant's spent sums
   and the reservation are given back; the payment ends `failed` with its reason.

The request that creates a payment executes it at once after its commit (`PaymentRunner`);
a worker (`run_due`) takes up every payment still `sending` past its `next_attempt_at`,
so a payment whose process died is finished by another or after a restart. Claims are
conditional UPDATEs of `state`: two executors never both settle one payment.

Lock order, the same in every transaction so none can deadlock: the payment row, the
incoming payment row, the grant's spending row, then the ledger accounts (all at once,
sorted).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from opase.amounts import wire_amount
from opase.api.resource.common import wire_time
from opase.api.resource.incoming_payment import incoming_payment_view
from opase.authorization.spending import Reservation, release
from opase.ledger import (
    BalanceOverflow,
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
from opase.settings import Settings
from opase.storage.tables import (
    OUTGOING_PAYMENT_FAILURE_LENGTH_MAX,
    IncomingPayment,
    OutgoingPayment,
    Quote,
    WalletAddress,
    sa_table,
    utc_now,
)
from opase.webhooks.liquidity import note_available_balance
from opase.webhooks.outbox import enqueue

log = logging.getLogger(__name__)

RESOURCE_PATH: Final = "/outgoing-payments"
RESERVATION_TIMEOUT_S: Final = 24 * 60 * 60
"""How long a payment's funds stay reserved: past it, a payment that could not be settled
(its executors kept failing) fails and its funds go back."""
RETRY_DELAY_S_MAX: Final = 300
WORKER_BATCH_MAX: Final = 50
WORKER_IDLE_S: Final = 1.0


class PaymentRefused(Exception):
    """A reason the payment can never be settled: it fails with this message."""


@dataclass(frozen=True, slots=True)
class PaymentRecord:
    payment: OutgoingPayment
    quote: Quote
    wallet_address_path: str


def _ledger_key(payment_id: uuid.UUID, step: str) -> str:
    return f"outgoing-payment:{payment_id}:{step}"


def view(settings: Settings, record: PaymentRecord) -> dict[str, Any]:
    """The spec's `outgoing-payment`."""
    payment, quote = record.payment, record.quote
    debit_asset = (quote.debit_asset_code, quote.debit_asset_scale)
    document: dict[str, Any] = {
        "id": f"{settings.resource_server_url}{RESOURCE_PATH}/{payment.id}",
        "walletAddress": settings.public_url + record.wallet_address_path,
        "failed": payment.state == "failed",
        "receiver": quote.receiver,
        "receiveAmount": wire_amount(
            quote.receive_amount_minor, quote.receive_asset_code, quote.receive_asset_scale
        ),
        "debitAmount": wire_amount(quote.debit_amount_minor, *debit_asset),
        "sentAmount": wire_amount(payment.sent_amount_minor, *debit_asset),
        "createdAt": wire_time(payment.created_at),
    }
    if payment.quote_shown:
        document["quoteId"] = f"{settings.resource_server_url}/quotes/{quote.id}"
    if payment.metadata_ is not None:
        document["metadata"] = payment.metadata_
    return document


def _event_data(settings: Settings, record: PaymentRecord) -> dict[str, Any]:
    data = view(settings, record)
    if record.payment.failure_reason is not None:
        data["failureReason"] = record.payment.failure_reason
    return data


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
        wallet_address_url=settings.public_url + wallet_address_path,
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


async def _receive(
    session: AsyncSession, incoming_payment_id: uuid.UUID, amount_minor: int, now: datetime
) -> bool:
    """Credit the incoming payment's `receivedAmount`, completing it at its cap; refused
    (PaymentRefused) once it is completed or expired, or past its cap. True when this
    completed it."""
    table = sa_table(IncomingPayment)
    cap, received = table.c.incoming_amount_minor, table.c.received_amount_minor
    after = received + sa.literal(amount_minor, sa.BigInteger)
    updated = (
        await session.execute(
            sa.update(table)
            .where(
                table.c.id == incoming_payment_id,
                table.c.completed_at.is_(None),
                table.c.expires_at > now,
                sa.or_(cap.is_(None), after <= cap),
            )
            .values(
                received_amount_minor=after,
                completed_at=sa.case((sa.and_(cap.is_not(None), after >= cap), now), else_=None),
                updated_at=now,
            )
            .returning(table.c.completed_at)
        )
    ).one_or_none()
    if updated is not None:
        return updated.completed_at is not None
    incoming = await session.get(IncomingPayment, incoming_payment_id, populate_existing=True)
    assert incoming is not None  # a quote's foreign key
    if incoming.completed_at is not None:
        raise PaymentRefused("the receiver incoming payment is completed")
    if incoming.expires_at <= now:
        raise PaymentRefused("the receiver incoming payment has expired")
    raise PaymentRefused("the payment would take the receiver past its incomingAmount")


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
    completed_incoming = await _receive(
        session, quote.incoming_payment_id, quote.receive_amount_minor, now
    )
    incoming = await session.get(IncomingPayment, quote.incoming_payment_id)
    assert incoming is not None
    sender = await wallet_account(session, payment.wallet_address_id)
    receiver = await wallet_account(session, incoming.wallet_address_id)
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
    if completed_incoming:
        await enqueue(
            session,
            "incoming_payment.completed",
            await incoming_payment_view(session, settings, quote.incoming_payment_id),
            now=now,
        )
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
            pass  # `void_expired` released it already: the funds are back either way
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


def _retry_delay_s(lease_s: int, attempts: int) -> int:
    """The lease of a payment's next try: doubling from the lease, to at most 5 min."""
    delay_s: int = lease_s * 2 ** min(attempts, 10)
    return min(delay_s, max(lease_s, RETRY_DELAY_S_MAX))


async def _claim(
    sessions: async_sessionmaker[AsyncSession], lease_s: int, now: datetime, count_max: int
) -> list[uuid.UUID]:
    """Due sending payments, each leased to this caller by one conditional UPDATE."""
    table = sa_table(OutgoingPayment)
    async with sessions() as session:
        due = (
            await session.execute(
                sa.select(table.c.id, table.c.attempts)
                .where(table.c.state == "sending", table.c.next_attempt_at <= now)
                .order_by(table.c.next_attempt_at)
                .limit(count_max)
            )
        ).all()
        claimed = []
        for payment_id, attempts in due:
            leased = await session.execute(
                sa.update(table)
                .where(
                    table.c.id == payment_id,
                    table.c.state == "sending",
                    table.c.next_attempt_at <= now,
                )
                .values(
                    attempts=table.c.attempts + 1,
                    next_attempt_at=now + timedelta(seconds=_retry_delay_s(lease_s, attempts)),
                )
            )
            if leased.rowcount == 1:  # type: ignore[attr-defined]
                claimed.append(payment_id)
        await session.commit()
    return claimed


async def run_due(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    *,
    now: datetime | None = None,
    count_max: int = WORKER_BATCH_MAX,
) -> int:
    """One pass of the worker: execute every payment whose lease has run out; the count."""
    lease_s = settings.outgoing_payment_lease_s
    claimed = await _claim(sessions, lease_s, now or utc_now(), count_max)
    for payment_id in claimed:
        try:
            await execute(sessions, settings, payment_id)
        except Exception:
            log.exception("outgoing payment %s: settling failed; will retry", payment_id)
    return len(claimed)


class PaymentRunner:
    """Executes payments in this process: each new one at once, in the background of the
    request that created it, and (with `run_forever`) every one the worker finds due."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], settings: Settings) -> None:
        self._sessions = sessions
        self._settings = settings
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self, payment_id: uuid.UUID) -> None:
        task = asyncio.get_running_loop().create_task(self._execute(payment_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _execute(self, payment_id: uuid.UUID) -> None:
        try:
            await execute(self._sessions, self._settings, payment_id)
        except Exception:
            # Left sending: the worker takes it up when its lease runs out.
            log.exception("outgoing payment %s: settling failed; will retry", payment_id)

    async def idle(self) -> None:
        """Wait until the payments started here are settled (for tests and shutdown)."""
        while self._tasks:
            await asyncio.gather(*tuple(self._tasks), return_exceptions=True)

    async def run_forever(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                count = await run_due(self._sessions, self._settings)
            except Exception:
                log.exception("outgoing payment worker: pass failed; retrying")
                count = 0
            if count == 0:
                try:
                    await asyncio.wait_for(stop.wait(), WORKER_IDLE_S)
                except TimeoutError:
                    pass
