"""The small ASE of the ledger tests (the `accounts` fixture makes it) and what a refusal must
leave as it was (`snapshot`)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from opase.storage.tables import LedgerAccount, LedgerTransfer

PEER_CREDIT_LIMIT_MINOR = 1_000


@dataclass(frozen=True)
class Accounts:
    """Wallet address ids and ledger account ids of one small ASE."""

    alice: uuid.UUID
    """Wallet address /alice (USD); `alice_account` is its ledger account."""
    bob: uuid.UUID
    carol: uuid.UUID
    """Wallet address /carol, in EUR."""
    alice_account: uuid.UUID
    bob_account: uuid.UUID
    carol_account: uuid.UUID
    usd_settlement: uuid.UUID
    usd_fees: uuid.UUID
    usd_peer: uuid.UUID
    """A USD peer liquidity account that may go PEER_CREDIT_LIMIT_MINOR below zero."""


Snapshot = tuple[int, dict[uuid.UUID, tuple[int, int, int, int]]]


async def snapshot(sessions: async_sessionmaker[AsyncSession]) -> Snapshot:
    """The transfer count and every account's running sums: what a refusal must not change."""
    async with sessions() as session:
        count = (
            await session.execute(select(func.count()).select_from(LedgerTransfer))
        ).scalar_one()
        rows = (await session.execute(select(LedgerAccount))).scalars().all()
        sums = {
            row.id: (
                row.debits_posted_minor,
                row.credits_posted_minor,
                row.debits_pending_minor,
                row.credits_pending_minor,
            )
            for row in rows
        }
    return count, sums
