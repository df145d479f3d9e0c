"""Ledger fixtures: every test runs once on SQLite and once on PostgreSQL, each on a new
database at the newest schema (the top-level `settings`, `engine` and `sessions`), with a
few accounts made through the services."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from opase.ledger import (
    create_peer_liquidity_account,
    fees_account,
    settlement_account,
    wallet_account,
)
from opase.storage.tables import LedgerAccount, LedgerTransfer
from opase.wallets.service import create_asset, create_wallet_address

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


@pytest.fixture
async def accounts(sessions: async_sessionmaker[AsyncSession]) -> Accounts:
    async with sessions() as session:
        usd = await create_asset(session, "USD", 2)
        eur = await create_asset(session, "EUR", 2)
        alice = await create_wallet_address(session, "/alice", usd.id, None)
        bob = await create_wallet_address(session, "/bob", usd.id, None)
        carol = await create_wallet_address(session, "/carol", eur.id, None)
        peer = await create_peer_liquidity_account(
            session, usd.id, peer_id=uuid.uuid4(), credit_limit_minor=PEER_CREDIT_LIMIT_MINOR
        )
        made = Accounts(
            alice=alice.id,
            bob=bob.id,
            carol=carol.id,
            alice_account=(await wallet_account(session, alice.id)).id,
            bob_account=(await wallet_account(session, bob.id)).id,
            carol_account=(await wallet_account(session, carol.id)).id,
            usd_settlement=(await settlement_account(session, usd.id)).id,
            usd_fees=(await fees_account(session, usd.id)).id,
            usd_peer=peer.id,
        )
        await session.commit()
    return made


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
