"""Client keys of a wallet address, published at `<wallet address>/jwks.json`."""

from __future__ import annotations

import uuid
from typing import Any

from opase.api.admin.operation import admin_session, path_id
from opase.security.key_pairs import generate_key_pair, public_jwk
from opase.wallets import directory as wallets
from opase.web.context import RequestContext


async def add_wallet_address_key(ctx: RequestContext) -> dict[str, Any]:
    body = ctx.document
    reply: dict[str, Any] = {}
    if "jwk" in body:
        key_id, x = body["jwk"]["kid"], body["jwk"]["x"]
    else:
        # The private key is returned this once and never stored.
        key_id = body.get("keyId") or f"key-{uuid.uuid4()}"
        x, reply["privateKeyPem"] = generate_key_pair()
    async with admin_session(ctx) as session:
        await wallets.add_key(session, path_id(ctx), key_id, x)
        record = await wallets.get_wallet_address_admin(session, path_id(ctx))
    ctx.services.forget_wallet_address(record.path)
    return {"jwk": public_jwk(key_id, x), **reply}


async def revoke_wallet_address_key(ctx: RequestContext) -> None:
    async with admin_session(ctx) as session:
        await wallets.revoke_key(session, path_id(ctx), ctx.path_params["keyId"])
        record = await wallets.get_wallet_address_admin(session, path_id(ctx))
    ctx.services.forget_wallet_address(record.path)
