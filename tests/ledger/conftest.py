"""Ledger fixtures: every test runs once on SQLite and once on PostgreSQL, each on a new
database at the newest schema (the top-level `settings`, `engine` and `sessions`), with a
few accounts made through the services."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from opase.ledger import (
    create_peer_liquidity_account,
    fees_account,
    settlement_account,
    wallet_account,
)
from opase.wallets.directory import create_asset, create_wallet_address
from tests.ledger.accounts import PEER_CREDIT_LIMIT_MINOR, Accounts


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
