"""Incoming payment operations (resource-server.yaml), for wallet addresses of this ASE.

Every operation is authorized through token introspection (`opase.api.resource.authorize`);
a plain `read`/`list` shows a client only the payments it created, `read-all`/`list-all`
every payment. The one exception is get-incoming-payment without a token: anyone who knows
the URL sees the public view (`receivedAmount`, `authServer`), never the payment method.

An incoming payment receives until its `incomingAmount` (the cap) is reached, it is
completed, or it expires; `expiresAt` is always set (at most `incoming_payment_expiry_s_max`
ahead, and that when the client names none), so nothing receives forever. Its ILP method is
a sub-address of this ASE's `ilp_address` and a fresh 32-byte STREAM shared secret.
"""

from __future__ import annotations

import base64
import secrets
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from opase.amounts import wire_amount
from opase.api.resource.authorize import authorize
from opase.api.resource.common import check_metadata, local_wallet_address, wire_time
from opase.api.resource.pagination import Page, own_page, page_request
from opase.errors import Conflict, InvalidRequest, NotFound
from opase.settings import Settings
from opase.storage.tables import (
    AMOUNT_MINOR_MAX,
    Asset,
    IncomingPayment,
    WalletAddress,
    column_values,
    new_row,
    sa_table,
)
from opase.wallets.service import (
    WalletAddressRecord,
)
from opase.web.router import RequestContext
from opase.webhooks.outbox import OUTBOX, enqueue, new_event_row

RESOURCE_TYPE: Final = "incoming-payment"
PATH: Final = "/incoming-payments"
SHARED_SECRET_BYTES: Final = 32
_PAYMENTS: Final = sa_table(IncomingPayment)
EXPIRY_SWEEP_COUNT_MAX: Final = 100
"""Expired payments one sweep reports; the rest wait for the next."""


@dataclass(frozen=True, slots=True)
class _Wallet:
    url: str
    asset_code: str
    asset_scale: int


def _amount(value_minor: int, wallet: _Wallet) -> dict[str, Any]:
    return wire_amount(value_minor, wallet.asset_code, wallet.asset_scale)


def _payment_url(settings: Settings, payment_id: uuid.UUID) -> str:
    return f"{settings.resource_server_url}{PATH}/{payment_id}"


PaymentRow = Mapping[str, Any]
"""An incoming payment's values by column name: `column_values` of a stored one, or the
`new_row` of one about to be inserted."""


def _completed(payment: PaymentRow) -> bool:
    cap_minor = payment["incoming_amount_minor"]
    return payment["completed_at"] is not None or (
        cap_minor is not None and payment["received_amount_minor"] >= cap_minor
    )


def _view(settings: Settings, payment: PaymentRow, wallet: _Wallet) -> dict[str, Any]:
    """The spec's `incoming-payment`: what the client that may read it sees, and the `data`
    of its webhook events (never the payment method, which holds the shared secret)."""
    view: dict[str, Any] = {
        "id": _payment_url(settings, payment["id"]),
        "walletAddress": wallet.url,
        "completed": _completed(payment),
        "receivedAmount": _amount(payment["received_amount_minor"], wallet),
        "expiresAt": wire_time(payment["expires_at"]),
        "createdAt": wire_time(payment["created_at"]),
    }
    if payment["incoming_amount_minor"] is not None:
        view["incomingAmount"] = _amount(payment["incoming_amount_minor"], wallet)
    if payment["metadata"] is not None:
        view["metadata"] = payment["metadata"]
    return view


def _view_with_methods(ctx: RequestContext, payment: PaymentRow, wallet: _Wallet) -> dict[str, Any]:
    """`incoming-payment-with-methods`: how to pay it, for the clients that may read it."""
    method = {
        "type": "ilp",
        "ilpAddress": f"{ctx.settings.ilp_address}.{payment['id'].hex}",
        "sharedSecret": payment["shared_secret"],
    }
    return _view(ctx.settings, payment, wallet) | {"methods": [method]}


def _incoming_amount_minor(amount: dict[str, Any], wallet: WalletAddressRecord) -> int:
    if (amount["assetCode"], amount["assetScale"]) != (wallet.asset_code, wallet.asset_scale):
        raise InvalidRequest(
            f"incomingAmount must be in the wallet address's asset "
            f"{wallet.asset_code} (scale {wallet.asset_scale})"
        )
    value_minor = int(amount["value"])  # the schema admits only uint64 strings
    if not 0 < value_minor <= AMOUNT_MINOR_MAX:
        raise InvalidRequest(f"incomingAmount must be from 1 to {AMOUNT_MINOR_MAX}")
    return value_minor


def _expires_at(ctx: RequestContext, text: str | None, now: datetime) -> datetime:
    latest = now + timedelta(seconds=ctx.settings.incoming_payment_expiry_s_max)
    if text is None:
        return latest
    try:
        expires_at = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidRequest(f"expiresAt {text!r} is not an RFC 3339 date-time") from None
    if expires_at.tzinfo is None:
        raise InvalidRequest("expiresAt needs a time zone offset")
    if expires_at <= now:
        raise InvalidRequest("expiresAt must be in the future")
    if expires_at > latest:
        raise InvalidRequest(
            f"expiresAt may be at most {ctx.settings.incoming_payment_expiry_s_max} s ahead"
        )
    return expires_at.astimezone(UTC)


async def create_incoming_payment(ctx: RequestContext) -> dict[str, Any]:
    document = ctx.document
    wallet_address_url: str = document["walletAddress"]
    authorized = await authorize(ctx, RESOURCE_TYPE, "create", wallet_address_url)
    now = datetime.now(UTC)
    record = await local_wallet_address(ctx.services, wallet_address_url)
    amount = document.get("incomingAmount")
    payment = new_row(
        IncomingPayment,
        wallet_address_id=record.id,
        client_wallet_address=authorized.client_wallet_address,
        client_key_thumbprint=authorized.client_key_thumbprint,
        incoming_amount_minor=None if amount is None else _incoming_amount_minor(amount, record),
        expires_at=_expires_at(ctx, document.get("expiresAt"), now),
        metadata_=check_metadata(document.get("metadata")),
        shared_secret=base64.urlsafe_b64encode(secrets.token_bytes(SHARED_SECRET_BYTES))
        .rstrip(b"=")
        .decode(),
        created_at=now,
        updated_at=now,
    )
    wallet = _Wallet(ctx.settings.public_url + record.path, record.asset_code, record.asset_scale)
    event = new_event_row("incoming_payment.created", _view(ctx.settings, payment, wallet), now=now)
    # Two new rows that nothing in the database decides: no transaction to hold open.
    await ctx.insert([(_PAYMENTS, payment), (OUTBOX, event)])
    return _view_with_methods(ctx, payment, wallet)


_FIND_BY_ID: Final = (
    # Built once: on the hot path of every get, only the parameter changes.
    sa.select(IncomingPayment, col(WalletAddress.path), col(Asset.code), col(Asset.scale))
    .join(WalletAddress, col(WalletAddress.id) == col(IncomingPayment.wallet_address_id))
    .join(Asset, col(Asset.id) == col(WalletAddress.asset_id))
    .where(col(IncomingPayment.id) == sa.bindparam("payment_id"))
)


async def _find(ctx: RequestContext, session: AsyncSession) -> tuple[IncomingPayment, _Wallet]:
    """The payment the path names, with its wallet address; 404 when there is none."""
    try:
        payment_id = uuid.UUID(ctx.path_params["id"])
    except ValueError:
        raise NotFound("no such incoming payment") from None
    row = (await session.execute(_FIND_BY_ID, {"payment_id": payment_id})).one_or_none()
    if row is None:
        raise NotFound("no such incoming payment")
    payment, path, asset_code, asset_scale = row
    return payment, _Wallet(ctx.settings.public_url + path, asset_code, asset_scale)


async def get_incoming_payment(ctx: RequestContext) -> dict[str, Any]:
    async with ctx.services.autocommit() as session:
        payment, wallet = await _find(ctx, session)
    if ctx.client is None:
        # No token: the public view, which tells a payer where to ask for a grant.
        return {
            "receivedAmount": _amount(payment.received_amount_minor, wallet),
            "authServer": ctx.settings.auth_server_url,
        }
    authorized = await authorize(ctx, RESOURCE_TYPE, "read", wallet.url)
    authorized.check_own(
        payment.client_wallet_address,
        payment.client_key_thumbprint,
        "read of another client's payment",
    )
    return _view_with_methods(ctx, column_values(payment), wallet)


async def list_incoming_payments(ctx: RequestContext) -> dict[str, Any]:
    wallet_address_url: str = ctx.query["wallet-address"]
    request = page_request(ctx.query)
    authorized = await authorize(ctx, RESOURCE_TYPE, "list", wallet_address_url)
    async with ctx.services.sessions() as session:
        record = await local_wallet_address(ctx.services, wallet_address_url, session=session)
        page: Page[IncomingPayment] = await own_page(
            session, authorized, IncomingPayment, record.id, request
        )
    wallet = _Wallet(wallet_address_url, record.asset_code, record.asset_scale)
    return {
        "pagination": page.page_info,
        "result": [_view(ctx.settings, column_values(payment), wallet) for payment in page.items],
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
        # One conditional UPDATE: a payment racing to its cap or expiry cannot also be
        # completed here, and completing twice is a conflict (as Rafiki's WrongState).
        completed = await session.execute(
            sa.update(IncomingPayment)
            .where(
                col(IncomingPayment.id) == payment.id,
                col(IncomingPayment.completed_at).is_(None),
                col(IncomingPayment.expires_at) > now,
                sa.or_(
                    col(IncomingPayment.incoming_amount_minor).is_(None),
                    col(IncomingPayment.received_amount_minor)
                    < col(IncomingPayment.incoming_amount_minor),
                ),
            )
            .values(completed_at=now, updated_at=now)
        )
        if completed.rowcount != 1:  # type: ignore[attr-defined]
            state = "expired" if payment.expires_at <= now else "completed"
            raise Conflict(f"the incoming payment is already {state}")
        await session.refresh(payment)
        view = _view(ctx.settings, column_values(payment), wallet)
        await enqueue(session, "incoming_payment.completed", view, now=now)
    return view


async def report_expired_incoming_payments(
    session: AsyncSession, settings: Settings, now: datetime
) -> int:
    """Put `incoming_payment.expired` in the outbox for payments whose expiry has passed
    before they completed, each once (at most `EXPIRY_SWEEP_COUNT_MAX` a call); how many.
    The caller commits: the mark and the event go together."""
    not_completed = (
        col(IncomingPayment.completed_at).is_(None),
        sa.or_(
            col(IncomingPayment.incoming_amount_minor).is_(None),
            col(IncomingPayment.received_amount_minor) < col(IncomingPayment.incoming_amount_minor),
        ),
    )
    unreported = (
        col(IncomingPayment.expiry_reported_at).is_(None),
        col(IncomingPayment.expires_at) <= now,
    )
    rows = (
        await session.execute(
            sa.select(IncomingPayment, col(WalletAddress.path), col(Asset.code), col(Asset.scale))
            .join(WalletAddress, col(WalletAddress.id) == col(IncomingPayment.wallet_address_id))
            .join(Asset, col(Asset.id) == col(WalletAddress.asset_id))
            .where(*unreported, *not_completed)
            .order_by(col(IncomingPayment.expires_at), col(IncomingPayment.id))
            .limit(EXPIRY_SWEEP_COUNT_MAX)
            .with_for_update(of=IncomingPayment, skip_locked=True)
        )
    ).all()
    reported = 0
    for payment, path, asset_code, asset_scale in rows:
        # Conditional, so two sweeps racing on SQLite (no row locks) report it once.
        marked = await session.execute(
            sa.update(IncomingPayment)
            .where(col(IncomingPayment.id) == payment.id, *unreported)
            .values(expiry_reported_at=now)
            .execution_options(synchronize_session=False)
        )
        if marked.rowcount != 1:  # type: ignore[attr-defined]
            continue
        wallet = _Wallet(settings.public_url + path, asset_code, asset_scale)
        view = _view(settings, column_values(payment), wallet)
        await enqueue(session, "incoming_payment.expired", view, now=now)
        reported += 1
    return reported


async def incoming_payment_view(
    session: AsyncSession, settings: Settings, payment_id: uuid.UUID
) -> dict[str, Any]:
    """The payment as its webhook events show it, read in the caller's transaction."""
    payment, path, asset_code, asset_scale = (
        await session.execute(
            sa.select(IncomingPayment, col(WalletAddress.path), col(Asset.code), col(Asset.scale))
            .join(WalletAddress, col(WalletAddress.id) == col(IncomingPayment.wallet_address_id))
            .join(Asset, col(Asset.id) == col(WalletAddress.asset_id))
            .where(col(IncomingPayment.id) == payment_id)
            .execution_options(populate_existing=True)
        )
    ).one()
    wallet = _Wallet(settings.public_url + path, asset_code, asset_scale)
    return _view(settings, column_values(payment), wallet)
