"""The consent page's words, table by table: amounts, intervals, access items, limits."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from opase.idp.wording import (
    AccessWording,
    access_wording,
    duration_parts,
    expiry_words,
    format_amount,
    interval_words,
    limit_words,
    moment_words,
    subject_words,
)
from tests.money import amount, usd

W = "https://wallet.example/alice"


@pytest.mark.parametrize(
    ("value", "code", "scale", "shown"),
    [
        ("2500", "USD", 2, "USD 25.00"),
        ("10000", "EUR", 2, "EUR 100.00"),
        ("5", "USD", 2, "USD 0.05"),
        ("0", "USD", 2, "USD 0.00"),
        ("0", "JPY", 0, "JPY 0"),
        ("2500", "JPY", 0, "JPY 2500"),
        ("1", "BTC", 8, "BTC 0.00000001"),
        ("123456789", "BTC", 8, "BTC 1.23456789"),
        # The largest uint64, at the scales where floats would round it.
        ("18446744073709551615", "USD", 2, "USD 184467440737095516.15"),
        ("18446744073709551615", "USD", 0, "USD 18446744073709551615"),
        ("18446744073709551615", "XRP", 18, "XRP 18.446744073709551615"),
        ("7", "ABC", 30, "ABC 0." + "0" * 29 + "7"),
        (2500, "USD", 2, "USD 25.00"),
    ],
)
def test_amounts_apply_the_asset_scale_exactly(
    value: str | int, code: str, scale: int, shown: str
) -> None:
    assert format_amount(value, code, scale) == shown


def test_a_scale_of_255_keeps_every_digit() -> None:
    shown = format_amount("18446744073709551615", "MAX", 255)
    assert shown == "MAX 0." + "0" * (255 - 20) + "18446744073709551615"


@pytest.mark.parametrize("value", ["-1", "1.5", "", "1e3", "٣", -1])
def test_what_is_not_an_amount_is_refused(value: str | int) -> None:
    with pytest.raises(ValueError):
        format_amount(value, "USD", 2)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("R/2026-12-01T00:00:00Z/P1M", "each month, from 1 Dec 2026"),
        ("R/2026-12-01/P1M", "each month, from 1 Dec 2026"),
        ("R/2026-12-01T00:00:00Z/P2W", "each 2 weeks, from 1 Dec 2026"),
        ("R/2026-12-01T00:00:00Z/P14D", "each 2 weeks, from 1 Dec 2026"),
        ("R/2026-12-01T00:00:00Z/P10D", "each 10 days, from 1 Dec 2026"),
        ("R11/2026-12-01T00:00:00Z/P1D", "each day, 12 times, from 1 Dec 2026"),
        ("R1/2026-01-31T00:00:00Z/P1M", "each month, 2 times, from 31 Jan 2026"),
        ("R0/2026-12-01T00:00:00Z/P1D", "within 1 day from 1 Dec 2026"),
        ("R/2026-01-01T00:00:00Z/P1Y", "each year, from 1 Jan 2026"),
        ("R/2026-01-01T00:00:00Z/P1Y6M", "each 1 year and 6 months, from 1 Jan 2026"),
        ("R/2026-01-01T00:00:00Z/P18M", "each 1 year and 6 months, from 1 Jan 2026"),
        ("R/2026-01-01T00:00:00Z/PT1H", "each hour, from 1 Jan 2026"),
        ("R/2026-01-01T00:00:00Z/P1DT12H", "each 1 day and 12 hours, from 1 Jan 2026"),
        ("R/2026-01-01T00:00:00Z/PT1.5S", "each 1.5 seconds, from 1 Jan 2026"),
        (
            "R/2026-12-01T09:30:00+01:00/P1M",
            "each month, from 1 Dec 2026, 09:30 UTC+01:00",
        ),
        ("R/2026-12-01T09:30:15Z/P1W", "each week, from 1 Dec 2026, 09:30:15 UTC"),
        ("R/2026-12-01T00:00:00-05:30/P1D", "each day, from 1 Dec 2026, 00:00 UTC-05:30"),
        # duration/end repeats backward from the end.
        ("R3/P1M/2026-12-01T00:00:00Z", "each month, 4 times, until 1 Dec 2026"),
        ("R/P1M/2026-12-01T00:00:00Z", "each month, until 1 Dec 2026"),
        # ISO 8601-2's R-1 is unbounded too.
        ("R-1/2026-12-01T00:00:00Z/P1D", "each day, from 1 Dec 2026"),
        # start/end repeats the elapsed time.
        (
            "R2/2026-01-01T00:00:00Z/2026-01-01T12:00:00Z",
            "each 12 hours, 3 times, from 1 Jan 2026",
        ),
        # Never raises: the grant was checked when it was made, but words must not fail.
        ("not an interval", "in the periods not an interval"),
    ],
)
def test_intervals_in_words(text: str, words: str) -> None:
    assert interval_words(text) == words


@pytest.mark.parametrize(
    ("months", "exact", "parts"),
    [
        (1, timedelta(0), ["1 month"]),
        (25, timedelta(0), ["2 years", "1 month"]),
        (0, timedelta(days=7), ["1 week"]),
        (0, timedelta(days=7, hours=1), ["7 days", "1 hour"]),
        (0, timedelta(minutes=90), ["1 hour", "30 minutes"]),
        (0, timedelta(seconds=1, microseconds=250_000), ["1.25 seconds"]),
        (0, timedelta(microseconds=1), ["0.000001 seconds"]),
    ],
)
def test_duration_parts(months: int, exact: timedelta, parts: list[str]) -> None:
    assert duration_parts(months, exact) == parts


@pytest.mark.parametrize(
    ("moment", "words"),
    [
        (datetime(2026, 12, 1, tzinfo=UTC), "1 Dec 2026"),
        (datetime(2026, 5, 9, 14, 5, tzinfo=UTC), "9 May 2026, 14:05 UTC"),
        (datetime(2026, 5, 9, 14, 5, 0, 5, tzinfo=UTC), "9 May 2026, 14:05:00.000005 UTC"),
        (
            datetime(2026, 5, 9, tzinfo=timezone(timedelta(hours=-3))),
            "9 May 2026, 00:00 UTC-03:00",
        ),
    ],
)
def test_moments(moment: datetime, words: str) -> None:
    assert moment_words(moment) == words


NOW = datetime(2026, 12, 1, 13, 55, tzinfo=UTC)


@pytest.mark.parametrize(
    ("expires_at", "words"),
    [
        (NOW + timedelta(minutes=10), "1 Dec 2026, 14:05 UTC (in 10 minutes)"),
        (NOW + timedelta(seconds=61), "1 Dec 2026, 13:56 UTC (in 2 minutes)"),
        (
            NOW + timedelta(seconds=30, microseconds=7),
            "1 Dec 2026, 13:55 UTC (in less than a minute)",
        ),
        (NOW + timedelta(minutes=1), "1 Dec 2026, 13:56 UTC (in 1 minute)"),
        (datetime(2026, 12, 2, tzinfo=UTC), "2 Dec 2026, 00:00 UTC (in about 10 hours)"),
        (NOW, "1 Dec 2026, 13:55 UTC (expired)"),
    ],
)
def test_expiry(expires_at: datetime, words: str) -> None:
    assert expiry_words(expires_at, NOW) == words


@pytest.mark.parametrize(
    ("item", "wording"),
    [
        (
            {"type": "incoming-payment", "actions": ["create"]},
            AccessWording("Incoming payments", ("create incoming payments",), ()),
        ),
        (
            {"type": "incoming-payment", "actions": ["create", "read", "list", "complete"],
             "identifier": W},
            AccessWording(
                f"Incoming payments into {W}",
                (f"create incoming payments into {W}", "complete its incoming payments",
                 "read and list its incoming payments"),
                (),
            ),
        ),
        (
            {"type": "incoming-payment", "actions": ["list-all", "read-all"]},
            AccessWording(
                "Incoming payments",
                ("read and list all incoming payments, also those of other apps",), (),
            ),
        ),
        (
            {"type": "quote", "actions": ["read", "list"]},
            AccessWording("Quotes", ("read and list its quotes",), ()),
        ),
        (
            {"type": "quote", "actions": ["create", "read"], "identifier": W},
            AccessWording(
                f"Quotes for payments from {W}",
                (f"create quotes for payments from {W}", "read its quotes"), (),
            ),
        ),
        (
            {"type": "outgoing-payment", "actions": ["create", "read", "list"], "identifier": W,
             "limits": {"debitAmount": usd("2500")}},
            AccessWording(
                f"Outgoing payments from {W}",
                (f"send payments from {W}", "read and list its outgoing payments"),
                ("Debit your account up to USD 25.00 in total",),
            ),
        ),
        (
            {"type": "outgoing-payment", "actions": ["list"], "identifier": W},
            AccessWording(
                f"Outgoing payments from {W}", ("list its outgoing payments",),
                ("No limit on the amount: it may send any amount",),
            ),
        ),
        # A type or action from a newer spec is shown by its name.
        (
            {"type": "subscription", "actions": ["create", "pause"]},
            AccessWording("subscription", ("create subscription", "pause subscription"), ()),
        ),
    ],
)  # fmt: skip
def test_access_items_in_words(item: dict[str, Any], wording: AccessWording) -> None:
    assert access_wording(item) == wording


RECEIVER = "https://bank.example/incoming-payments/8c0a4b1e"


@pytest.mark.parametrize(
    ("limits", "lines"),
    [
        (None, ["No limit on the amount: it may send any amount"]),
        ({}, ["No limit on the amount: it may send any amount"]),
        (
            {"debitAmount": amount("10000", "EUR", 2), "interval": "R/2026-12-01T00:00:00Z/P1M"},
            ["Debit your account up to EUR 100.00 each month, from 1 Dec 2026"],
        ),
        (
            {"receiveAmount": amount("500", "JPY", 0), "receiver": RECEIVER},
            ["Receivers get up to JPY 500 in total", f"Pay only the receiver {RECEIVER}"],
        ),
        (
            {"receiver": RECEIVER, "interval": "R11/2026-12-01T00:00:00Z/P1D"},
            [
                "No limit on the amount: it may send any amount",
                "In periods: each day, 12 times, from 1 Dec 2026",
                f"Pay only the receiver {RECEIVER}",
            ],
        ),
        (
            {"debitAmount": {"value": "x", "assetCode": "USD", "assetScale": 2}},
            ["Debit your account up to an amount given as "
             "{'value': 'x', 'assetCode': 'USD', 'assetScale': 2} in total"],
        ),
    ],
)  # fmt: skip
def test_limits_in_words(limits: Any, lines: list[str]) -> None:
    assert limit_words(limits) == lines


def test_subject_in_words() -> None:
    subject = {"sub_ids": [{"id": W, "format": "uri"}]}
    assert subject_words(subject) == [f"Confirm that you own {W}"]
    assert subject_words(None) == []
