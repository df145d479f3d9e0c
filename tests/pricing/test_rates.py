"""Exchange rate text (`opase.pricing.rates`): canonical fixed point, read back exactly."""

from __future__ import annotations

from decimal import Decimal

import pytest

from opase.pricing import rates as rate_service


@pytest.mark.parametrize(
    ("rate", "text"),
    [
        (Decimal("0.920"), "0.92"),
        (Decimal("1E+2"), "100"),
        (Decimal("1.000"), "1"),
        (Decimal("1E-17"), "0.00000000000000001"),
    ],
)
def test_rate_text_is_canonical_fixed_point(rate: Decimal, text: str) -> None:
    assert rate_service.rate_text(rate) == text
    assert rate_service.parse_rate(text) == rate
