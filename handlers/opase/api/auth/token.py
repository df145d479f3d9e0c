"""Access token rotation and revocation (auth-server.yaml)."""

from __future__ import annotations

from typing import Any

from opase.api.auth.grant import client_of, forget_tokens_of
from opase.authorization import grants
from opase.web.context import RequestContext


async def post_token(ctx: RequestContext) -> dict[str, Any]:
    client = client_of(ctx)
    async with ctx.transaction() as session:
        rotated = await grants.rotate_token(session, ctx.settings, client, ctx.path_params["id"])
    forget_tokens_of(ctx, client)
    return rotated


async def delete_token(ctx: RequestContext) -> None:
    client = client_of(ctx)
    async with ctx.transaction() as session:
        await grants.revoke_token(session, client, ctx.path_params["id"])
    forget_tokens_of(ctx, client)
