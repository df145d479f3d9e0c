"""The body of one writer process of `test_concurrency` (importable by a spawned child)."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession

from opase.ledger import InsufficientFunds, transfer, withdraw
from opase.settings import Settings
from opase.storage.engine import create_engine, session_factory

OPERATION_COUNT = 30
WITHDRAWAL_MINOR = 7
TRANSFER_MINOR = 5


async def _operation(
    session: AsyncSession,
    index: int,
    wallet_address_ids: list[uuid.UUID],
    account_ids: list[uuid.UUID],
    idempotency_key: str,
) -> int:
    """Every third operation withdraws, the others move money between the two wallets, in
    both directions; returns the amount withdrawn."""
    source = index % 2
    if index % 3 == 0:
        await withdraw(session, wallet_address_ids[source], WITHDRAWAL_MINOR, idempotency_key)
        return WITHDRAWAL_MINOR
    await transfer(
        session,
        debit_account_id=account_ids[source],
        credit_account_id=account_ids[1 - source],
        amount_minor=TRANSFER_MINOR,
        idempotency_key=idempotency_key,
    )
    return 0


async def _write(
    settings: Settings, wallet_address_ids: list[uuid.UUID], account_ids: list[uuid.UUID], name: str
) -> int:
    engine = create_engine(settings)
    sessions = session_factory(engine)
    withdrawn_minor = 0
    try:
        for index in range(OPERATION_COUNT):
            async with sessions() as session:
                try:
                    withdrawal_minor = await _operation(
                        session, index, wallet_address_ids, account_ids, f"{name}-{index}"
                    )
                except InsufficientFunds:
                    await session.rollback()
                    continue
                await session.commit()
                withdrawn_minor += withdrawal_minor
    finally:
        await engine.dispose()
    return withdrawn_minor


def write(
    data_dir: str,
    database_url: str,
    wallet_address_ids: list[uuid.UUID],
    account_ids: list[uuid.UUID],
    name: str,
) -> int:
    """Run one writer to the end in this process; returns the amount it withdrew."""
    settings = Settings(data_dir=Path(data_dir), database_url=database_url)
    return asyncio.run(_write(settings, wallet_address_ids, account_ids, name))
