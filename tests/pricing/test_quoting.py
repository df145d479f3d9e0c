"""The quote arithmetic (`opase.pricing.quoting`) against hand calculations, and its
promises as properties: a fixed-receive debit is the least that delivers the amount."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from opase.amounts import AMOUNT_MINOR_MAX
from opase.pricing.quoting import (
    FeeTerms,
    QuoteAmounts,
    QuoteRefused,
    QuoteTerms,
    deliver_minor,
    fixed_receive,
    fixed_send,
)

# 1 USD = 0.9137 EUR; USD scale 2, EUR scale 3: one cent buys 9.137 EUR thousandths.
USD_EUR = QuoteTerms(
    rate=Decimal("0.9137"),
    send_scale=2,
    receive_scale=3,
    sending_fee=FeeTerms(fixed_minor=25, basis_points=50),
    receiving_fee=FeeTerms(fixed_minor=100, basis_points=30),
)
EUR_USD = QuoteTerms(rate=Decimal("1.0945"), send_scale=3, receive_scale=2)
USD_USD_1PCT = QuoteTerms(
    rate=Decimal(1), send_scale=2, receive_scale=2, sending_fee=FeeTerms(0, 100)
)
JPY_USD = QuoteTerms(rate=Decimal("0.0067"), send_scale=0, receive_scale=2)


# (terms, debit, sending fee, converted, receiving fee, receive), each worked by hand:
FIXED_SEND = [
    # fee 25 + ceil(10000 * 0.005) = 75; sent 9925; 9925 * 9.137 = 90684.725 -> 90684;
    # fee 100 + ceil(90684 * 0.003 = 272.052) = 373; receive 90684 - 373 = 90311.
    (USD_EUR, 10000, 75, 90684, 373, 90311),
    # 12345 * 1.0945 / 10 = 1351.16025 -> 1351 (the scale falls by one digit).
    (EUR_USD, 12345, 0, 1351, 0, 1351),
    # 1% of 1000 = 10.
    (USD_USD_1PCT, 1000, 10, 990, 0, 990),
    # 1000 JPY * 0.0067 * 100 = 670 cents exactly.
    (JPY_USD, 1000, 0, 670, 0, 670),
    # 101 cents: fee 25 + ceil(0.505) = 26; sent 75; 75 * 9.137 = 685.275 -> 685;
    # fee 100 + ceil(2.055) = 103; receive 582.
    (USD_EUR, 101, 26, 685, 103, 582),
]

# (terms, receive, debit, sending fee, converted, receiving fee incl. dust):
FIXED_RECEIVE = [
    # The inverse of the first fixed-send row: exactly the same debit.
    (USD_EUR, 90311, 10000, 75, 90684, 373),
    # converted >= (90000 + 100) * 10000 / 9970 = 90371.11 -> 90372
    #   (90372 - 100 - ceil(271.116) = 90000; 90371 gives 89999);
    # sent >= 90372 / 9.137 = 9890.99 -> 9891 (9891 * 9.137 = 90374.067);
    # debit >= (9891 + 25) * 10000 / 9950 = 9965.83 -> 9966 (fee 25 + ceil(49.83) = 75);
    # 9966 - 75 = 9891 -> 90374 converted; 90374 - 90000 = 374 = fee 372 + dust 2.
    (USD_EUR, 90000, 9966, 75, 90374, 374),
    # sent >= 1351 * 10 / 1.0945 = 12343.54 -> 12344 (12344 * 0.10945 = 1351.05): one
    # thousandth less than the fixed-send debit that bought the same 1351 cents.
    (EUR_USD, 1351, 12344, 0, 1351, 0),
    # debit >= 1000 * 10000 / 9900 = 1010.1 -> 1011 (fee ceil(10.11) = 11; 1010 leaves 999).
    (USD_USD_1PCT, 1000, 1011, 11, 1000, 0),
    # 1 cent needs 1 / 0.67 = 1.49 -> 2 yen, which buy 1.34 -> 1 cent.
    (JPY_USD, 1, 2, 0, 1, 0),
]


@pytest.mark.parametrize(
    ("terms", "debit", "sending", "converted", "receiving", "receive"), FIXED_SEND
)
def test_fixed_send_matches_the_hand_calculation(
    terms: QuoteTerms, debit: int, sending: int, converted: int, receiving: int, receive: int
) -> None:
    assert fixed_send(terms, debit) == QuoteAmounts(debit, sending, converted, receiving, receive)
    assert deliver_minor(terms, debit) == receive


@pytest.mark.parametrize(
    ("terms", "receive", "debit", "sending", "converted", "receiving"), FIXED_RECEIVE
)
def test_fixed_receive_matches_the_hand_calculation(
    terms: QuoteTerms, receive: int, debit: int, sending: int, converted: int, receiving: int
) -> None:
    assert fixed_receive(terms, receive) == QuoteAmounts(
        debit, sending, converted, receiving, receive
    )
    assert deliver_minor(terms, debit) >= receive > deliver_minor(terms, debit - 1)


@pytest.mark.parametrize(
    ("terms", "debit", "message"),
    [
        (USD_EUR, 25, "does not cover the sending fee"),  # fee 25 + ceil(0.125) = 26
        (USD_EUR, 26, "does not cover the sending fee"),  # fee 26 leaves 0
        (USD_EUR, 27, "delivers nothing"),  # 1 cent buys 9 < the 100 receiving fee
        (JPY_USD, 1, "delivers nothing"),  # 0.67 cent -> 0
        (EUR_USD, 0, "debitAmount must be from 1"),
        (EUR_USD, AMOUNT_MINOR_MAX + 1, "debitAmount must be from 1"),
    ],
)
def test_fixed_send_refuses_what_delivers_nothing(
    terms: QuoteTerms, debit: int, message: str
) -> None:
    with pytest.raises(QuoteRefused, match=message):
        fixed_send(terms, debit)


def test_fixed_receive_refusals() -> None:
    with pytest.raises(QuoteRefused, match="receiveAmount must be from 1"):
        fixed_receive(EUR_USD, 0)
    whole = QuoteTerms(Decimal(1), 2, 2, receiving_fee=FeeTerms(0, 10_000))
    with pytest.raises(QuoteRefused, match="receiving fee takes the whole amount"):
        fixed_receive(whole, 5)
    whole = QuoteTerms(Decimal(1), 2, 2, sending_fee=FeeTerms(0, 10_000))
    with pytest.raises(QuoteRefused, match="sending fee takes the whole amount"):
        fixed_receive(whole, 5)
    with pytest.raises(QuoteRefused, match="exceeds"):
        fixed_receive(JPY_USD, AMOUNT_MINOR_MAX)


rates = st.builds(
    lambda digits, exponent: Decimal(digits).scaleb(exponent),
    st.integers(1, 10**9),
    st.integers(-12, 3),
)
fees = st.builds(FeeTerms, st.integers(0, 10**4), st.integers(0, 9_999))
terms_strategy = st.builds(QuoteTerms, rates, st.integers(0, 9), st.integers(0, 9), fees, fees)


@given(terms_strategy, st.integers(1, 10**12))
def test_a_fixed_receive_debit_is_the_least_that_delivers(terms: QuoteTerms, receive: int) -> None:
    try:
        amounts = fixed_receive(terms, receive)
    except QuoteRefused:
        assume(False)
        return
    debit = amounts.debit_minor
    assert deliver_minor(terms, debit) >= receive
    assert debit == 1 or deliver_minor(terms, debit - 1) < receive
    assert amounts.receive_minor == receive
    assert amounts.converted_minor == amounts.receive_minor + amounts.receiving_fee_minor
    assert amounts.receiving_fee_minor >= terms.receiving_fee.on(amounts.converted_minor)
    assert amounts.sending_fee_minor == terms.sending_fee.on(debit)


@given(terms_strategy, st.integers(1, 10**12))
def test_fixed_send_and_fixed_receive_agree(terms: QuoteTerms, debit: int) -> None:
    try:
        sent = fixed_send(terms, debit)
    except QuoteRefused:
        assume(False)
        return
    assert sent.debit_minor == debit
    assert sent.converted_minor == sent.receive_minor + sent.receiving_fee_minor
    # Never more than what was sent buys, at the exact rate:
    assert sent.converted_minor <= (debit - sent.sending_fee_minor) * terms.minor_rate
    # The least debit for what this one delivers costs at most this one.
    assert fixed_receive(terms, sent.receive_minor).debit_minor <= debit
