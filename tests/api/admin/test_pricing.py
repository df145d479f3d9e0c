"""Fees per asset and static exchange rates through the admin API: set, read, replaced as a
whole; bad input refused with nothing changed. The arithmetic is tests/pricing."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import pytest
from starlette.applications import Starlette

from opase.amounts import AMOUNT_MINOR_MAX
from opase.pricing import fees as fee_service
from opase.pricing import rates as rate_service
from tests.api.admin.back_office import SOME_ID, create_asset
from tests.client import CheckedClient
from tests.responses import error_code

# -- fees ---------------------------------------------------------------------------------


async def test_fees_are_set_per_side_replaced_and_listed(
    admin: CheckedClient, apps: tuple[Starlette, Starlette]
) -> None:
    asset_id = await create_asset(admin)
    assert (await admin.get(f"/assets/{asset_id}/fees")).json() == {"result": []}
    receiving = await admin.put(
        f"/assets/{asset_id}/fees/receiving", json={"fixed": "0", "basisPoints": 0}
    )
    assert receiving.status_code == 200, receiving.text
    sending = await admin.put(
        f"/assets/{asset_id}/fees/sending", json={"fixed": "30", "basisPoints": 250}
    )
    assert sending.status_code == 200, sending.text
    assert sending.json()["kind"] == "sending" and sending.json()["fixed"] == "30"
    replaced = await admin.put(
        f"/assets/{asset_id}/fees/sending",
        json={"fixed": "9223372036854775807", "basisPoints": 10000},
    )
    assert replaced.status_code == 200, replaced.text
    listed = (await admin.get(f"/assets/{asset_id}/fees")).json()["result"]
    assert [(f["kind"], f["fixed"], f["basisPoints"]) for f in listed] == [
        ("sending", "9223372036854775807", 10000),
        ("receiving", "0", 0),
    ]
    async with apps[0].state.services.sessions() as session:
        sending_fee = await fee_service.fee_for(session, uuid.UUID(asset_id), "sending")
        assert sending_fee is not None
        assert (sending_fee.fixed_minor, sending_fee.basis_points) == (AMOUNT_MINOR_MAX, 10000)
        other_asset = uuid.UUID(await create_asset(admin, "EUR"))
        assert await fee_service.fee_for(session, other_asset, "sending") is None


async def test_fees_of_an_unknown_asset_are_404(admin: CheckedClient) -> None:
    put = await admin.put(f"/assets/{SOME_ID}/fees/sending", json={"fixed": "1", "basisPoints": 1})
    assert error_code(put, 404) == "not_found"
    assert error_code(await admin.get(f"/assets/{SOME_ID}/fees"), 404) == "not_found"


@pytest.mark.parametrize(
    "body",
    [
        {"fixed": "0", "basisPoints": 10001},
        {"fixed": "0", "basisPoints": -1},
        {"fixed": "0", "basisPoints": 2.5},
        {"fixed": "0", "basisPoints": "25"},
        {"fixed": "-1", "basisPoints": 0},
        {"fixed": "-0", "basisPoints": 0},
        {"fixed": "01", "basisPoints": 0},
        {"fixed": "1.5", "basisPoints": 0},
        {"fixed": "1e3", "basisPoints": 0},
        {"fixed": "", "basisPoints": 0},
        {"fixed": 5, "basisPoints": 0},
        {"fixed": 5.0, "basisPoints": 0},
        {"fixed": "9223372036854775808", "basisPoints": 0},
        {"fixed": "1"},
        {"basisPoints": 1},
        {"fixed": "1", "basisPoints": 1, "currency": "USD"},
    ],
)
async def test_bad_fees_are_refused_and_change_nothing(
    admin: CheckedClient, body: dict[str, Any]
) -> None:
    asset_id = await create_asset(admin)
    url = f"/assets/{asset_id}/fees/sending"
    assert (await admin.put(url, json={"fixed": "7", "basisPoints": 70})).status_code == 200
    before = (await admin.get(f"/assets/{asset_id}/fees")).json()
    response = await admin.put(url, json=body)
    assert error_code(response, 400) == "invalid_request"
    assert response.json()["error"]["code"] == "invalid_request"
    assert (await admin.get(f"/assets/{asset_id}/fees")).json() == before


async def test_an_unknown_fee_kind_is_refused(admin: CheckedClient) -> None:
    asset_id = await create_asset(admin)
    body = {"fixed": "1", "basisPoints": 1}
    other = await admin.put(f"/assets/{asset_id}/fees/other", json=body)
    assert error_code(other, 400) == "invalid_request"
    assert (await admin.get(f"/assets/{asset_id}/fees")).json() == {"result": []}


# -- static exchange rates ----------------------------------------------------------------


async def test_rates_are_set_read_canonical_and_replaced_per_base(
    admin: CheckedClient, apps: tuple[Starlette, Starlette]
) -> None:
    assert (await admin.get("/exchange-rates?base=USD")).json() == {"base": "USD", "rates": {}}
    body = {
        "base": "USD",
        "rates": {"EUR": "0.92", "JPY": "151.250", "BTC": "0.0000153", "IDR": "15640", "USD": "1"},
    }
    created = await admin.put("/exchange-rates", json=body)
    assert created.status_code == 200, created.text
    expected = {"EUR": "0.92", "JPY": "151.25", "BTC": "0.0000153", "IDR": "15640", "USD": "1"}
    assert created.json() == {"base": "USD", "rates": expected}
    assert (await admin.get("/exchange-rates", params={"base": "USD"})).json()["rates"] == expected
    assert (await admin.get("/exchange-rates?base=EUR")).json()["rates"] == {}

    async with apps[0].state.services.sessions() as session:
        found = await rate_service.rates_for(apps[0].state.services.settings, session, "USD")
    # Exact decimals; the rate from USD to itself is never used.
    assert found == {
        "BTC": Decimal("0.0000153"),
        "EUR": Decimal("0.92"),
        "IDR": Decimal(15640),
        "JPY": Decimal("151.25"),
    }
    assert all(isinstance(rate, Decimal) for rate in found.values())

    replaced = await admin.put("/exchange-rates", json={"base": "USD", "rates": {"GBP": "0.79"}})
    assert replaced.json()["rates"] == {"GBP": "0.79"}
    await admin.put("/exchange-rates", json={"base": "EUR", "rates": {"USD": "1.087"}})
    assert (await admin.get("/exchange-rates?base=USD")).json()["rates"] == {"GBP": "0.79"}
    cleared = await admin.put("/exchange-rates", json={"base": "USD", "rates": {}})
    assert cleared.json()["rates"] == {}
    assert (await admin.get("/exchange-rates?base=EUR")).json()["rates"] == {"USD": "1.087"}


@pytest.mark.parametrize(
    "rate",
    [
        "0", "0.0", "0.000", "-1", "-0.5", "+1", "1e5", "1E5", "1.5e-3", " 1", "1 ", "1.", ".5",
        "01", "0x10", "NaN", "Infinity", "", "1,5",
        "1234567890123456789",  # 19 digits
        "0.123456789012345678",  # 18 digits after the point, 19 in all
        0.92, 1, True, None,
    ],
)  # fmt: skip
async def test_bad_rates_are_refused_and_change_nothing(admin: CheckedClient, rate: Any) -> None:
    await admin.put("/exchange-rates", json={"base": "USD", "rates": {"EUR": "0.92"}})
    response = await admin.put(
        "/exchange-rates", json={"base": "USD", "rates": {"GBP": "0.79", "JPY": rate}}
    )
    assert error_code(response, 400) == "invalid_request"
    assert (await admin.get("/exchange-rates?base=USD")).json()["rates"] == {"EUR": "0.92"}


@pytest.mark.parametrize(
    "body",
    [
        {"base": "usd", "rates": {"EUR": "0.92"}},
        {"base": "US", "rates": {"EUR": "0.92"}},
        {"base": "USD", "rates": {"eur": "0.92"}},
        {"base": "USD", "rates": {"EU": "0.92"}},
        {"base": "USD", "rates": [["EUR", "0.92"]]},
        {"base": "USD", "rates": {f"C{n:03}": "1" for n in range(501)}},
        {"base": "USD"},
        {"rates": {"EUR": "0.92"}},
        {"base": "USD", "rates": {}, "timestamp": 1},
    ],
)
async def test_bad_rate_tables_are_refused_and_change_nothing(
    admin: CheckedClient, body: dict[str, Any]
) -> None:
    await admin.put("/exchange-rates", json={"base": "USD", "rates": {"EUR": "0.92"}})
    response = await admin.put("/exchange-rates", json=body)
    assert error_code(response, 400) == "invalid_request"
    assert (await admin.get("/exchange-rates?base=USD")).json()["rates"] == {"EUR": "0.92"}


async def test_reading_rates_needs_a_valid_base(admin: CheckedClient) -> None:
    for query in ("", "?base=usd", "?base=USD&base=EUR"):
        response = await admin.get(f"/exchange-rates{query}")
        assert error_code(response, 400) == "invalid_request", query


async def test_a_put_with_an_idempotency_key_answers_a_repeat_and_refuses_a_reuse(
    admin: CheckedClient,
) -> None:
    asset_id = await create_asset(admin)
    url = f"/assets/{asset_id}/fees/sending"
    key = {"Idempotency-Key": "fee-1"}
    first = await admin.put(url, json={"fixed": "5", "basisPoints": 5}, headers=key)
    again = await admin.put(url, json={"fixed": "5", "basisPoints": 5}, headers=key)
    assert first.status_code == again.status_code == 200
    assert first.json() == again.json()  # the stored answer, updatedAt included
    reused = await admin.put(url, json={"fixed": "6", "basisPoints": 5}, headers=key)
    assert error_code(reused, 409) == "conflict"
    assert (await admin.get(f"/assets/{asset_id}/fees")).json()["result"] == [first.json()]
