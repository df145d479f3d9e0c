"""Fees per asset: set one side, list both."""

from __future__ import annotations

from typing import Any

from opase.api.admin.operation import admin_session, path_id
from opase.pricing import fees
from opase.timestamps import wire_time
from opase.web.context import RequestContext


def _fee_view(fee: fees.Fee) -> dict[str, Any]:
    return {
        "kind": fee.kind,
        "fixed": str(fee.fixed_minor),
        "basisPoints": fee.basis_points,
        "updatedAt": wire_time(fee.updated_at),
    }


async def list_asset_fees(ctx: RequestContext) -> dict[str, Any]:
    async with admin_session(ctx) as session:
        found = await fees.list_fees(session, path_id(ctx))
    return {"result": [_fee_view(fee) for fee in found]}


async def set_asset_fee(ctx: RequestContext) -> dict[str, Any]:
    # The spec admits "0" or a ledger amount (at most 2**63-1): an int the database holds.
    fixed_minor = int(ctx.document["fixed"])
    async with admin_session(ctx) as session:
        fee = await fees.set_fee(
            session,
            path_id(ctx),
            ctx.path_params["kind"],
            fixed_minor=fixed_minor,
            basis_points=ctx.document["basisPoints"],
        )
    return _fee_view(fee)
