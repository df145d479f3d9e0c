"""Wallet addresses: create, read, rename, deactivate."""

from __future__ import annotations

import uuid
from typing import Any

from opase.api.admin.operation import admin_session, path_id, wallet_address_view
from opase.wallets import directory as wallets
from opase.web.context import RequestContext


async def create_wallet_address(ctx: RequestContext) -> dict[str, Any]:
    body = ctx.document
    async with admin_session(ctx) as session:
        owner_id = None
        if "owner" in body:
            owner = await wallets.create_owner(
                session, body["owner"]["username"], body["owner"]["password"]
            )
            owner_id = owner.id
        created = await wallets.create_wallet_address(
            session,
            body["path"],
            uuid.UUID(body["assetId"]),
            body.get("publicName"),
            owner_id,
            reserved_paths=ctx.settings.reserved_wallet_address_paths,
        )
        record = await wallets.get_wallet_address_admin(session, created.id)
    ctx.services.forget_wallet_address(record.path)  # a cached 404 for this path is stale
    return wallet_address_view(ctx, record)


async def get_wallet_address_admin(ctx: RequestContext) -> dict[str, Any]:
    async with admin_session(ctx) as session:
        record = await wallets.get_wallet_address_admin(session, path_id(ctx))
    return wallet_address_view(ctx, record)


async def update_wallet_address(ctx: RequestContext) -> dict[str, Any]:
    async with admin_session(ctx) as session:
        await wallets.update_public_name(session, path_id(ctx), ctx.document["publicName"])
        record = await wallets.get_wallet_address_admin(session, path_id(ctx))
    ctx.services.forget_wallet_address(record.path)
    return wallet_address_view(ctx, record)


async def deactivate_wallet_address(ctx: RequestContext) -> dict[str, Any]:
    async with admin_session(ctx) as session:
        await wallets.deactivate_wallet_address(session, path_id(ctx))
        record = await wallets.get_wallet_address_admin(session, path_id(ctx))
    ctx.services.forget_wallet_address(record.path)
    return wallet_address_view(ctx, record)
