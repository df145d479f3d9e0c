"""Low-liquidity news: a wallet address whose available balance drops below the ASE's
threshold (`liquidity_low_threshold_minor`) is reported once per drop, when it crosses the
line, not at every payment made while it stays below."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from opase.amounts import wire_amount
from opase.webhooks.outbox import enqueue


async def note_available_balance(
    session: AsyncSession,
    *,
    wallet_address_url: str,
    asset_code: str,
    asset_scale: int,
    threshold_minor: int | None,
    before_minor: int,
    after_minor: int,
) -> None:
    """Call, in the transaction that changed it, with the available balance before and
    after a change: enqueues `wallet_address.liquidity_low` when it went from at least
    `threshold_minor` to below it. None as the threshold: the report is off."""
    if threshold_minor is None:
        return
    assert threshold_minor > 0, threshold_minor
    if not before_minor >= threshold_minor > after_minor:
        return
    data = {
        "walletAddress": wallet_address_url,
        "threshold": wire_amount(threshold_minor, asset_code, asset_scale),
        "available": wire_amount(after_minor, asset_code, asset_scale),
    }
    await enqueue(session, "wallet_address.liquidity_low", data)
