"""A wallet address's transfers, a page at a time (cursor pagination)."""

from __future__ import annotations

from typing import Any

from opase.api.admin.operation import admin_session, path_id
from opase.timestamps import wire_time
from opase.wallets import directory as wallets
from opase.wallets.statement import WalletTransfer, list_wallet_transfers
from opase.web.context import RequestContext

FIRST_DEFAULT = 20
"""The spec's default page size."""


def _transfer_view(transfer: WalletTransfer) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": str(transfer.id),
        "amount": str(transfer.amount_minor),
        "direction": transfer.direction,
        "state": transfer.state,
        "createdAt": wire_time(transfer.created_at),
    }
    if transfer.memo is not None:
        view["memo"] = transfer.memo
    return view


async def list_wallet_address_transfers(ctx: RequestContext) -> dict[str, Any]:
    wallet_address_id = path_id(ctx)
    async with admin_session(ctx) as session:
        # An unknown wallet address is a 404 before its cursor is judged.
        await wallets.get_wallet_address_admin(session, wallet_address_id)
        page = await list_wallet_transfers(
            session,
            wallet_address_id,
            first=ctx.query.get("first", FIRST_DEFAULT),
            cursor=ctx.query.get("cursor"),
        )
    page_info: dict[str, Any] = {"hasNextPage": page.has_next_page}
    if page.end_cursor is not None:
        page_info["endCursor"] = page.end_cursor
    return {"result": [_transfer_view(t) for t in page.transfers], "pageInfo": page_info}
