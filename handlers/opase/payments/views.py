"""The Open Payments documents of payments: what the API answers and what webhook events
carry. One function per document, fed stored values; no database, no HTTP."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from opase.amounts import wire_amount
from opase.payments.receiving import is_completed
from opase.payments.urls import INCOMING_PAYMENTS, OUTGOING_PAYMENTS, QUOTES, resource_url
from opase.settings import Settings
from opase.storage.tables import OutgoingPayment, Quote
from opase.timestamps import wire_time

QUOTE_METHOD = "ilp"


@dataclass(frozen=True, slots=True)
class WalletView:
    """What a payment's document shows of its wallet address."""

    url: str
    asset_code: str
    asset_scale: int

    def amount(self, value_minor: int) -> dict[str, Any]:
        return wire_amount(value_minor, self.asset_code, self.asset_scale)


def incoming_payment(
    settings: Settings, payment: Mapping[str, Any], wallet: WalletView
) -> dict[str, Any]:
    """`incoming-payment`: what a client that may read it sees, and the `data` of its
    webhook events (never the payment method, which holds the shared secret). `payment`:
    values by column name (`column_values`, or a `new_row`)."""
    view: dict[str, Any] = {
        "id": resource_url(settings, INCOMING_PAYMENTS, payment["id"]),
        "walletAddress": wallet.url,
        "completed": is_completed(payment),
        "receivedAmount": wallet.amount(payment["received_amount_minor"]),
        "expiresAt": wire_time(payment["expires_at"]),
        "createdAt": wire_time(payment["created_at"]),
    }
    if payment["incoming_amount_minor"] is not None:
        view["incomingAmount"] = wallet.amount(payment["incoming_amount_minor"])
    if payment["metadata"] is not None:
        view["metadata"] = payment["metadata"]
    return view


def incoming_payment_with_methods(
    settings: Settings, payment: Mapping[str, Any], wallet: WalletView
) -> dict[str, Any]:
    """`incoming-payment-with-methods`: how to pay it, for the clients that may read it. Its
    ILP address is a sub-address of this ASE's, named by the payment's id."""
    method = {
        "type": "ilp",
        "ilpAddress": f"{settings.ilp_address}.{payment['id'].hex}",
        "sharedSecret": payment["shared_secret"],
    }
    return incoming_payment(settings, payment, wallet) | {"methods": [method]}


def public_incoming_payment(
    settings: Settings, received_amount_minor: int, wallet: WalletView
) -> dict[str, Any]:
    """`public-incoming-payment`: for anyone with the URL, it tells a payer where to ask for
    a grant."""
    return {
        "receivedAmount": wallet.amount(received_amount_minor),
        "authServer": settings.auth_server_url,
    }


def quote(settings: Settings, stored: Quote, wallet_address_url: str) -> dict[str, Any]:
    """`quote`."""
    return {
        "id": resource_url(settings, QUOTES, stored.id),
        "walletAddress": wallet_address_url,
        "receiver": stored.receiver,
        "debitAmount": wire_amount(
            stored.debit_amount_minor, stored.debit_asset_code, stored.debit_asset_scale
        ),
        "receiveAmount": wire_amount(
            stored.receive_amount_minor, stored.receive_asset_code, stored.receive_asset_scale
        ),
        "method": QUOTE_METHOD,
        "createdAt": wire_time(stored.created_at),
        "expiresAt": wire_time(stored.expires_at),
    }


def outgoing_payment(
    settings: Settings, payment: OutgoingPayment, paid_quote: Quote, wallet_address_url: str
) -> dict[str, Any]:
    """`outgoing-payment`."""
    debit_asset = (paid_quote.debit_asset_code, paid_quote.debit_asset_scale)
    document: dict[str, Any] = {
        "id": resource_url(settings, OUTGOING_PAYMENTS, payment.id),
        "walletAddress": wallet_address_url,
        "failed": payment.state == "failed",
        "receiver": paid_quote.receiver,
        "receiveAmount": wire_amount(
            paid_quote.receive_amount_minor,
            paid_quote.receive_asset_code,
            paid_quote.receive_asset_scale,
        ),
        "debitAmount": wire_amount(paid_quote.debit_amount_minor, *debit_asset),
        "sentAmount": wire_amount(payment.sent_amount_minor, *debit_asset),
        "createdAt": wire_time(payment.created_at),
    }
    if payment.quote_shown:
        document["quoteId"] = resource_url(settings, QUOTES, paid_quote.id)
    if payment.metadata_ is not None:
        document["metadata"] = payment.metadata_
    return document


def outgoing_payment_event(
    settings: Settings, payment: OutgoingPayment, paid_quote: Quote, wallet_address_url: str
) -> dict[str, Any]:
    """The `data` of an outgoing payment's webhook events: its document and, once it has
    failed, why."""
    data = outgoing_payment(settings, payment, paid_quote, wallet_address_url)
    if payment.failure_reason is not None:
        data["failureReason"] = payment.failure_reason
    return data
