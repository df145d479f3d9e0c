"""The transfer history: auditing the stored running sums against it, and paging through it."""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from opase.ledger._sql import exact_int
from opase.ledger.transfers import TransferResult, transfer_result
from opase.storage.keyset import KeysetCursor, past
from opase.storage.tables import LedgerAccount, LedgerTransfer, sa_table

TRANSFER_PAGE_LIMIT_MAX: Final = 500
_SPLIT: Final = 2**32
"""Audit sums add the high and low 32 bits of amounts apart, so that no SQL SUM overflows
BIGINT (SQLite's SUM raises beyond 64 bits) even when the history is corrupt; the halves of
fewer than 2**31 rows per account fit."""
_RUNNING_SUMS: Final = (
    "debits_posted_minor",
    "credits_posted_minor",
    "debits_pending_minor",
    "credits_pending_minor",
)


@dataclass(frozen=True, slots=True)
class AuditDifference:
    """One finding. `account_id` is None for a check of a whole asset."""

    account_id: uuid.UUID | None
    check: str
    found_minor: int
    expected_minor: int


def _history_sums(side: str, kinds: tuple[str, ...], *, unresolved_only: bool) -> sa.Subquery:
    """Per account on `side` (debit or credit): the split sum of its transfers' amounts."""
    transfers = sa_table(LedgerTransfer)
    account_id = transfers.c[f"{side}_account_id"]
    amount = transfers.c.amount_minor
    query = sa.select(
        account_id.label("account_id"),
        sa.func.sum(amount // _SPLIT).label("high"),
        sa.func.sum(amount % _SPLIT).label("low"),
    ).where(transfers.c.kind.in_(kinds))
    if unresolved_only:
        resolutions = transfers.alias("resolutions")
        query = query.where(~sa.exists().where(resolutions.c.pending_id == transfers.c.id))
    return query.group_by(account_id).subquery()


def _audit_query() -> sa.Select[Any]:
    """One statement, so that it reads one snapshot while other transfers commit."""
    accounts = sa_table(LedgerAccount)
    recomputed = {
        "debits_posted_minor": _history_sums(
            "debit", ("posted", "post_pending"), unresolved_only=False
        ),
        "credits_posted_minor": _history_sums(
            "credit", ("posted", "post_pending"), unresolved_only=False
        ),
        "debits_pending_minor": _history_sums("debit", ("pending",), unresolved_only=True),
        "credits_pending_minor": _history_sums("credit", ("pending",), unresolved_only=True),
    }
    columns: list[Any] = [
        accounts.c.id,
        accounts.c.asset_id,
        accounts.c.credit_limit_minor,
        *(accounts.c[name] for name in _RUNNING_SUMS),
    ]
    joined: sa.FromClause = accounts
    for name, sums in recomputed.items():
        columns += [sums.c.high.label(f"{name}_high"), sums.c.low.label(f"{name}_low")]
        joined = joined.outerjoin(sums, sums.c.account_id == accounts.c.id)
    return sa.select(*columns).select_from(joined).order_by(accounts.c.id)


def _joined_sum(high: object, low: object) -> int:
    if high is None:
        assert low is None
        return 0
    return exact_int(high) * _SPLIT + exact_int(low)


def _account_differences(row: sa.Row[Any]) -> list[AuditDifference]:
    found = row._mapping
    differences = []
    for name in _RUNNING_SUMS:
        expected_minor = _joined_sum(found[f"{name}_high"], found[f"{name}_low"])
        if found[name] != expected_minor:
            differences.append(AuditDifference(found["id"], name, found[name], expected_minor))
    limit_minor = found["credit_limit_minor"]
    available_minor = (
        found["credits_posted_minor"] - found["debits_posted_minor"] - found["debits_pending_minor"]
    )
    if limit_minor is not None and available_minor < -limit_minor:
        differences.append(
            AuditDifference(
                found["id"], "available_minor >= -credit_limit_minor", available_minor, -limit_minor
            )
        )
    return differences


def _asset_differences(rows: list[sa.Row[Any]]) -> list[AuditDifference]:
    """Double entry: per asset, credits equal debits, posted and pending alike."""
    totals: defaultdict[tuple[uuid.UUID, str], int] = defaultdict(int)
    for row in rows:
        for name in _RUNNING_SUMS:
            totals[row.asset_id, name] += row._mapping[name]
    differences = []
    for asset_id in sorted({asset_id for asset_id, _ in totals}):
        for state in ("posted", "pending"):
            credits_minor = totals[asset_id, f"credits_{state}_minor"]
            debits_minor = totals[asset_id, f"debits_{state}_minor"]
            if credits_minor != debits_minor:
                check = f"asset {asset_id}: credits_{state}_minor = debits_{state}_minor"
                differences.append(AuditDifference(None, check, credits_minor, debits_minor))
    return differences


async def audit(session: AsyncSession) -> list[AuditDifference]:
    """Recompute every account's four running sums from the transfer history and compare
    them with the stored ones; check each account's limit and, per asset, that credits equal
    debits. An empty list means the ledger is consistent."""
    rows = list((await session.execute(_audit_query())).all())
    differences = [found for row in rows for found in _account_differences(row)]
    return differences + _asset_differences(rows)


TransferCursor = KeysetCursor


@dataclass(frozen=True, slots=True)
class TransferPage:
    """Up to `limit` transfers; `next_after` continues the listing, None on the last page."""

    transfers: list[TransferResult]
    next_after: TransferCursor | None


def _after(cursor: TransferCursor, *, newest_first: bool) -> sa.ColumnElement[bool]:
    return past(
        col(LedgerTransfer.created_at),
        col(LedgerTransfer.id),
        cursor.created_at,
        cursor.id,
        going_back_in_time=newest_first,
    )


async def list_transfers(
    session: AsyncSession,
    *,
    account_id: uuid.UUID | None = None,
    after: TransferCursor | None = None,
    limit: int = 50,
    newest_first: bool = False,
) -> TransferPage:
    """Transfers (of one account, or all) oldest first, or newest first, after `after`.

    Keyset pagination on (created_at, id): a page never repeats or skips a transfer that
    was committed before the listing began, however many are added meanwhile.
    """
    if isinstance(limit, bool) or not isinstance(limit, int):
        raise TypeError(f"limit must be an int, not {type(limit).__name__}")
    if not 0 < limit <= TRANSFER_PAGE_LIMIT_MAX:
        raise ValueError(f"limit must be in 1..{TRANSFER_PAGE_LIMIT_MAX}, not {limit}")
    created_at, transfer_id = col(LedgerTransfer.created_at), col(LedgerTransfer.id)
    order = (created_at.desc(), transfer_id.desc()) if newest_first else (created_at, transfer_id)
    query = select(LedgerTransfer).order_by(*order).limit(limit + 1)
    if account_id is not None:
        query = query.where(
            sa.or_(
                col(LedgerTransfer.debit_account_id) == account_id,
                col(LedgerTransfer.credit_account_id) == account_id,
            )
        )
    if after is not None:
        query = query.where(_after(after, newest_first=newest_first))
    rows = list((await session.execute(query)).scalars().all())
    transfers = [transfer_result(row) for row in rows[:limit]]
    next_after = None
    if len(rows) > limit:
        next_after = TransferCursor(transfers[-1].created_at, transfers[-1].id)
    return TransferPage(transfers, next_after)
