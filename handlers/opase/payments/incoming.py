"""Incoming payments: money a wallet address of this ASE expects.

An incoming payment receives until its `incomingAmount` (the cap) is reached, it is
completed, or it expires (`opase.payments.receiving`); `expiresAt` is always set (at most
`incoming_payment_expiry_s_max` ahead, and that when the client names none), so nothing
receives forever. Its ILP method is a sub-address of this ASE's `ilp_address` and a fresh
32-byte STREAM shared secret.

    new_payment  the rows of a new payment and its `created` event (the caller inserts
                 them, in one statement with its replay claim where it can)
    receive      THE crediting function: an outgoing payment of this ASE settling into it
                 today, the STREAM receiver next; completes it at its cap
    complete     its client completes it
    report_expired  the `expired` events of payments whose expiry passed (a worker loop)
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from opase import base64url
from opase.amounts import AMOUNT_MINOR_MAX, Amount
from opase.payments import views
from opase.payments.receiving import closed_reason, not_completed_sql, still_receiving_sql
from opase.payments.refusals import InvalidPaymentRequest, ReceiverClosed, WrongState
from opase.payments.urls import wallet_address_url
from opase.payments.views import WalletView
from opase.settings import Settings
from opase.storage.tables import (
    Asset,
    IncomingPayment,
    WalletAddress,
    column_values,
    new_row,
    sa_table,
)
from opase.wallets.directory import WalletAddressRecord
from opase.webhooks.outbox import OUTBOX, enqueue, new_event_row

SHARED_SECRET_BYTES: Final = 32
EXPIRY_SWEEP_COUNT_MAX: Final = 100
"""Expired payments one sweep reports; the rest wait for the next."""
TABLE: Final = sa_table(IncomingPayment)

Row = tuple[sa.Table, dict[str, Any]]


@dataclass(frozen=True, slots=True)
class NewIncomingPayment:
    rows: list[Row]
    """The payment and its `incoming_payment.created` outbox event, to insert together."""
    view: dict[str, Any]
    """Its `incoming-payment-with-methods`."""


def _incoming_amount_minor(amount: Amount, wallet: WalletAddressRecord) -> int:
    if amount.asset != (wallet.asset_code, wallet.asset_scale):
        raise InvalidPaymentRequest(
            f"incomingAmount must be in the wallet address's asset "
            f"{wallet.asset_code} (scale {wallet.asset_scale})"
        )
    if not 0 < amount.value_minor <= AMOUNT_MINOR_MAX:
        raise InvalidPaymentRequest(f"incomingAmount must be from 1 to {AMOUNT_MINOR_MAX}")
    return amount.value_minor


def _expires_at(settings: Settings, asked: datetime | None, now: datetime) -> datetime:
    latest = now + timedelta(seconds=settings.incoming_payment_expiry_s_max)
    if asked is None:
        return latest
    if asked.tzinfo is None:
        raise InvalidPaymentRequest("expiresAt needs a time zone offset")
    if asked <= now:
        raise InvalidPaymentRequest("expiresAt must be in the future")
    if asked > latest:
        raise InvalidPaymentRequest(
            f"expiresAt may be at most {settings.incoming_payment_expiry_s_max} s ahead"
        )
    return asked.astimezone(UTC)


def new_payment(
    settings: Settings,
    wallet: WalletAddressRecord,
    *,
    client_wallet_address: str | None,
    client_key_thumbprint: str | None,
    incoming_amount: Amount | None,
    expires_at: datetime | None,
    metadata: dict[str, Any] | None,
    now: datetime,
) -> NewIncomingPayment:
    """A new incoming payment for `wallet`, created by the client named by exactly one of
    `client_*`; InvalidPaymentRequest for an amount or expiry it cannot have."""
    assert (client_wallet_address is None) != (client_key_thumbprint is None)
    payment = new_row(
        IncomingPayment,
        wallet_address_id=wallet.id,
        client_wallet_address=client_wallet_address,
        client_key_thumbprint=client_key_thumbprint,
        incoming_amount_minor=(
            None if incoming_amount is None else _incoming_amount_minor(incoming_amount, wallet)
        ),
        expires_at=_expires_at(settings, expires_at, now),
        metadata_=metadata,
        shared_secret=base64url.encode(secrets.token_bytes(SHARED_SECRET_BYTES)),
        created_at=now,
        updated_at=now,
    )
    shown = WalletView(
        wallet_address_url(settings, wallet.path), wallet.asset_code, wallet.asset_scale
    )
    event = new_event_row(
        "incoming_payment.created", views.incoming_payment(settings, payment, shown), now=now
    )
    return NewIncomingPayment(
        [(TABLE, payment), (OUTBOX, event)],
        views.incoming_payment_with_methods(settings, payment, shown),
    )


_FIND_BY_ID: Final = (
    # Built once: on the hot path of every get, only the parameter changes.
    sa.select(IncomingPayment, col(WalletAddress.path), col(Asset.code), col(Asset.scale))
    .join(WalletAddress, col(WalletAddress.id) == col(IncomingPayment.wallet_address_id))
    .join(Asset, col(Asset.id) == col(WalletAddress.asset_id))
    .where(col(IncomingPayment.id) == sa.bindparam("payment_id"))
)


async def find(
    session: AsyncSession, settings: Settings, payment_id: uuid.UUID, *, fresh: bool = False
) -> tuple[IncomingPayment, WalletView] | None:
    """The payment with its wallet address as its documents show it; None when there is
    none. `fresh`: read past what the session already holds of it."""
    statement = _FIND_BY_ID.execution_options(populate_existing=True) if fresh else _FIND_BY_ID
    row = (await session.execute(statement, {"payment_id": payment_id})).one_or_none()
    if row is None:
        return None
    payment, path, asset_code, asset_scale = row
    return payment, WalletView(wallet_address_url(settings, path), asset_code, asset_scale)


async def event_view(
    session: AsyncSession, settings: Settings, payment_id: uuid.UUID
) -> dict[str, Any]:
    """The payment as its webhook events show it, read in the caller's transaction."""
    found = await find(session, settings, payment_id, fresh=True)
    assert found is not None, payment_id
    payment, wallet = found
    return views.incoming_payment(settings, column_values(payment), wallet)


async def complete(
    session: AsyncSession,
    settings: Settings,
    payment: IncomingPayment,
    wallet: WalletView,
    now: datetime,
) -> dict[str, Any]:
    """Complete a payment that still receives, with its `completed` event, in the caller's
    transaction; its view after. WrongState once it is completed or expired."""
    # One conditional UPDATE: a payment racing to its cap or expiry cannot also be completed
    # here, and completing twice is a conflict (as Rafiki's WrongState).
    completed = await session.execute(
        sa.update(TABLE)
        .where(TABLE.c.id == payment.id, *still_receiving_sql(now))
        .values(completed_at=now, updated_at=now)
    )
    if completed.rowcount != 1:  # type: ignore[attr-defined]
        state = "expired" if payment.expires_at <= now else "completed"
        raise WrongState(f"the incoming payment is already {state}")
    await session.refresh(payment)
    view = views.incoming_payment(settings, column_values(payment), wallet)
    await enqueue(session, "incoming_payment.completed", view, now=now)
    return view


async def receive(
    session: AsyncSession,
    settings: Settings,
    payment_id: uuid.UUID,
    amount_minor: int,
    now: datetime,
) -> bool:
    """Credit `amount_minor` to the payment's `receivedAmount` in the caller's transaction,
    completing it (with its `completed` event) when that reaches its cap; True when this
    completed it. ReceiverClosed, with nothing written, once it is completed or expired or
    when the amount would take it past its cap. Takes the payment's row lock."""
    assert 0 < amount_minor <= AMOUNT_MINOR_MAX, amount_minor
    cap, received = TABLE.c.incoming_amount_minor, TABLE.c.received_amount_minor
    after = received + sa.literal(amount_minor, sa.BigInteger)
    updated = (
        await session.execute(
            sa.update(TABLE)
            .where(
                TABLE.c.id == payment_id,
                *still_receiving_sql(now),
                sa.or_(cap.is_(None), after <= cap),
            )
            .values(
                received_amount_minor=after,
                completed_at=sa.case((sa.and_(cap.is_not(None), after >= cap), now), else_=None),
                updated_at=now,
            )
            .returning(TABLE.c.completed_at)
        )
    ).one_or_none()
    if updated is None:
        incoming = await session.get(IncomingPayment, payment_id, populate_existing=True)
        assert incoming is not None, payment_id
        raise ReceiverClosed(closed_reason(column_values(incoming), now) or "over_cap")
    if updated.completed_at is None:
        return False
    view = await event_view(session, settings, payment_id)
    await enqueue(session, "incoming_payment.completed", view, now=now)
    return True


async def report_expired(session: AsyncSession, settings: Settings, now: datetime) -> int:
    """Put `incoming_payment.expired` in the outbox for payments whose expiry has passed
    before they completed, each once (at most `EXPIRY_SWEEP_COUNT_MAX` a call); how many.
    The caller commits: the mark and the event go together."""
    unreported = (TABLE.c.expiry_reported_at.is_(None), TABLE.c.expires_at <= now)
    rows = (
        await session.execute(
            sa.select(IncomingPayment, col(WalletAddress.path), col(Asset.code), col(Asset.scale))
            .join(WalletAddress, col(WalletAddress.id) == col(IncomingPayment.wallet_address_id))
            .join(Asset, col(Asset.id) == col(WalletAddress.asset_id))
            .where(*unreported, *not_completed_sql())
            .order_by(col(IncomingPayment.expires_at), col(IncomingPayment.id))
            .limit(EXPIRY_SWEEP_COUNT_MAX)
            .with_for_update(of=IncomingPayment, skip_locked=True)
        )
    ).all()
    reported = 0
    for payment, path, asset_code, asset_scale in rows:
        # Conditional, so two sweeps racing on SQLite (no row locks) report it once.
        marked = await session.execute(
            sa.update(TABLE)
            .where(TABLE.c.id == payment.id, *unreported)
            .values(expiry_reported_at=now)
            .execution_options(synchronize_session=False)
        )
        if marked.rowcount != 1:  # type: ignore[attr-defined]
            continue
        wallet = WalletView(wallet_address_url(settings, path), asset_code, asset_scale)
        view = views.incoming_payment(settings, column_values(payment), wallet)
        await enqueue(session, "incoming_payment.expired", view, now=now)
        reported += 1
    return reported
