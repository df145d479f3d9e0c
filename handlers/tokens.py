"""Access token rotation and revocation (auth-server.yaml)."""

from __future__ import annotations

from typing import Any

from opase.authorization import grants
from opase.grants import client_of
from opase.routing import RequestContext
from opase.security.bindings import ClientBinding


async def post_token(ctx: RequestContext) -> dict[str, Any]:
    client = client_of(ctx)
    async with ctx.transaction() as session:
        rotated = await grants.rotate_token(session, ctx.settings, client, ctx.path_params["id"])
    _forget(ctx, client)
    return rotated


async def delete_token(ctx: RequestContext) -> None:
    client = client_of(ctx)
    async with ctx.transaction() as session:
        await grants.revoke_token(session, client, ctx.path_params["id"])
    _forget(ctx, client)


def _forget(ctx: RequestContext, client: ClientBinding) -> None:
    """After the commit, so that no request that read the old token keeps it cached."""
    assert client.grant_id is not None  # a token's binding names its grant
    ctx.services.access_tokens.forget_grant(client.grant_id)
