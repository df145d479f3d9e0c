"""The static exchange rate table, in Rafiki's shape: `{"base": ..., "rates": {...}}`."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from opase.api.admin.operation import admin_session
from opase.pricing import rates
from opase.web.context import RequestContext


def _rates_view(base: str, found: dict[str, Decimal]) -> dict[str, Any]:
    # Strings, never JSON numbers: a client's float parser would round them.
    return {"base": base, "rates": {code: rates.rate_text(rate) for code, rate in found.items()}}


async def get_exchange_rates(ctx: RequestContext) -> dict[str, Any]:
    base = ctx.query["base"]
    async with admin_session(ctx) as session:
        found = await rates.static_rates(session, base)
    return _rates_view(base, found)


async def set_exchange_rates(ctx: RequestContext) -> dict[str, Any]:
    base = ctx.document["base"]
    async with admin_session(ctx) as session:
        stored = await rates.set_static_rates(session, base, ctx.document["rates"])
    return _rates_view(base, stored)
