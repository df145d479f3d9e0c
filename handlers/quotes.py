"""Quote operations (resource-server.yaml)."""

from __future__ import annotations

from typing import NoReturn

from opase.pending import RESOURCE_SERVER, pending
from opase.routing import RequestContext


async def create_quote(ctx: RequestContext) -> NoReturn:
    pending(ctx, RESOURCE_SERVER)


async def get_quote(ctx: RequestContext) -> NoReturn:
    pending(ctx, RESOURCE_SERVER)
