"""Exchange rates: a static table set through the admin API, or a provider's over HTTP.

Rates are exact decimals (`Decimal`), never floats: a rate multiplies amounts of money. One
unit of `base` is worth `rates[code]` units of `code` (Rafiki's shape). The static table
keeps at most 18 digits per rate; a provider's rates may have any exponent within 10**±18
but at most 18 significant digits, so that a conversion's product stays exact.

A provider answers `GET <exchange_rates_url>?base=USD` with
`{"base": "USD", "rates": {"EUR": "0.92", ...}}`; the rates may be decimal strings or JSON
numbers (read as exact decimals from their text, as Rafiki's providers send them). Other
members are ignored. Answers are cached per process for `exchange_rates_cache_s`; an expired
entry is fetched again, and a failed fetch raises `ExchangeRatesUnavailable` rather than
serve stale rates: a payment priced at an old rate costs someone money.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, Final

import httpx
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from opase.bounded_read import read_ok_answer
from opase.settings import Settings
from opase.storage.tables import EXCHANGE_RATE_LENGTH_MAX, ExchangeRate, utc_now

RATE_DIGITS_MAX: Final = 18
"""The most significant digits of a rate: a conversion's product stays exact and small."""
RATE_EXPONENT_MAX: Final = 18
"""A provider's rates lie within 10**-18 .. 10**18."""
STATIC_RATES_COUNT_MAX: Final = 500
"""The most rates from one base the admin API sets at once (the spec's maxProperties)."""
PROVIDER_RATES_COUNT_MAX: Final = 1_000
PROVIDER_TIMEOUT_S: Final = 5.0
"""The longest a fetch from the provider may take, connection to last byte."""
PROVIDER_RESPONSE_BYTES_MAX: Final = 256 * 1024
PROVIDER_CACHED_BASE_COUNT_MAX: Final = 1_000

_ASSET_CODE: Final = re.compile(r"[A-Z0-9]{3,12}")
# The spec's `exchange-rate`: a positive decimal, no sign, exponent or spaces; with the
# length limit, at most 18 digits in all.
_STATIC_RATE: Final = re.compile(r"[1-9][0-9]{0,17}(\.[0-9]+)?|0\.[0-9]*[1-9][0-9]*")
# What a provider may send as a string: a plain decimal, optionally with an exponent.
_PROVIDER_RATE: Final = re.compile(r"[0-9]{1,40}(\.[0-9]{1,40})?([eE][+-]?[0-9]{1,3})?")


class ExchangeRatesUnavailable(Exception):
    """The provider could not be reached in time, or its answer is not rates for the base."""


def check_asset_code(code: str) -> str:
    if not isinstance(code, str) or not _ASSET_CODE.fullmatch(code):
        raise ValueError(f"{code!r} is not an asset code (3..12 of A-Z, 0-9)")
    return code


def parse_rate(text: str) -> Decimal:
    """A rate as the admin API takes it (`"0.92"`), exactly; ValueError otherwise."""
    if (
        not isinstance(text, str)
        or len(text) > EXCHANGE_RATE_LENGTH_MAX
        or not _STATIC_RATE.fullmatch(text)
    ):
        raise ValueError(
            f"rate {text!r} is not a positive decimal string of at most {RATE_DIGITS_MAX} digits"
            " (no sign, exponent or spaces)"
        )
    return Decimal(text)


def rate_text(rate: Decimal) -> str:
    """The canonical text of a rate: fixed point, no trailing zeros after the point."""
    assert rate.is_finite() and rate > 0, rate
    text = format(rate, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    assert Decimal(text) == rate
    return text


def check_provider_rate(code: str, rate: Decimal) -> Decimal:
    """A provider's rate: positive, finite, at most 18 significant digits, within 10**±18."""
    if not rate.is_finite() or rate <= 0:
        raise ValueError(f"rate of {code} is not a positive number: {rate}")
    digits = rate.normalize().as_tuple().digits
    if len(digits) > RATE_DIGITS_MAX:
        raise ValueError(f"rate of {code} has more than {RATE_DIGITS_MAX} significant digits")
    if not -RATE_EXPONENT_MAX <= rate.adjusted() < RATE_EXPONENT_MAX:
        raise ValueError(f"rate of {code} is outside 1e-{RATE_EXPONENT_MAX}..1e{RATE_EXPONENT_MAX}")
    return rate


# -- the static table ---------------------------------------------------------------------


async def static_rates(session: AsyncSession, base: str) -> dict[str, Decimal]:
    """The stored rates from `base`, by code (sorted); empty when none are set."""
    check_asset_code(base)
    query = (
        select(ExchangeRate)
        .where(col(ExchangeRate.base_code) == base)
        .order_by(col(ExchangeRate.counter_code))
    )
    rows = (await session.execute(query)).scalars().all()
    return {row.counter_code: Decimal(row.rate) for row in rows}


async def set_static_rates(
    session: AsyncSession, base: str, rates: Mapping[str, str]
) -> dict[str, Decimal]:
    """Replace every stored rate from `base` with `rates` (code -> decimal text).

    Everything is checked before anything is written. Two transactions replacing the same
    base at once: the later one fails on the unique constraint (a conflict to retry)
    rather than mixing the two tables.
    """
    check_asset_code(base)
    if len(rates) > STATIC_RATES_COUNT_MAX:
        raise ValueError(f"at most {STATIC_RATES_COUNT_MAX} rates from one base")
    parsed = {check_asset_code(code): parse_rate(text) for code, text in rates.items()}
    await session.execute(delete(ExchangeRate).where(col(ExchangeRate.base_code) == base))
    updated_at = utc_now()
    session.add_all(
        ExchangeRate(base_code=base, counter_code=code, rate=rate_text(rate), updated_at=updated_at)
        for code, rate in parsed.items()
    )
    await session.flush()
    stored = await static_rates(session, base)
    assert stored == parsed
    return stored


# -- a provider over HTTP -----------------------------------------------------------------


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a rate")


def parse_provider_rates(raw: bytes, base: str) -> dict[str, Decimal]:
    """A provider's answer for `base` as exact rates; ValueError for anything else."""
    try:
        # Decimals straight from the JSON text: `0.1` stays exactly 0.1.
        document = json.loads(raw, parse_float=Decimal, parse_constant=_refuse_constant)
    except (RecursionError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"not a JSON document: {exc}") from exc
    if not isinstance(document, dict) or not isinstance(document.get("rates"), dict):
        raise ValueError('not an object with a "rates" object')
    if document.get("base") != base:
        raise ValueError(f"rates from {document.get('base')!r}, not from {base!r}")
    rates: dict[str, Any] = document["rates"]
    if len(rates) > PROVIDER_RATES_COUNT_MAX:
        raise ValueError(f"more than {PROVIDER_RATES_COUNT_MAX} rates")
    return {check_asset_code(code): _provider_rate(code, value) for code, value in rates.items()}


def _provider_rate(code: str, value: Any) -> Decimal:
    # bool is an int to Python, not a rate.
    if isinstance(value, (Decimal, int)) and not isinstance(value, bool):
        return check_provider_rate(code, Decimal(value))
    if isinstance(value, str) and _PROVIDER_RATE.fullmatch(value):
        try:
            return check_provider_rate(code, Decimal(value))
        except InvalidOperation as exc:
            raise ValueError(f"rate of {code} is not a number: {value!r}") from exc
    raise ValueError(f"rate of {code} is not a positive decimal: {value!r}")


class RatesProvider:
    """Fetches rates from the provider and caches them (one instance per process).

    `transport` is httpx's: tests pass a local app (httpx.ASGITransport or MockTransport);
    None is the network.
    """

    def __init__(self, *, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.transport = transport
        self._entries: dict[tuple[str, str], tuple[float, dict[str, Decimal]]] = {}
        """(url, base) -> (monotonic time fetched, rates)."""

    def forget(self) -> None:
        self._entries.clear()

    async def rates(self, url: str, base: str, *, cache_s: int) -> dict[str, Decimal]:
        check_asset_code(base)
        key = (url, base)
        entry = self._entries.get(key)
        now_s = time.monotonic()
        if entry is not None and now_s - entry[0] < cache_s:
            return dict(entry[1])
        rates = await self._fetch(url, base)
        self._entries.pop(key, None)
        if cache_s > 0:
            if len(self._entries) >= PROVIDER_CACHED_BASE_COUNT_MAX:
                # dicts keep insertion order: the first key is the oldest entry.
                del self._entries[next(iter(self._entries))]
            self._entries[key] = (now_s, rates)
        assert len(self._entries) <= PROVIDER_CACHED_BASE_COUNT_MAX
        return dict(rates)

    async def _fetch(self, url: str, base: str) -> dict[str, Decimal]:
        try:
            async with asyncio.timeout(PROVIDER_TIMEOUT_S):
                raw = await self._get(url, base)
            return parse_provider_rates(raw, base)
        except (TimeoutError, httpx.HTTPError, ValueError) as exc:
            raise ExchangeRatesUnavailable(
                f"exchange rate provider {url} gave no rates for {base}: {exc}"
            ) from exc

    async def _get(self, url: str, base: str) -> bytes:
        timeout = httpx.Timeout(PROVIDER_TIMEOUT_S)
        async with (
            httpx.AsyncClient(
                transport=self.transport, timeout=timeout, follow_redirects=False
            ) as client,
            client.stream(
                "GET", url, params={"base": base}, headers={"Accept": "application/json"}
            ) as response,
        ):
            return await read_ok_answer(
                response, size_bytes_max=PROVIDER_RESPONSE_BYTES_MAX, what="exchange rates"
            )


DEFAULT_PROVIDER: Final = RatesProvider()
"""The process's provider client and cache."""


async def rates_for(
    settings: Settings,
    session: AsyncSession,
    base: str,
    *,
    provider: RatesProvider | None = None,
) -> dict[str, Decimal]:
    """The rates from `base` that payments use: the provider's when `exchange_rates_url` is
    set (raises ExchangeRatesUnavailable when it fails), else the static table.

    A rate from `base` to itself is left out: an amount converts to its own asset one to
    one, whatever a table says.
    """
    check_asset_code(base)
    if settings.exchange_rates_url is None:
        rates = await static_rates(session, base)
    else:
        chosen = DEFAULT_PROVIDER if provider is None else provider
        rates = await chosen.rates(
            settings.exchange_rates_url, base, cache_s=settings.exchange_rates_cache_s
        )
    rates.pop(base, None)
    return rates
