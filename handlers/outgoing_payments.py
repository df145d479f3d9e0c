"""Outgoing payment operations and grant spent amounts (resource-server.yaml)."""

from __future__ import annotations

from typing import NoReturn

from opase.pending import RESOURCE_SERVER, pending
from opase.routing import RequestContext


async def create_outgoing_payment(ctx: RequestContext) -> NoReturn:
    pending(ctx, RESOURCE_SERVER)


async def list_outgoing_payments(ctx: RequestContext) -> NoReturn:
    pending(ctx, RESOURCE_SERVER)


async def get_outgoing_payment(ctx: RequestContext) -> NoReturn:
    pending(ctx, RESOURCE_SERVER)


async def get_outgoing_payment_grant(ctx: RequestContext) -> NoReturn:
    pending(ctx, RESOURCE_SERVER)
