"""Assets: an asset code and scale that wallet addresses hold amounts in."""

from __future__ import annotations

from typing import Any

from opase.api.admin.operation import admin_session
from opase.wallets.directory import create_asset as create_asset_record
from opase.wallets.directory import list_assets as list_asset_records
from opase.web.context import RequestContext


async def list_assets(ctx: RequestContext) -> dict[str, Any]:
    async with admin_session(ctx) as session:
        assets = await list_asset_records(session)
    return {"result": [{"id": str(a.id), "code": a.code, "scale": a.scale} for a in assets]}


async def create_asset(ctx: RequestContext) -> dict[str, Any]:
    async with admin_session(ctx) as session:
        asset = await create_asset_record(session, ctx.document["code"], ctx.document["scale"])
    return {"id": str(asset.id), "code": asset.code, "scale": asset.scale}
