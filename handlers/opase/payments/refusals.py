"""What the payments domain refuses, and why: plain exceptions with no HTTP in them.

The resource server maps each kind to its error once (`opase.web.error_responses`); the
Interledger receiver will map `ReceiverClosed` to an ILP reject. Messages are for the client:
they say what to change.
"""

from __future__ import annotations

from typing import Literal


class PaymentRefusal(Exception):
    """A payment operation refused; nothing was written."""


class InvalidPaymentRequest(PaymentRefusal):
    """The request can never succeed as asked (an amount, an asset, a date, a receiver)."""


class ReceiverClosed(InvalidPaymentRequest):
    """An incoming payment that takes no more money: `reason` says which rule closed it."""

    def __init__(self, reason: Literal["completed", "expired", "over_cap"]) -> None:
        self.reason = reason
        super().__init__(
            {
                "completed": "the receiver incoming payment is completed",
                "expired": "the receiver incoming payment has expired",
                "over_cap": "the payment would take the receiver past its incomingAmount",
            }[reason]
        )


class NotPermitted(PaymentRefusal):
    """The grant or the balance does not allow it (a limit, the funds)."""


class WrongState(PaymentRefusal):
    """The resource is no longer in the state the operation needs (completed twice)."""


class UnknownResource(PaymentRefusal):
    """No such payment or quote."""
