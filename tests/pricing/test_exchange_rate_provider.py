"""Exchange rates from a provider over HTTP: a tiny local provider (a Starlette app behind
httpx's ASGI transport, no network) answers; its rates come back as exact decimals, cached
for `exchange_rates_cache_s`, and anything that is not rates for the base is refused."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from opase.pricing import rates as rate_service
from opase.pricing.rates import ExchangeRatesUnavailable, RatesProvider
from opase.settings import Settings

PROVIDER_URL = "http://rates.test/v1/rates"


class Provider:
    """Answers what a test sets in `answer`, and remembers what it was asked."""

    def __init__(self) -> None:
        self.asked: list[str] = []
        self.answer: Any = None
        self.app = Starlette(routes=[Route("/v1/rates", self.rates)])

    async def rates(self, request: Request) -> Response:
        self.asked.append(request.query_params["base"])
        if isinstance(self.answer, Response):
            return self.answer
        if isinstance(self.answer, bytes):
            return Response(self.answer, media_type="application/json")
        return JSONResponse(self.answer)


@pytest.fixture
def provider() -> Provider:
    return Provider()


@pytest.fixture
def client(provider: Provider) -> RatesProvider:
    return RatesProvider(transport=httpx.ASGITransport(app=provider.app))


async def test_the_providers_rates_are_exact_decimals_and_cached(
    provider: Provider, client: RatesProvider
) -> None:
    # Numbers are read from their JSON text: 0.1 is exactly 0.1, not the float near it.
    provider.answer = b'{"base": "USD", "rates": {"EUR": 0.1, "JPY": 151, "BTC": "1.53e-5"}}'
    found = await client.rates(PROVIDER_URL, "USD", cache_s=60)
    assert found == {"EUR": Decimal("0.1"), "JPY": Decimal(151), "BTC": Decimal("0.0000153")}
    assert all(isinstance(rate, Decimal) for rate in found.values())
    provider.answer = {"base": "USD", "rates": {"EUR": "0.5"}}
    assert await client.rates(PROVIDER_URL, "USD", cache_s=60) == found  # from the cache
    assert provider.asked == ["USD"]
    provider.answer = {"base": "EUR", "rates": {"USD": "1.087"}}
    assert await client.rates(PROVIDER_URL, "EUR", cache_s=60) == {"USD": Decimal("1.087")}
    assert provider.asked == ["USD", "EUR"]


async def test_no_cache_fetches_every_time(provider: Provider, client: RatesProvider) -> None:
    provider.answer = {"base": "USD", "rates": {"EUR": "0.92"}}
    await client.rates(PROVIDER_URL, "USD", cache_s=0)
    provider.answer = {"base": "USD", "rates": {"EUR": "0.93"}}
    assert await client.rates(PROVIDER_URL, "USD", cache_s=0) == {"EUR": Decimal("0.93")}
    assert provider.asked == ["USD", "USD"]


async def test_rates_for_asks_the_provider_when_a_url_is_set(
    provider: Provider, client: RatesProvider, app: Starlette
) -> None:
    services = app.state.services
    with_provider = Settings(
        **(services.settings.model_dump() | {"exchange_rates_url": PROVIDER_URL})
    )
    provider.answer = {"base": "USD", "rates": {"EUR": "0.91", "USD": "1"}}
    async with services.sessions() as session:
        static = await rate_service.rates_for(services.settings, session, "USD", provider=client)
        assert static == {}  # no static rates set, and the provider was not asked
        assert provider.asked == []
        found = await rate_service.rates_for(with_provider, session, "USD", provider=client)
    assert found == {"EUR": Decimal("0.91")}  # USD to itself is never used
    assert provider.asked == ["USD"]


BAD_ANSWERS = [
    b"not json",
    b"[1, 2]",
    b'{"base": "USD"}',
    b'{"base": "EUR", "rates": {"GBP": 0.8}}',
    b'{"rates": {"GBP": 0.8}}',
    b'{"base": "USD", "rates": [["GBP", 0.8]]}',
    b'{"base": "USD", "rates": {"GBP": 0}}',
    b'{"base": "USD", "rates": {"GBP": -0.8}}',
    b'{"base": "USD", "rates": {"GBP": "0"}}',
    b'{"base": "USD", "rates": {"GBP": "-1"}}',
    b'{"base": "USD", "rates": {"GBP": NaN}}',
    b'{"base": "USD", "rates": {"GBP": Infinity}}',
    b'{"base": "USD", "rates": {"GBP": true}}',
    b'{"base": "USD", "rates": {"GBP": null}}',
    b'{"base": "USD", "rates": {"GBP": "0.8 "}}',
    b'{"base": "USD", "rates": {"GBP": 0.1234567890123456789}}',  # 19 significant digits
    b'{"base": "USD", "rates": {"GBP": 1e30}}',
    b'{"base": "USD", "rates": {"GBP": 1e-30}}',
    b'{"base": "USD", "rates": {"gbp": 0.8}}',
    b"[" * 100_000,
]


@pytest.mark.parametrize("answer", BAD_ANSWERS, ids=range(len(BAD_ANSWERS)))
async def test_answers_that_are_not_rates_for_the_base_are_refused(
    provider: Provider, client: RatesProvider, answer: bytes
) -> None:
    provider.answer = answer
    with pytest.raises(ExchangeRatesUnavailable):
        await client.rates(PROVIDER_URL, "USD", cache_s=60)
    # Nothing was cached: the next good answer is used at once.
    provider.answer = {"base": "USD", "rates": {"GBP": "0.79"}}
    assert await client.rates(PROVIDER_URL, "USD", cache_s=60) == {"GBP": Decimal("0.79")}


async def test_error_statuses_and_redirects_are_refused(
    provider: Provider, client: RatesProvider
) -> None:
    for status in (301, 404, 500):
        provider.answer = Response(b"{}", status_code=status, headers={"Location": "/elsewhere"})
        with pytest.raises(ExchangeRatesUnavailable, match=str(status)):
            await client.rates(PROVIDER_URL, "USD", cache_s=60)


async def test_oversized_answers_are_refused(provider: Provider, client: RatesProvider) -> None:
    size_bytes = rate_service.PROVIDER_RESPONSE_BYTES_MAX + 1
    provider.answer = b" " * size_bytes  # declared by Content-Length
    with pytest.raises(ExchangeRatesUnavailable, match="larger"):
        await client.rates(PROVIDER_URL, "USD", cache_s=60)

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(size_bytes // 1024 + 1):
            yield b" " * 1024

    provider.answer = StreamingResponse(chunks(), media_type="application/json")  # undeclared
    with pytest.raises(ExchangeRatesUnavailable, match="larger"):
        await client.rates(PROVIDER_URL, "USD", cache_s=60)


async def test_a_slow_provider_times_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rate_service, "PROVIDER_TIMEOUT_S", 0.05)

    async def never_in_time(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(5)
        return httpx.Response(200, json={"base": "USD", "rates": {}})

    client = RatesProvider(transport=httpx.MockTransport(never_in_time))
    with pytest.raises(ExchangeRatesUnavailable):
        await client.rates(PROVIDER_URL, "USD", cache_s=60)


async def test_an_unreachable_provider_is_unavailable() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    client = RatesProvider(transport=httpx.MockTransport(refuse))
    with pytest.raises(ExchangeRatesUnavailable, match="connection refused"):
        await client.rates(PROVIDER_URL, "USD", cache_s=60)


@pytest.mark.parametrize(
    "url", ["ftp://rates.test", "rates.test/v1", "http://rates.test/v1?base=USD", "http://"]
)
def test_the_provider_url_must_be_an_http_url_without_a_query(url: str) -> None:
    with pytest.raises(ValidationError):
        Settings(exchange_rates_url=url)
    assert Settings(exchange_rates_url="https://rates.test/v1/").exchange_rates_url == (
        "https://rates.test/v1"
    )
