"""Fee arithmetic (`opase.pricing.fees.fee_minor`): the fixed part plus the proportion
rounded up, exact at the largest amounts, and only for amounts."""

from __future__ import annotations

import uuid
from fractions import Fraction
from typing import Any

import pytest

from opase.amounts import AMOUNT_MINOR_MAX
from opase.pricing import fees as fee_service


def a_fee(fixed_minor: int, basis_points: int) -> fee_service.Fee:
    return fee_service.Fee(uuid.uuid4(), "sending", fixed_minor, basis_points, None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("fixed_minor", "basis_points", "amount_minor", "expected_minor"),
    [
        (0, 0, 1000, 0),
        (30, 250, 1000, 55),  # 30 + 2.5% of 1000
        (30, 250, 1001, 56),  # 25.025 rounds up to 26
        (0, 1, 1, 1),  # a hundredth of a percent of one unit is still a whole unit
        (0, 1, 10000, 1),
        (0, 1, 10001, 2),
        (0, 10000, 12345, 12345),
        (7, 99, 0, 7),  # no amount: the fixed part only
    ],
)
def test_fee_minor_is_fixed_plus_the_rounded_up_proportion(
    fixed_minor: int, basis_points: int, amount_minor: int, expected_minor: int
) -> None:
    assert fee_service.fee_minor(a_fee(fixed_minor, basis_points), amount_minor) == expected_minor


def test_fee_minor_is_exact_at_the_largest_amounts() -> None:
    # Through float, 2**63-1 times 9999 would lose its last digits.
    for basis_points in (1, 9999, 10000):
        exact = Fraction(AMOUNT_MINOR_MAX * basis_points, 10000)
        expected_minor = -(-exact.numerator // exact.denominator)
        fee = a_fee(AMOUNT_MINOR_MAX, basis_points)
        assert fee_service.fee_minor(fee, AMOUNT_MINOR_MAX) == AMOUNT_MINOR_MAX + expected_minor


@pytest.mark.parametrize(
    ("amount", "error"),
    [(-1, ValueError), (2**63, ValueError), (1.5, TypeError), (True, TypeError)],
)
def test_fee_minor_refuses_what_is_not_an_amount(amount: Any, error: type[Exception]) -> None:
    with pytest.raises(error):
        fee_service.fee_minor(a_fee(0, 10), amount)
