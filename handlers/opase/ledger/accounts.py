"""Ledger accounts: creating and finding them, locking them for a transfer, their balances.

Kinds: `wallet` (one per wallet address), and the ASE's own accounts: `settlement` (one
per asset, the mirror of money that entered or left the ASE, without a credit limit), `fees`
(one per asset) and `peer_liquidity` (per peer and asset, for the payment rail).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from opase.amounts import AMOUNT_MINOR_MAX
from opase.ledger._sql import dialect_name, insert_unless_conflict
from opase.ledger.refusals import AccountNotFound
from opase.storage.tables import LedgerAccount, sa_table, utc_now

LOCKED_ACCOUNT_COUNT_MAX: Final = 1_000
"""The most accounts one statement locks (`void_expired` locks a batch's accounts at once)."""


@dataclass(frozen=True, slots=True)
class Balance:
    """An account's balances in minor units, from its stored running sums.

    `available_minor` is what a new debit may use: posted credits less posted and pending
    debits. Pending credits are not available until they are posted.
    """

    posted_minor: int
    pending_debits_minor: int
    pending_credits_minor: int
    available_minor: int


def balance_of(account: LedgerAccount) -> Balance:
    posted_minor = account.credits_posted_minor - account.debits_posted_minor
    return Balance(
        posted_minor=posted_minor,
        pending_debits_minor=account.debits_pending_minor,
        pending_credits_minor=account.credits_pending_minor,
        available_minor=posted_minor - account.debits_pending_minor,
    )


def check_credit_limit_minor(credit_limit_minor: int) -> None:
    """A finite credit limit: an int (not a bool) in 0..2**63-1."""
    if isinstance(credit_limit_minor, bool) or not isinstance(credit_limit_minor, int):
        raise TypeError(
            f"credit_limit_minor must be an int, not {type(credit_limit_minor).__name__}"
        )
    if not 0 <= credit_limit_minor <= AMOUNT_MINOR_MAX:
        raise ValueError(
            f"credit_limit_minor must be in 0..{AMOUNT_MINOR_MAX}, not {credit_limit_minor}"
        )


async def create_wallet_account(
    session: AsyncSession,
    wallet_address_id: uuid.UUID,
    asset_id: uuid.UUID,
    *,
    credit_limit_minor: int = 0,
) -> LedgerAccount:
    """The ledger account of a new wallet address (one per wallet address)."""
    check_credit_limit_minor(credit_limit_minor)
    account = LedgerAccount(
        asset_id=asset_id,
        kind="wallet",
        wallet_address_id=wallet_address_id,
        credit_limit_minor=credit_limit_minor,
    )
    session.add(account)
    await session.flush()
    return account


async def create_peer_liquidity_account(
    session: AsyncSession,
    asset_id: uuid.UUID,
    *,
    peer_id: uuid.UUID | None = None,
    credit_limit_minor: int = 0,
) -> LedgerAccount:
    """A peer's liquidity account for the rail; `peer_id` may stay None until peers exist."""
    check_credit_limit_minor(credit_limit_minor)
    account = LedgerAccount(
        asset_id=asset_id,
        kind="peer_liquidity",
        peer_id=peer_id,
        credit_limit_minor=credit_limit_minor,
    )
    session.add(account)
    await session.flush()
    return account


async def get_account(session: AsyncSession, account_id: uuid.UUID) -> LedgerAccount:
    """The account as stored now (not as this session may have cached it)."""
    query = (
        select(LedgerAccount)
        .where(col(LedgerAccount.id) == account_id)
        .execution_options(populate_existing=True)
    )
    found = (await session.execute(query)).scalar_one_or_none()
    if found is None:
        raise AccountNotFound(f"no ledger account {account_id}")
    return found


async def wallet_account(session: AsyncSession, wallet_address_id: uuid.UUID) -> LedgerAccount:
    query = select(LedgerAccount).where(col(LedgerAccount.wallet_address_id) == wallet_address_id)
    found = (await session.execute(query)).scalar_one_or_none()
    if found is None:
        raise AccountNotFound(f"wallet address {wallet_address_id} has no ledger account")
    assert found.kind == "wallet"
    return found


async def _per_asset_account(
    session: AsyncSession, asset_id: uuid.UUID, kind: str
) -> LedgerAccount:
    """The asset's one account of `kind`, created on first use."""
    assert kind in ("settlement", "fees")
    of_kind = col(LedgerAccount.kind) == kind
    query = select(LedgerAccount).where(col(LedgerAccount.asset_id) == asset_id, of_kind)
    found = (await session.execute(query)).scalar_one_or_none()
    if found is not None:
        return found
    # The settlement account mirrors every deposit, so it has no limit; fees only grow.
    credit_limit_minor = None if kind == "settlement" else 0
    await insert_unless_conflict(
        session,
        sa_table(LedgerAccount),
        {
            "id": uuid.uuid4(),
            "asset_id": asset_id,
            "kind": kind,
            "credit_limit_minor": credit_limit_minor,
            "debits_posted_minor": 0,
            "credits_posted_minor": 0,
            "debits_pending_minor": 0,
            "credits_pending_minor": 0,
            "created_at": utc_now(),
        },
        conflict_columns=["asset_id"],
        # Names the partial unique index `uq_ledger_accounts_<kind>_asset_id`.
        conflict_where=sa.text(f"kind = '{kind}'"),
    )
    return (await session.execute(query)).scalar_one()


async def settlement_account(session: AsyncSession, asset_id: uuid.UUID) -> LedgerAccount:
    """The asset's settlement account, created on first use."""
    found = await _per_asset_account(session, asset_id, "settlement")
    assert found.credit_limit_minor is None  # unlimited: the only such account
    return found


async def fees_account(session: AsyncSession, asset_id: uuid.UUID) -> LedgerAccount:
    """The asset's fees account, created on first use."""
    found = await _per_asset_account(session, asset_id, "fees")
    assert found.credit_limit_minor is not None
    return found


async def lock_accounts(
    session: AsyncSession, account_ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, LedgerAccount]:
    """The accounts as stored now, locked against other writers until the transaction ends.

    PostgreSQL: row locks (SELECT ... FOR NO KEY UPDATE: the lock an UPDATE of the sums
    takes anyway, which still lets other transactions insert rows that refer to the
    account), taken in one order (sorted ids) by every transaction, so two transfers between
    the same accounts in opposite directions cannot deadlock. Chosen over SERIALIZABLE with
    retries because the ledger runs inside its caller's transaction (it flushes, never
    commits): a serialization failure could only be retried by re-running the caller's
    whole transaction, a loop every caller would have to write. Row locks make a conflicting
    writer wait instead of fail, at the default READ COMMITTED, and only writers of the same
    accounts wait. The cost is that a hot account (an asset's settlement account) serialises
    its writers.

    SQLite ignores FOR UPDATE and has one writer at a time; but the driver starts the
    transaction lazily (a deferred BEGIN before the first write), so two connections could
    both read a balance and then both write. A write first takes the database's write lock
    (waiting up to the busy timeout), so what is read next cannot change before commit:
    BEGIN IMMEDIATE, from inside a transaction that may already have begun.
    """
    ids = sorted(set(account_ids))
    assert 0 < len(ids) <= LOCKED_ACCOUNT_COUNT_MAX, len(ids)
    if dialect_name(session) == "sqlite":
        table = sa_table(LedgerAccount)
        take_write_lock = (
            sa.update(table)
            .where(table.c.id.in_(ids))
            .values(debits_posted_minor=table.c.debits_posted_minor)
        )
        await session.execute(take_write_lock)
    query = (
        select(LedgerAccount)
        .where(col(LedgerAccount.id).in_(ids))
        .order_by(col(LedgerAccount.id))
        .with_for_update(key_share=True)
        # The session may hold these rows from before the lock: read them again.
        .execution_options(populate_existing=True)
    )
    locked = {found.id: found for found in (await session.execute(query)).scalars().all()}
    missing = [account_id for account_id in ids if account_id not in locked]
    if missing:
        raise AccountNotFound(f"no ledger account {', '.join(map(str, missing))}")
    return locked


async def balance(session: AsyncSession, account_id: uuid.UUID) -> Balance:
    """The account's posted, pending and available balances, from its stored sums."""
    return balance_of(await get_account(session, account_id))


async def account_balance_minor(session: AsyncSession, account_id: uuid.UUID) -> int:
    """The account's posted balance: credits minus debits posted."""
    return (await balance(session, account_id)).posted_minor


async def balance_minor(session: AsyncSession, wallet_address_id: uuid.UUID) -> int:
    """The wallet address's posted balance in minor units of its asset."""
    found = await wallet_account(session, wallet_address_id)
    posted_minor = (await balance(session, found.id)).posted_minor
    # A wallet's credit limit lets the available balance, hence the posted, dip below zero.
    assert found.credit_limit_minor is not None
    assert -found.credit_limit_minor <= posted_minor <= AMOUNT_MINOR_MAX, posted_minor
    return posted_minor
