"""Double-entry ledger: every transfer debits one account and credits another by the same
positive integer amount, so the balances of all accounts of an asset always sum to zero.

Balances are not stored: they are derived from the transfer history, which is only ever
appended to. Functions here flush but never commit: the caller owns the transaction.
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from opase.storage.tables import (
    AMOUNT_MINOR_MAX,
    LedgerAccount,
    LedgerTransfer,
    sa_table,
    utc_now,
)

IDEMPOTENCY_KEY_LENGTH_MAX: Final = 255


class IdempotencyKeyReused(ValueError):
    """The idempotency key already names a different transfer."""


def check_amount_minor(amount_minor: int) -> None:
    """A transfer amount: an int (not a bool, float or Decimal) in 1..2**63-1."""
    if isinstance(amount_minor, bool) or not isinstance(amount_minor, int):
        raise TypeError(f"amount_minor must be an int, not {type(amount_minor).__name__}")
    if not 0 < amount_minor <= AMOUNT_MINOR_MAX:
        raise ValueError(f"amount_minor must be in 1..{AMOUNT_MINOR_MAX}, not {amount_minor}")


def _check_idempotency_key(idempotency_key: str) -> None:
    if not 0 < len(idempotency_key) <= IDEMPOTENCY_KEY_LENGTH_MAX:
        raise ValueError(f"idempotency_key must have 1..{IDEMPOTENCY_KEY_LENGTH_MAX} characters")


async def _insert_unless_conflict(
    session: AsyncSession,
    table: sa.Table,
    values: dict[str, Any],
    conflict_columns: list[str],
    conflict_where: sa.ColumnElement[bool] | sa.TextClause | None = None,
) -> bool:
    """INSERT ... ON CONFLICT DO NOTHING; True if the row was inserted.

    Get-or-create by "select, then insert" races with another transaction doing the same;
    letting the unique index decide is race-free on both databases (PostgreSQL waits for
    the other transaction, SQLite has a single writer) and keeps the caller's transaction
    usable, unlike catching an IntegrityError.
    """
    dialect = session.get_bind().dialect.name
    statement: postgresql.Insert | sqlite.Insert
    if dialect == "postgresql":
        statement = postgresql.insert(table).on_conflict_do_nothing(
            index_elements=conflict_columns, index_where=conflict_where
        )
    elif dialect == "sqlite":
        statement = sqlite.insert(table).on_conflict_do_nothing(
            index_elements=conflict_columns, index_where=conflict_where
        )
    else:
        raise NotImplementedError(f"no INSERT ... ON CONFLICT for {dialect}")
    returning_id = statement.values(values).returning(table.c.id)
    inserted = (await session.execute(returning_id)).scalar_one_or_none()
    assert inserted in (None, values["id"])
    return inserted is not None


async def create_wallet_account(
    session: AsyncSession, wallet_address_id: uuid.UUID, asset_id: uuid.UUID
) -> LedgerAccount:
    """The ledger account of a new wallet address (one per wallet address)."""
    account = LedgerAccount(asset_id=asset_id, kind="wallet", wallet_address_id=wallet_address_id)
    session.add(account)
    await session.flush()
    return account


async def wallet_account(session: AsyncSession, wallet_address_id: uuid.UUID) -> LedgerAccount:
    account = (
        await session.execute(
            select(LedgerAccount).where(col(LedgerAccount.wallet_address_id) == wallet_address_id)
        )
    ).scalar_one_or_none()
    if account is None:
        raise LookupError(f"wallet address {wallet_address_id} has no ledger account")
    assert account.kind == "wallet"
    return account


async def settlement_account(session: AsyncSession, asset_id: uuid.UUID) -> LedgerAccount:
    """The asset's settlement account, created on first use."""
    is_settlement = col(LedgerAccount.kind) == "settlement"
    query = select(LedgerAccount).where(col(LedgerAccount.asset_id) == asset_id, is_settlement)
    account = (await session.execute(query)).scalar_one_or_none()
    if account is not None:
        return account
    await _insert_unless_conflict(
        session,
        sa_table(LedgerAccount),
        {"id": uuid.uuid4(), "asset_id": asset_id, "kind": "settlement", "created_at": utc_now()},
        conflict_columns=["asset_id"],
        # Names the partial unique index `uq_ledger_accounts_settlement_asset_id`.
        conflict_where=sa.text("kind = 'settlement'"),
    )
    return (await session.execute(query)).scalar_one()


async def _transfer_by_idempotency_key(
    session: AsyncSession, idempotency_key: str
) -> LedgerTransfer | None:
    query = select(LedgerTransfer).where(col(LedgerTransfer.idempotency_key) == idempotency_key)
    return (await session.execute(query)).scalar_one_or_none()


def _same_transfer_or_raise(
    existing: LedgerTransfer,
    debit_account_id: uuid.UUID,
    credit_account_id: uuid.UUID,
    amount_minor: int,
) -> uuid.UUID:
    # A retry must ask for the same movement; anything else is a client bug, not a retry.
    if (existing.debit_account_id, existing.credit_account_id, existing.amount_minor) != (
        debit_account_id,
        credit_account_id,
        amount_minor,
    ):
        raise IdempotencyKeyReused(
            f"idempotency key {existing.idempotency_key!r} was used for another transfer"
        )
    return existing.id


async def deposit(
    session: AsyncSession, wallet_address_id: uuid.UUID, amount_minor: int, idempotency_key: str
) -> uuid.UUID:
    """Money enters the ledger: debit the asset's settlement account, credit the wallet's.

    Returns the transfer id. Repeating a deposit with the same idempotency key returns the
    first transfer's id and changes nothing; reusing the key for a different deposit raises
    `IdempotencyKeyReused`. Nothing is written when an argument is refused.
    """
    check_amount_minor(amount_minor)
    _check_idempotency_key(idempotency_key)
    credit = await wallet_account(session, wallet_address_id)
    debit = await settlement_account(session, credit.asset_id)
    existing = await _transfer_by_idempotency_key(session, idempotency_key)
    if existing is not None:
        return _same_transfer_or_raise(existing, debit.id, credit.id, amount_minor)

    # Every balance stays within BIGINT so that every database can sum it (SQLite's SUM
    # fails beyond 64 bits). The settlement account holds minus the asset's deposits, so
    # this also bounds the asset's total on the ledger.
    wallet_balance_minor = await account_balance_minor(session, credit.id)
    settlement_balance_minor = await account_balance_minor(session, debit.id)
    if wallet_balance_minor + amount_minor > AMOUNT_MINOR_MAX:
        raise ValueError(f"deposit would take the wallet balance above {AMOUNT_MINOR_MAX}")
    if settlement_balance_minor - amount_minor < -AMOUNT_MINOR_MAX:
        raise ValueError(f"deposit would take the asset's total balance above {AMOUNT_MINOR_MAX}")

    transfer_id = uuid.uuid4()
    inserted = await _insert_unless_conflict(
        session,
        sa_table(LedgerTransfer),
        {
            "id": transfer_id,
            "debit_account_id": debit.id,
            "credit_account_id": credit.id,
            "amount_minor": amount_minor,
            "idempotency_key": idempotency_key,
            "created_at": utc_now(),
        },
        conflict_columns=["idempotency_key"],
    )
    if inserted:
        return transfer_id
    # Another transaction committed this key between our look-up and our insert.
    existing = await _transfer_by_idempotency_key(session, idempotency_key)
    assert existing is not None
    return _same_transfer_or_raise(existing, debit.id, credit.id, amount_minor)


def _exact_int(value: object) -> int:
    # PostgreSQL sums BIGINT as NUMERIC; convert exactly, never through float.
    if isinstance(value, Decimal):
        integral = int(value)
        assert integral == value, value
        return integral
    assert isinstance(value, int) and not isinstance(value, bool), value
    return value


async def account_balance_minor(session: AsyncSession, account_id: uuid.UUID) -> int:
    """Credits minus debits of one ledger account, from its transfer history."""
    credit_id = col(LedgerTransfer.credit_account_id)
    debit_id = col(LedgerTransfer.debit_account_id)
    amount = col(LedgerTransfer.amount_minor)
    signed_amount = sa.case((credit_id == account_id, amount), else_=-amount)
    query = sa.select(sa.func.coalesce(sa.func.sum(signed_amount), 0)).where(
        sa.or_(credit_id == account_id, debit_id == account_id)
    )
    return _exact_int((await session.execute(query)).scalar_one())


async def balance_minor(session: AsyncSession, wallet_address_id: uuid.UUID) -> int:
    """The wallet address's balance in minor units of its asset."""
    account = await wallet_account(session, wallet_address_id)
    balance = await account_balance_minor(session, account.id)
    assert 0 <= balance <= AMOUNT_MINOR_MAX, balance  # wallets have no overdraft
    return balance
