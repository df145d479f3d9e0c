"""Access token rotation and revocation (auth-server.yaml)."""

from __future__ import annotations

from typing import NoReturn

from opase.pending import AUTH_SERVER, pending
from opase.routing import RequestContext


async def post_token(ctx: RequestContext) -> NoReturn:
    pending(ctx, AUTH_SERVER)


async def delete_token(ctx: RequestContext) -> NoReturn:
    pending(ctx, AUTH_SERVER)
