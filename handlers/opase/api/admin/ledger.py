"""Money entering and leaving the ASE through a wallet address, and its balance."""

from __future__ import annotations

from typing import Any

from opase import ledger
from opase.api.admin.operation import admin_session, path_id
from opase.wallets import directory as wallets
from opase.web.context import RequestContext


def _amount_minor(ctx: RequestContext) -> int:
    # The spec's uint64 format admits up to 2**64-1; the ledger refuses what it cannot hold.
    return int(ctx.document["amount"])


async def _move(ctx: RequestContext, direction: str) -> dict[str, Any]:
    wallet_address_id = path_id(ctx)
    key = f"admin-{direction}:{ctx.header_params['idempotency-key']}"
    async with admin_session(ctx) as session:
        record = await wallets.get_wallet_address_admin(session, wallet_address_id)
        move = ledger.deposit if direction == "deposit" else ledger.withdraw
        transfer_id = await move(session, wallet_address_id, _amount_minor(ctx), key)
        balance_minor = await ledger.balance_minor(session, wallet_address_id)
    return {
        "id": str(transfer_id),
        "amount": ctx.document["amount"],
        "assetCode": record.asset_code,
        "assetScale": record.asset_scale,
        "balance": str(balance_minor),
    }


async def create_deposit(ctx: RequestContext) -> dict[str, Any]:
    return await _move(ctx, "deposit")


async def create_withdrawal(ctx: RequestContext) -> dict[str, Any]:
    return await _move(ctx, "withdrawal")


async def get_balance(ctx: RequestContext) -> dict[str, Any]:
    wallet_address_id = path_id(ctx)
    async with admin_session(ctx) as session:
        record = await wallets.get_wallet_address_admin(session, wallet_address_id)
        account = await ledger.wallet_account(session, wallet_address_id)
        found = await ledger.balance(session, account.id)
    # Wallet accounts get no credit line, so neither figure can go below zero (the spec's
    # uint64 could not say so): a credit line would need a signed amount in admin.yaml first.
    assert found.available_minor >= 0 and found.posted_minor >= found.available_minor
    return {
        "walletAddressId": str(wallet_address_id),
        "assetCode": record.asset_code,
        "assetScale": record.asset_scale,
        "balance": str(found.posted_minor),
        "available": str(found.available_minor),
    }
