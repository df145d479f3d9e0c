"""Outgoing payment operations and grant spent amounts (resource-server.yaml)."""

from __future__ import annotations

import uuid
from typing import Any, NoReturn

from opase.amounts import wire_amount
from opase.authorization.spending import OutsideInterval, SpendingNotFound, spent
from opase.errors import Forbidden, Unauthorized
from opase.pending import RESOURCE_SERVER, pending
from opase.routing import RequestContext
from opase.security import gnap_token
from opase.storage.tables import utc_now
from opase.wallets.service import find_wallet_address_by_url


async def create_outgoing_payment(ctx: RequestContext) -> NoReturn:
    pending(ctx, RESOURCE_SERVER)


async def list_outgoing_payments(ctx: RequestContext) -> NoReturn:
    pending(ctx, RESOURCE_SERVER)


async def get_outgoing_payment(ctx: RequestContext) -> NoReturn:
    pending(ctx, RESOURCE_SERVER)


async def get_outgoing_payment_grant(ctx: RequestContext) -> dict[str, Any]:
    """What payments under the token's grant have spent in the current interval: the debit
    in the sending wallet's asset, the receive amount in the asset of the grant's
    `receiveAmount` limit (null without one, since receivers' assets differ)."""
    token = gnap_token(ctx.headers)
    if token is None:
        raise Unauthorized("this operation needs an access token: Authorization: GNAP <token>")
    answer = await ctx.services.introspector.introspect(token)
    if not answer.get("active"):
        raise Unauthorized("the access token is not active")
    outgoing = [item for item in answer["access"] if item["type"] == "outgoing-payment"]
    if not outgoing:
        raise Forbidden("the access token's grant allows no outgoing payments")
    limits = outgoing[0].get("limits") or {}
    async with ctx.transaction() as session:
        try:
            used = await spent(session, uuid.UUID(answer["grant"]), at=utc_now())
            debit_minor, receive_minor = used.debit_minor, used.receive_minor
        except OutsideInterval:
            debit_minor = receive_minor = 0  # no current interval: nothing spent in it
        except SpendingNotFound:
            return {"spentDebitAmount": None, "spentReceiveAmount": None}
        debit_asset = limits.get("debitAmount")
        if debit_asset is None:
            wallet = await find_wallet_address_by_url(
                session, ctx.settings.public_url, outgoing[0]["identifier"]
            )
            if wallet is not None:
                debit_asset = {"assetCode": wallet.asset_code, "assetScale": wallet.asset_scale}
    receive_asset = limits.get("receiveAmount")
    return {
        "spentDebitAmount": _amount(debit_minor, debit_asset),
        "spentReceiveAmount": _amount(receive_minor, receive_asset),
    }


def _amount(value_minor: int, asset: dict[str, Any] | None) -> dict[str, Any] | None:
    if asset is None:
        return None
    return wire_amount(value_minor, asset["assetCode"], asset["assetScale"])
