"""A wallet address's transfers as its back office sees them: one entry per movement asked
for, newest state included.

The ledger lists rows: `posted` and `pending` transfers, and the `post_pending` or
`void_pending` row that later resolves a pending one. Here a pending transfer is one entry
whose state follows its resolution (posted, with the amount posted; or voided), and the
resolving rows are not listed apart, so a reservation that was posted is not counted twice.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from opase.ledger import TransferCursor, TransferResult, list_transfers, wallet_account
from opase.storage.tables import LedgerTransfer

WALLET_TRANSFER_PAGE_COUNT_MAX: Final = 100
SCAN_ROUNDS_MAX: Final = 20
"""Ledger pages one listing reads at most: a long run of resolving rows (which are not
listed) ends a page early, with `has_next_page`, rather than make one request unbounded."""
_SHOWN_KINDS: Final = ("posted", "pending")
_STATES: Final = {"post_pending": "posted", "void_pending": "voided"}


@dataclass(frozen=True, slots=True)
class WalletTransfer:
    id: uuid.UUID
    amount_minor: int
    direction: str
    """`credit` adds to the wallet's balance, `debit` takes from it."""
    state: str
    """`posted`, `pending` (a reservation not yet resolved) or `voided`."""
    created_at: datetime
    memo: str | None


@dataclass(frozen=True, slots=True)
class WalletTransferPage:
    transfers: list[WalletTransfer]
    end_cursor: str | None
    """Where the page ended: the next page starts after it. None when nothing was read."""
    has_next_page: bool


async def _known_cursor(session: AsyncSession, account_id: uuid.UUID, token: str) -> TransferCursor:
    """The position a cursor names; ValueError unless it names a transfer of this account.

    The keyset would work with any position, but a cursor from another listing (another
    wallet address) or a made-up one is a client bug worth reporting, not an empty page.
    """
    refusal = f"unknown cursor {token!r}: pass a pageInfo.endCursor of this listing"
    try:
        cursor = TransferCursor.from_token(token, of="transfer")
    except ValueError as exc:
        raise ValueError(refusal) from exc
    row = await session.get(LedgerTransfer, cursor.id)
    if (
        row is None
        or account_id not in (row.debit_account_id, row.credit_account_id)
        or row.created_at != cursor.created_at
    ):
        raise ValueError(refusal)
    return cursor


async def _resolutions(
    session: AsyncSession, pending: list[TransferResult]
) -> dict[uuid.UUID, LedgerTransfer]:
    """The post or void row of each pending transfer that has one, by pending id."""
    if not pending:
        return {}
    query = select(LedgerTransfer).where(
        col(LedgerTransfer.pending_id).in_([transfer.id for transfer in pending])
    )
    rows = (await session.execute(query)).scalars().all()
    return {row.pending_id: row for row in rows if row.pending_id is not None}


def _shown(
    account_id: uuid.UUID, transfer: TransferResult, resolution: LedgerTransfer | None
) -> WalletTransfer:
    assert transfer.kind in _SHOWN_KINDS
    state, amount_minor = transfer.kind, transfer.amount_minor
    if resolution is not None:
        state = _STATES[resolution.kind]
        if state == "posted":
            amount_minor = resolution.amount_minor  # all or part of the reservation
    direction = "credit" if transfer.credit_account_id == account_id else "debit"
    assert account_id in (transfer.credit_account_id, transfer.debit_account_id)
    return WalletTransfer(
        transfer.id, amount_minor, direction, state, transfer.created_at, transfer.memo
    )


async def _page(
    session: AsyncSession,
    account_id: uuid.UUID,
    shown: list[TransferResult],
    end: TransferCursor | None,
    *,
    has_next_page: bool,
) -> WalletTransferPage:
    resolutions = await _resolutions(session, [t for t in shown if t.kind == "pending"])
    transfers = [_shown(account_id, t, resolutions.get(t.id)) for t in shown]
    end_cursor = None if end is None else end.to_token()
    return WalletTransferPage(transfers, end_cursor, has_next_page)


async def list_wallet_transfers(
    session: AsyncSession, wallet_address_id: uuid.UUID, *, first: int, cursor: str | None
) -> WalletTransferPage:
    """Up to `first` transfers of the wallet address, oldest first, after `cursor` (an
    `end_cursor` of an earlier page) or from the start.

    LookupError for a wallet address without a ledger account, ValueError for an unknown
    cursor or a `first` outside 1..100.
    """
    if isinstance(first, bool) or not isinstance(first, int):
        raise TypeError(f"first must be an int, not {type(first).__name__}")
    if not 0 < first <= WALLET_TRANSFER_PAGE_COUNT_MAX:
        raise ValueError(f"first must be in 1..{WALLET_TRANSFER_PAGE_COUNT_MAX}, not {first}")
    account = await wallet_account(session, wallet_address_id)
    after = None if cursor is None else await _known_cursor(session, account.id, cursor)
    shown: list[TransferResult] = []
    end: TransferCursor | None = after
    for _ in range(SCAN_ROUNDS_MAX):
        # One more than asked: finding the next shown transfer is what sets has_next_page.
        page = await list_transfers(session, account_id=account.id, after=after, limit=first + 1)
        for transfer in page.transfers:
            if transfer.kind in _SHOWN_KINDS:
                if len(shown) == first:
                    return await _page(session, account.id, shown, end, has_next_page=True)
                shown.append(transfer)
            end = TransferCursor(transfer.created_at, transfer.id)
        if page.next_after is None:
            return await _page(session, account.id, shown, end, has_next_page=False)
        after = page.next_after
    return await _page(session, account.id, shown, end, has_next_page=True)
