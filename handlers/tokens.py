"""Access token rotation and revocation (auth-server.yaml)."""

from __future__ import annotations

from typing import Any

from opase.authorization import grants
from opase.grants import client_of
from opase.routing import RequestContext


async def post_token(ctx: RequestContext) -> dict[str, Any]:
    async with ctx.transaction() as session:
        return await grants.rotate_token(
            session, ctx.settings, client_of(ctx), ctx.path_params["id"]
        )


async def delete_token(ctx: RequestContext) -> None:
    async with ctx.transaction() as session:
        await grants.revoke_token(session, client_of(ctx), ctx.path_params["id"])
