"""Incoming payment operations (resource-server.yaml)."""

from __future__ import annotations

from typing import NoReturn

from opase.pending import RESOURCE_SERVER, pending
from opase.routing import RequestContext


async def create_incoming_payment(ctx: RequestContext) -> NoReturn:
    pending(ctx, RESOURCE_SERVER)


async def list_incoming_payments(ctx: RequestContext) -> NoReturn:
    pending(ctx, RESOURCE_SERVER)


async def get_incoming_payment(ctx: RequestContext) -> NoReturn:
    pending(ctx, RESOURCE_SERVER)


async def complete_incoming_payment(ctx: RequestContext) -> NoReturn:
    pending(ctx, RESOURCE_SERVER)
