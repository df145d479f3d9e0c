"""Transfers: single-phase (`transfer`), two-phase (`reserve`, then `post_pending` or
`void_pending`, or `void_expired` after the timeout), and the wallet's way in and out of the
ASE (`deposit`, `withdraw`).

Each mutation appends one transfer row and updates the running sums of both its accounts in
the caller's transaction (these functions flush, never commit), so the movement is atomic
and double-entry. Each takes an idempotency key, unique per ledger: an exact repeat returns
the first result and changes nothing; the same key with other arguments raises
IdempotencyKeyReused.

The order of steps makes racing repeats safe: lock both accounts (`lock_accounts`); look
the key up, after the lock, because a racer holding the locks may have committed it
meanwhile; check; insert the transfer with ON CONFLICT DO NOTHING on the key, which settles
a race between transactions on different accounts; only then update sums. (No look-up
before the lock: repeats are rare, and it cost every first attempt a round trip.)
"""

from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased
from sqlmodel import col, select

from opase.amounts import AMOUNT_MINOR_MAX
from opase.ledger._sql import insert_unless_conflict
from opase.ledger.accounts import (
    balance_of,
    lock_accounts,
    settlement_account,
    wallet_account,
)
from opase.ledger.refusals import (
    AssetMismatch,
    BalanceOverflow,
    IdempotencyKeyReused,
    InsufficientFunds,
    PendingExpired,
    TransferNotFound,
    TransferNotPending,
)
from opase.storage.tables import (
    LEDGER_MEMO_LENGTH_MAX,
    LEDGER_TRANSFER_KINDS,
    LedgerAccount,
    LedgerTransfer,
    sa_table,
    utc_now,
)

IDEMPOTENCY_KEY_LENGTH_MAX: Final = 255
PENDING_TIMEOUT_S_MAX: Final = 30 * 24 * 60 * 60
"""A reservation holds funds for at most 30 days."""
VOID_EXPIRED_COUNT_MAX: Final = 500
"""The most pending transfers one `void_expired` call voids; call again for the rest."""
EXPIRED_MEMO: Final = "expired"

_RESOLVING_KINDS: Final = ("post_pending", "void_pending")
_DEBITING_KINDS: Final = ("posted", "pending")
"""The kinds that add to the debit account's debits; posting or voiding only release."""


@dataclass(frozen=True, slots=True)
class TransferResult:
    """One transfer row. `pending_id` names the pending transfer a post or void resolves;
    `expires_at` is set on pending transfers only."""

    id: uuid.UUID
    kind: str
    debit_account_id: uuid.UUID
    credit_account_id: uuid.UUID
    amount_minor: int
    pending_id: uuid.UUID | None
    expires_at: datetime | None
    idempotency_key: str | None
    memo: str | None
    created_at: datetime


def transfer_result(row: LedgerTransfer) -> TransferResult:
    return TransferResult(
        id=row.id,
        kind=row.kind,
        debit_account_id=row.debit_account_id,
        credit_account_id=row.credit_account_id,
        amount_minor=row.amount_minor,
        pending_id=row.pending_id,
        expires_at=row.expires_at,
        idempotency_key=row.idempotency_key,
        memo=row.memo,
        created_at=row.created_at,
    )


@dataclass(frozen=True, slots=True)
class _Movement:
    """What a mutation asks for, checked: compared with a stored transfer on a repeat."""

    kind: str
    debit_account_id: uuid.UUID
    credit_account_id: uuid.UUID
    amount_minor: int
    idempotency_key: str | None
    pending: TransferResult | None = None
    timeout_s: int | None = None
    memo: str | None = None

    def __post_init__(self) -> None:
        assert self.kind in LEDGER_TRANSFER_KINDS, self.kind
        assert self.debit_account_id != self.credit_account_id
        assert 0 < self.amount_minor <= AMOUNT_MINOR_MAX
        assert (self.pending is not None) == (self.kind in _RESOLVING_KINDS)
        assert (self.timeout_s is not None) == (self.kind == "pending")
        if self.pending is not None:
            assert self.pending.kind == "pending"
            assert self.amount_minor <= self.pending.amount_minor


@dataclass(frozen=True, slots=True)
class _Sums:
    debits_posted_minor: int
    credits_posted_minor: int
    debits_pending_minor: int
    credits_pending_minor: int

    def by_column(self) -> dict[str, int]:
        return dataclasses.asdict(self)


def check_amount_minor(amount_minor: int) -> None:
    """A transfer amount: an int (not a bool, float or Decimal) in 1..2**63-1."""
    if isinstance(amount_minor, bool) or not isinstance(amount_minor, int):
        raise TypeError(f"amount_minor must be an int, not {type(amount_minor).__name__}")
    if not 0 < amount_minor <= AMOUNT_MINOR_MAX:
        raise ValueError(f"amount_minor must be in 1..{AMOUNT_MINOR_MAX}, not {amount_minor}")


def _check_idempotency_key(idempotency_key: str) -> None:
    if not isinstance(idempotency_key, str):
        raise TypeError(f"idempotency_key must be a str, not {type(idempotency_key).__name__}")
    if not 0 < len(idempotency_key) <= IDEMPOTENCY_KEY_LENGTH_MAX:
        raise ValueError(f"idempotency_key must have 1..{IDEMPOTENCY_KEY_LENGTH_MAX} characters")


def _check_memo(memo: str | None) -> None:
    if memo is not None and not 0 < len(memo) <= LEDGER_MEMO_LENGTH_MAX:
        raise ValueError(f"memo must have 1..{LEDGER_MEMO_LENGTH_MAX} characters or be None")


def _check_timeout_s(timeout_s: int) -> None:
    if isinstance(timeout_s, bool) or not isinstance(timeout_s, int):
        raise TypeError(f"timeout_s must be an int, not {type(timeout_s).__name__}")
    if not 0 < timeout_s <= PENDING_TIMEOUT_S_MAX:
        raise ValueError(f"timeout_s must be in 1..{PENDING_TIMEOUT_S_MAX}, not {timeout_s}")


def _check_accounts(debit_account_id: uuid.UUID, credit_account_id: uuid.UUID) -> None:
    if debit_account_id == credit_account_id:
        raise ValueError(f"a transfer needs two accounts, not {debit_account_id} twice")


def _same_request(existing: TransferResult, movement: _Movement) -> bool:
    asked = (
        movement.kind,
        movement.debit_account_id,
        movement.credit_account_id,
        movement.amount_minor,
        movement.pending.id if movement.pending is not None else None,
        movement.memo,
    )
    stored = (
        existing.kind,
        existing.debit_account_id,
        existing.credit_account_id,
        existing.amount_minor,
        existing.pending_id,
        existing.memo,
    )
    if asked != stored:
        return False
    if movement.timeout_s is None:
        return True
    assert existing.expires_at is not None
    return existing.expires_at - existing.created_at == timedelta(seconds=movement.timeout_s)


async def _replay(session: AsyncSession, movement: _Movement) -> TransferResult | None:
    """The transfer an earlier call made with this key, or None; raises if it differs."""
    if movement.idempotency_key is None:
        return None
    query = select(LedgerTransfer).where(
        col(LedgerTransfer.idempotency_key) == movement.idempotency_key
    )
    row = (await session.execute(query)).scalar_one_or_none()
    if row is None:
        return None
    existing = transfer_result(row)
    # A retry must ask for the same movement; anything else is a client bug, not a retry.
    if not _same_request(existing, movement):
        raise IdempotencyKeyReused(
            f"idempotency key {movement.idempotency_key!r} was used for another transfer"
        )
    return existing


def _sums_after(account: LedgerAccount, movement: _Movement) -> _Sums:
    """The account's running sums once `movement` is applied (a pure function)."""
    posted_minor, pending_minor = 0, 0
    if movement.kind == "posted":
        posted_minor = movement.amount_minor
    elif movement.kind == "pending":
        pending_minor = movement.amount_minor
    else:
        # Posting or voiding releases the whole reservation; a post then moves its amount.
        assert movement.pending is not None
        pending_minor = -movement.pending.amount_minor
        posted_minor = movement.amount_minor if movement.kind == "post_pending" else 0
    if account.id == movement.debit_account_id:
        return _Sums(
            debits_posted_minor=account.debits_posted_minor + posted_minor,
            credits_posted_minor=account.credits_posted_minor,
            debits_pending_minor=account.debits_pending_minor + pending_minor,
            credits_pending_minor=account.credits_pending_minor,
        )
    assert account.id == movement.credit_account_id
    return _Sums(
        debits_posted_minor=account.debits_posted_minor,
        credits_posted_minor=account.credits_posted_minor + posted_minor,
        debits_pending_minor=account.debits_pending_minor,
        credits_pending_minor=account.credits_pending_minor + pending_minor,
    )


def _check_sums(account: LedgerAccount, sums: _Sums) -> None:
    for column, value_minor in sums.by_column().items():
        # A pending sum only shrinks by a reservation it holds.
        assert value_minor >= 0, (account.id, column, value_minor)
        if value_minor > AMOUNT_MINOR_MAX:
            raise BalanceOverflow(
                f"the transfer would take {column} of {account.kind} account {account.id}"
                f" above {AMOUNT_MINOR_MAX}: balances are BIGINT"
            )


def _check_funds(account: LedgerAccount, sums: _Sums) -> None:
    if account.credit_limit_minor is None:
        assert account.kind == "settlement"
        return
    available_minor = (
        sums.credits_posted_minor - sums.debits_posted_minor - sums.debits_pending_minor
    )
    if available_minor < -account.credit_limit_minor:
        shortfall_minor = -account.credit_limit_minor - available_minor
        raise InsufficientFunds(
            f"{account.kind} account {account.id} is short by {shortfall_minor} (minor units)"
        )


def _assert_double_entry(
    debit: LedgerAccount, credit: LedgerAccount, debit_sums: _Sums, credit_sums: _Sums
) -> None:
    """What one side gains in debits the other gains in credits, posted and pending."""
    assert (
        debit_sums.debits_posted_minor - debit.debits_posted_minor
        == credit_sums.credits_posted_minor - credit.credits_posted_minor
    )
    assert (
        debit_sums.debits_pending_minor - debit.debits_pending_minor
        == credit_sums.credits_pending_minor - credit.credits_pending_minor
    )
    assert debit_sums.credits_posted_minor == debit.credits_posted_minor
    assert credit_sums.debits_posted_minor == credit.debits_posted_minor


def _store(account: LedgerAccount, sums: _Sums) -> None:
    account.debits_posted_minor = sums.debits_posted_minor
    account.credits_posted_minor = sums.credits_posted_minor
    account.debits_pending_minor = sums.debits_pending_minor
    account.credits_pending_minor = sums.credits_pending_minor


async def _resolution(session: AsyncSession, pending_id: uuid.UUID) -> LedgerTransfer | None:
    """The post or void of a pending transfer, if there is one (at most one: unique)."""
    query = select(LedgerTransfer).where(col(LedgerTransfer.pending_id) == pending_id)
    return (await session.execute(query)).scalar_one_or_none()


async def _check_unresolved(
    session: AsyncSession, pending: TransferResult, *, now: datetime, expired_ok: bool
) -> None:
    resolution = await _resolution(session, pending.id)
    if resolution is not None:
        done = "posted" if resolution.kind == "post_pending" else "voided"
        raise TransferNotPending(f"transfer {pending.id} was already {done}")
    assert pending.expires_at is not None
    if now >= pending.expires_at and not expired_ok:
        raise PendingExpired(f"transfer {pending.id} expired at {pending.expires_at.isoformat()}")


def _new_transfer(movement: _Movement) -> TransferResult:
    created_at = utc_now()
    expires_at = None
    if movement.timeout_s is not None:
        expires_at = created_at + timedelta(seconds=movement.timeout_s)
    return TransferResult(
        id=uuid.uuid4(),
        kind=movement.kind,
        debit_account_id=movement.debit_account_id,
        credit_account_id=movement.credit_account_id,
        amount_minor=movement.amount_minor,
        pending_id=movement.pending.id if movement.pending is not None else None,
        expires_at=expires_at,
        idempotency_key=movement.idempotency_key,
        memo=movement.memo,
        created_at=created_at,
    )


def _check_now(now: datetime | None) -> datetime:
    if now is None:
        return utc_now()
    if now.tzinfo is None:
        raise ValueError(f"naive datetime {now!r}: give a time zone")
    return now


async def _execute(
    session: AsyncSession, movement: _Movement, *, now: datetime, expired_ok: bool = False
) -> TransferResult:
    """Apply `movement` once: the steps and their order are in the module docstring."""
    accounts = await lock_accounts(session, (movement.debit_account_id, movement.credit_account_id))
    replayed = await _replay(session, movement)
    if replayed is not None:
        return replayed
    debit, credit = accounts[movement.debit_account_id], accounts[movement.credit_account_id]
    if debit.asset_id != credit.asset_id:
        raise AssetMismatch(f"accounts {debit.id} and {credit.id} hold different assets")
    if movement.pending is not None:
        await _check_unresolved(session, movement.pending, now=now, expired_ok=expired_ok)
    debit_sums, credit_sums = _sums_after(debit, movement), _sums_after(credit, movement)
    _check_sums(debit, debit_sums)
    _check_sums(credit, credit_sums)
    if movement.kind in _DEBITING_KINDS:
        _check_funds(debit, debit_sums)
    result = _new_transfer(movement)
    inserted = await insert_unless_conflict(
        session,
        sa_table(LedgerTransfer),
        dataclasses.asdict(result),
        conflict_columns=["idempotency_key"],
    )
    if not inserted:
        # A transaction on other accounts (so not waiting for our locks) committed this key.
        replayed = await _replay(session, movement)
        assert replayed is not None
        return replayed
    _assert_double_entry(debit, credit, debit_sums, credit_sums)
    available_before_minor = balance_of(debit).available_minor
    _store(debit, debit_sums)
    _store(credit, credit_sums)
    await session.flush()
    available_after_minor = balance_of(debit).available_minor
    if movement.kind in _RESOLVING_KINDS:
        # Posting or voiding never lowers what the debit account has available.
        assert available_after_minor >= available_before_minor
    elif debit.credit_limit_minor is not None:
        assert available_after_minor >= -debit.credit_limit_minor  # pairs with _check_funds
    return result


async def transfer(
    session: AsyncSession,
    *,
    debit_account_id: uuid.UUID,
    credit_account_id: uuid.UUID,
    amount_minor: int,
    idempotency_key: str,
    memo: str | None = None,
) -> TransferResult:
    """Move `amount_minor` at once; refused (InsufficientFunds) past the debit's limit."""
    check_amount_minor(amount_minor)
    _check_idempotency_key(idempotency_key)
    _check_memo(memo)
    _check_accounts(debit_account_id, credit_account_id)
    movement = _Movement(
        "posted", debit_account_id, credit_account_id, amount_minor, idempotency_key, memo=memo
    )
    return await _execute(session, movement, now=utc_now())


async def reserve(
    session: AsyncSession,
    *,
    debit_account_id: uuid.UUID,
    credit_account_id: uuid.UUID,
    amount_minor: int,
    idempotency_key: str,
    timeout_s: int,
    memo: str | None = None,
) -> TransferResult:
    """Hold `amount_minor` of the debit account for at most `timeout_s` seconds.

    The reservation counts against the debit account's available balance at once, but
    moves nothing: `post_pending` moves all or part of it, `void_pending` releases it, and
    after the timeout only `void_expired` can release it.
    """
    check_amount_minor(amount_minor)
    _check_idempotency_key(idempotency_key)
    _check_memo(memo)
    _check_timeout_s(timeout_s)
    _check_accounts(debit_account_id, credit_account_id)
    movement = _Movement(
        "pending",
        debit_account_id,
        credit_account_id,
        amount_minor,
        idempotency_key,
        timeout_s=timeout_s,
        memo=memo,
    )
    return await _execute(session, movement, now=utc_now())


async def _pending_transfer(session: AsyncSession, transfer_id: uuid.UUID) -> TransferResult:
    row = await session.get(LedgerTransfer, transfer_id)
    if row is None:
        raise TransferNotFound(f"no transfer {transfer_id}")
    if row.kind != "pending":
        raise TransferNotPending(f"transfer {transfer_id} is a {row.kind} transfer, not pending")
    return transfer_result(row)


async def post_pending(
    session: AsyncSession,
    transfer_id: uuid.UUID,
    *,
    idempotency_key: str,
    amount_minor: int | None = None,
    now: datetime | None = None,
) -> TransferResult:
    """Move `amount_minor` (default: all) of a pending transfer; release the rest.

    Refused once the transfer is posted or voided (TransferNotPending), or from its
    `expires_at` on (PendingExpired). `now` judges expiry; default: the clock.
    """
    _check_idempotency_key(idempotency_key)
    if amount_minor is not None:
        check_amount_minor(amount_minor)
    pending = await _pending_transfer(session, transfer_id)
    post_minor = pending.amount_minor if amount_minor is None else amount_minor
    if post_minor > pending.amount_minor:
        raise ValueError(
            f"amount_minor {post_minor} exceeds the {pending.amount_minor} reserved"
            f" by transfer {transfer_id}"
        )
    movement = _Movement(
        "post_pending",
        pending.debit_account_id,
        pending.credit_account_id,
        post_minor,
        idempotency_key,
        pending=pending,
    )
    return await _execute(session, movement, now=_check_now(now))


async def void_pending(
    session: AsyncSession,
    transfer_id: uuid.UUID,
    *,
    idempotency_key: str,
    now: datetime | None = None,
    expired_ok: bool = False,
) -> TransferResult:
    """Release a pending transfer; refused as `post_pending` is. `now`: as there. With
    `expired_ok`, an expired transfer is voided too (its owner may release it before the
    sweep of `void_expired` does: either way the funds go back once)."""
    _check_idempotency_key(idempotency_key)
    pending = await _pending_transfer(session, transfer_id)
    movement = _Movement(
        "void_pending",
        pending.debit_account_id,
        pending.credit_account_id,
        pending.amount_minor,
        idempotency_key,
        pending=pending,
    )
    return await _execute(session, movement, now=_check_now(now), expired_ok=expired_ok)


async def _expired_pending(
    session: AsyncSession, now: datetime, count_max: int
) -> list[TransferResult]:
    resolution = aliased(LedgerTransfer)
    unresolved = ~sa.exists().where(col(resolution.pending_id) == col(LedgerTransfer.id))
    query = (
        select(LedgerTransfer)
        .where(
            col(LedgerTransfer.kind) == "pending",
            col(LedgerTransfer.expires_at) <= now,
            unresolved,
        )
        .order_by(col(LedgerTransfer.expires_at), col(LedgerTransfer.id))
        .limit(count_max)
    )
    return [transfer_result(row) for row in (await session.execute(query)).scalars().all()]


async def void_expired(
    session: AsyncSession, now: datetime | None = None, *, count_max: int = VOID_EXPIRED_COUNT_MAX
) -> int:
    """Void up to `count_max` pending transfers whose timeout has passed; the count voided.

    Several processes may sweep at once: each voids a transfer at most once (the second
    finds it resolved once it holds the locks). The voids carry no idempotency key; their
    memo says "expired".
    """
    assert 0 < count_max <= VOID_EXPIRED_COUNT_MAX, count_max
    now = _check_now(now)
    expired = await _expired_pending(session, now, count_max)
    if not expired:
        return 0
    # All of the batch's accounts at once, in the one sorted order: no deadlock with
    # another sweep or with single transfers.
    account_ids = {p.debit_account_id for p in expired} | {p.credit_account_id for p in expired}
    await lock_accounts(session, account_ids)
    voided_count = 0
    for pending in expired:
        if await _resolution(session, pending.id) is not None:
            continue  # posted, voided or swept by another transaction while we waited
        movement = _Movement(
            "void_pending",
            pending.debit_account_id,
            pending.credit_account_id,
            pending.amount_minor,
            None,
            pending=pending,
            memo=EXPIRED_MEMO,
        )
        await _execute(session, movement, now=now, expired_ok=True)
        voided_count += 1
    assert 0 <= voided_count <= len(expired)
    return voided_count


async def deposit(
    session: AsyncSession, wallet_address_id: uuid.UUID, amount_minor: int, idempotency_key: str
) -> uuid.UUID:
    """Money enters the ASE: debit the asset's settlement account, credit the wallet's.

    Returns the transfer id. Repeating a deposit with the same idempotency key returns the
    first transfer's id and changes nothing; reusing the key for a different deposit raises
    `IdempotencyKeyReused`. Nothing is written when an argument is refused.
    """
    check_amount_minor(amount_minor)
    _check_idempotency_key(idempotency_key)
    credit = await wallet_account(session, wallet_address_id)
    debit = await settlement_account(session, credit.asset_id)
    result = await transfer(
        session,
        debit_account_id=debit.id,
        credit_account_id=credit.id,
        amount_minor=amount_minor,
        idempotency_key=idempotency_key,
    )
    return result.id


async def withdraw(
    session: AsyncSession, wallet_address_id: uuid.UUID, amount_minor: int, idempotency_key: str
) -> uuid.UUID:
    """Money leaves the ASE: debit the wallet's account, credit the asset's settlement
    account. Refused (InsufficientFunds) beyond the wallet's available balance; otherwise
    as `deposit`."""
    check_amount_minor(amount_minor)
    _check_idempotency_key(idempotency_key)
    debit = await wallet_account(session, wallet_address_id)
    credit = await settlement_account(session, debit.asset_id)
    result = await transfer(
        session,
        debit_account_id=debit.id,
        credit_account_id=credit.id,
        amount_minor=amount_minor,
        idempotency_key=idempotency_key,
    )
    return result.id
