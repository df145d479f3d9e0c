"""Quote arithmetic: what a sender is debited and what a receiver gets, with fees and a rate.

Pure functions over ints and exact rationals (no float anywhere). One forward function
prices a debit; fixed-receive is its exact inverse, so both kinds of quote agree.

The rounding rule, from a debit `D` in the sending asset:

1. sending fee `S = fee(D)` (`fixed + ceil(D * bp / 10000)`, `opase.pricing.fees`), out of
   the debit: `sent = D - S`;
2. converted `C = floor(sent * rate * 10**(receive_scale - send_scale))`: the receiving side
   never gets more than what was sent buys;
3. receiving fee `fee(C)` out of it: `delivered = C - fee(C)`.

Every step rounds against the receiver's side and towards the ASE, never against what the
quote states: a fixed-send quote promises `delivered`, exactly what the debit buys. A
fixed-receive quote for `R` takes the smallest `D` whose `delivered >= R` (each step inverted
exactly with a ceiling, then checked forward and bumped if short), promises exactly `R`, and
counts the rounding dust `delivered - R` into the receiving fee. So the receiver never gets
less than promised and the sender never pays more than the least debit that delivers it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Final

from opase.amounts import AMOUNT_MINOR_MAX
from opase.pricing.fees import BASIS_POINTS_PER_WHOLE, Fee, ceil_div

_BUMPS_MAX: Final = 3
"""Exact inversions need no bump; a few guard against a mistake without looping forever."""


class QuoteRefused(ValueError):
    """The amounts cannot make a quote (nothing left after fees, or beyond the ledger)."""


@dataclass(frozen=True, slots=True)
class FeeTerms:
    """A fee as numbers: `fixed_minor + ceil(amount * basis_points / 10000)`."""

    fixed_minor: int = 0
    basis_points: int = 0

    @classmethod
    def of(cls, fee: Fee | None) -> FeeTerms:
        return cls() if fee is None else cls(fee.fixed_minor, fee.basis_points)

    def on(self, amount_minor: int) -> int:
        return self.fixed_minor + ceil_div(amount_minor * self.basis_points, BASIS_POINTS_PER_WHOLE)

    def smallest_gross(self, net_minor: int) -> int | None:
        """The least `x` with `x - fee(x) >= net_minor`, or None when no `x` has (100%).

        `x - ceil(x * bp / 10000) = floor(x * (10000 - bp) / 10000)`, so the bound is exact:
        `x >= (net + fixed) * 10000 / (10000 - bp)`."""
        keep = BASIS_POINTS_PER_WHOLE - self.basis_points
        if keep <= 0:
            return None
        return ceil_div((net_minor + self.fixed_minor) * BASIS_POINTS_PER_WHOLE, keep)


@dataclass(frozen=True, slots=True)
class QuoteTerms:
    """What prices a quote: the rate (receive-asset units per send-asset unit), the two
    scales and the two fees."""

    rate: Decimal
    send_scale: int
    receive_scale: int
    sending_fee: FeeTerms = FeeTerms()
    receiving_fee: FeeTerms = FeeTerms()

    def __post_init__(self) -> None:
        assert self.rate.is_finite() and self.rate > 0, self.rate

    @property
    def minor_rate(self) -> Fraction:
        """Receive minor units per send minor unit, exactly."""
        return Fraction(self.rate) * Fraction(10) ** (self.receive_scale - self.send_scale)


@dataclass(frozen=True, slots=True)
class QuoteAmounts:
    debit_minor: int
    """What the sender is debited, fees included (send asset)."""
    sending_fee_minor: int
    converted_minor: int
    """What arrives in the receive asset before the receiving fee."""
    receiving_fee_minor: int
    """`converted - receive`: the receiving fee and, for fixed-receive, the rounding dust."""
    receive_minor: int
    """What the quote promises the receiver (receive asset)."""


def deliver_minor(terms: QuoteTerms, debit_minor: int) -> int:
    """What a debit delivers after both fees (may be ≤ 0): the forward function."""
    sent_minor = debit_minor - terms.sending_fee.on(debit_minor)
    if sent_minor <= 0:
        return sent_minor
    converted_minor = _converted(terms, sent_minor)
    return converted_minor - terms.receiving_fee.on(converted_minor)


def _converted(terms: QuoteTerms, sent_minor: int) -> int:
    product = sent_minor * terms.minor_rate
    return product.numerator // product.denominator


def _check_amount(name: str, value_minor: int) -> None:
    if not 0 < value_minor <= AMOUNT_MINOR_MAX:
        raise QuoteRefused(f"{name} must be from 1 to {AMOUNT_MINOR_MAX}")


def fixed_send(terms: QuoteTerms, debit_minor: int) -> QuoteAmounts:
    """The quote for debiting exactly `debit_minor`."""
    _check_amount("debitAmount", debit_minor)
    sending_fee_minor = terms.sending_fee.on(debit_minor)
    sent_minor = debit_minor - sending_fee_minor
    if sent_minor <= 0:
        raise QuoteRefused("debitAmount does not cover the sending fee")
    converted_minor = _converted(terms, sent_minor)
    receiving_fee_minor = terms.receiving_fee.on(converted_minor)
    receive_minor = converted_minor - receiving_fee_minor
    if receive_minor <= 0:
        raise QuoteRefused("debitAmount delivers nothing after exchange and fees")
    _check_amount("receiveAmount", receive_minor)
    return QuoteAmounts(
        debit_minor, sending_fee_minor, converted_minor, receiving_fee_minor, receive_minor
    )


def _least_at_least(forward: Callable[[int], int], target: int, estimate: int, what: str) -> int:
    """`estimate` checked forward: bumped while short, and known to be the least."""
    value = estimate
    for _ in range(_BUMPS_MAX):
        if forward(value) >= target:
            break
        value += 1
    else:
        raise AssertionError(f"{what}: inversion of {target} did not converge")
    assert value <= 1 or forward(value - 1) < target, (what, target, value)
    return value


def fixed_receive(terms: QuoteTerms, receive_minor: int) -> QuoteAmounts:
    """The quote delivering `receive_minor`: the least debit that delivers at least it."""
    _check_amount("receiveAmount", receive_minor)
    converted_minor = terms.receiving_fee.smallest_gross(receive_minor)
    if converted_minor is None:
        raise QuoteRefused("the receiving fee takes the whole amount")
    converted_minor = _least_at_least(
        lambda c: c - terms.receiving_fee.on(c), receive_minor, converted_minor, "receiving fee"
    )
    sent_estimate = Fraction(converted_minor) / terms.minor_rate
    sent_minor = _least_at_least(
        lambda s: _converted(terms, s),
        converted_minor,
        ceil_div(sent_estimate.numerator, sent_estimate.denominator),
        "exchange",
    )
    debit_minor = terms.sending_fee.smallest_gross(sent_minor)
    if debit_minor is None:
        raise QuoteRefused("the sending fee takes the whole amount")
    debit_minor = _least_at_least(
        lambda d: deliver_minor(terms, d), receive_minor, debit_minor, "sending fee"
    )
    if debit_minor > AMOUNT_MINOR_MAX:
        raise QuoteRefused(f"the debit for this receiveAmount exceeds {AMOUNT_MINOR_MAX}")
    sending_fee_minor = terms.sending_fee.on(debit_minor)
    converted_minor = _converted(terms, debit_minor - sending_fee_minor)
    return QuoteAmounts(
        debit_minor,
        sending_fee_minor,
        converted_minor,
        converted_minor - receive_minor,
        receive_minor,
    )
