"""Grant request, continuation and cancellation (auth-server.yaml)."""

from __future__ import annotations

from typing import NoReturn

from opase.pending import AUTH_SERVER, pending
from opase.routing import RequestContext


async def post_request(ctx: RequestContext) -> NoReturn:
    pending(ctx, AUTH_SERVER)


async def post_continue(ctx: RequestContext) -> NoReturn:
    pending(ctx, AUTH_SERVER)


async def delete_continue(ctx: RequestContext) -> NoReturn:
    pending(ctx, AUTH_SERVER)
