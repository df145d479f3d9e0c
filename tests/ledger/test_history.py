"""The audit recomputes every running sum from the transfer history and reports each
difference (a tampered column, a forged transfer, a broken limit); `list_transfers` pages
through the history with a stable keyset cursor."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from opase.amounts import AMOUNT_MINOR_MAX
from opase.ledger import (
    TRANSFER_PAGE_LIMIT_MAX,
    AuditDifference,
    TransferCursor,
    TransferResult,
    audit,
    deposit,
    list_transfers,
    post_pending,
    reserve,
    transfer,
    void_pending,
    withdraw,
)
from opase.storage.tables import LedgerAccount, LedgerTransfer, utc_now
from tests.ledger.accounts import Accounts


async def _history(sessions: async_sessionmaker[AsyncSession], accounts: Accounts) -> None:
    """Every kind of transfer, committed: deposits, a withdrawal, a fee, a post and a void."""
    async with sessions() as session:
        await deposit(session, accounts.alice, 1_000, "d-1")
        await deposit(session, accounts.bob, 500, "d-2")
        await withdraw(session, accounts.bob, 100, "w-1")
        await transfer(
            session,
            debit_account_id=accounts.alice_account,
            credit_account_id=accounts.usd_fees,
            amount_minor=7,
            idempotency_key="fee",
        )
        for index in range(3):
            pending = await reserve(
                session,
                debit_account_id=accounts.alice_account,
                credit_account_id=accounts.bob_account,
                amount_minor=100,
                idempotency_key=f"r-{index}",
                timeout_s=60,
            )
            if index == 0:
                await post_pending(session, pending.id, idempotency_key="p-0", amount_minor=30)
            if index == 1:
                await void_pending(session, pending.id, idempotency_key="v-1")
        await session.commit()


async def _tamper(
    sessions: async_sessionmaker[AsyncSession], account_id: uuid.UUID, **values: int
) -> None:
    async with sessions() as session:
        await session.execute(
            sa.update(LedgerAccount).where(sa.column("id") == account_id).values(**values)
        )
        await session.commit()


async def test_audit_of_a_consistent_ledger_is_clean(
    sessions: async_sessionmaker[AsyncSession], accounts: Accounts
) -> None:
    async with sessions() as session:
        assert await audit(session) == []
    await _history(sessions, accounts)
    async with sessions() as session:
        assert await audit(session) == []


async def test_audit_reports_a_tampered_stored_sum(
    sessions: async_sessionmaker[AsyncSession], accounts: Accounts
) -> None:
    await _history(sessions, accounts)
    # Bob's credits posted are 500 (deposit) + 30 (the partial post).
    await _tamper(sessions, accounts.bob_account, credits_posted_minor=535)
    async with sessions() as session:
        findings = await audit(session)
    account_findings = [f for f in findings if f.account_id is not None]
    assert account_findings == [
        AuditDifference(accounts.bob_account, "credits_posted_minor", 535, 530)
    ]
    # The stored sums no longer balance either: double entry is broken for USD.
    (asset_finding,) = [f for f in findings if f.account_id is None]
    assert "credits_posted_minor = debits_posted_minor" in asset_finding.check
    assert asset_finding.found_minor - asset_finding.expected_minor == 5


async def test_audit_reports_tampered_pending_sums_and_broken_limits(
    sessions: async_sessionmaker[AsyncSession], accounts: Accounts
) -> None:
    await _history(sessions, accounts)
    # Alice: 1000 - 7 - 30 posted, 100 pending; 863 available. Pretend 900 more is held.
    await _tamper(sessions, accounts.alice_account, debits_pending_minor=1_000)
    async with sessions() as session:
        findings = await audit(session)
    assert AuditDifference(accounts.alice_account, "debits_pending_minor", 1_000, 100) in findings
    assert (
        AuditDifference(accounts.alice_account, "available_minor >= -credit_limit_minor", -37, 0)
        in findings
    )


async def test_audit_reports_a_forged_transfer_even_beyond_bigint(
    sessions: async_sessionmaker[AsyncSession], accounts: Accounts
) -> None:
    # Rows written past the ledger: their amounts sum beyond 2**63-1, which must be
    # reported, not crash the audit.
    await _history(sessions, accounts)
    async with sessions() as session:
        for index in range(2):
            session.add(
                LedgerTransfer(
                    kind="posted",
                    debit_account_id=accounts.usd_peer,
                    credit_account_id=accounts.carol_account,
                    amount_minor=AMOUNT_MINOR_MAX,
                    idempotency_key=f"forged-{index}",
                )
            )
        await session.commit()
    async with sessions() as session:
        findings = await audit(session)
    assert (
        AuditDifference(accounts.usd_peer, "debits_posted_minor", 0, 2 * AMOUNT_MINOR_MAX)
        in findings
    )
    assert (
        AuditDifference(accounts.carol_account, "credits_posted_minor", 0, 2 * AMOUNT_MINOR_MAX)
        in findings
    )


async def _all(session: AsyncSession, **filters: object) -> list[TransferResult]:
    page = await list_transfers(session, limit=TRANSFER_PAGE_LIMIT_MAX, **filters)  # type: ignore[arg-type]
    assert page.next_after is None
    return page.transfers


async def _paged(session: AsyncSession, limit: int, **filters: object) -> list[TransferResult]:
    listed: list[TransferResult] = []
    after = None
    for _ in range(100):
        page = await list_transfers(session, after=after, limit=limit, **filters)  # type: ignore[arg-type]
        assert len(page.transfers) <= limit
        listed += page.transfers
        if page.next_after is None:
            return listed
        # The cursor survives a trip through the API as an opaque token.
        after = TransferCursor.from_token(page.next_after.to_token())
        assert after == page.next_after
    raise AssertionError("listing did not end")


async def test_list_transfers_pages_through_the_history(
    sessions: async_sessionmaker[AsyncSession], accounts: Accounts
) -> None:
    await _history(sessions, accounts)
    async with sessions() as session:
        everything = await _all(session)
        assert len(everything) == 9
        keys = [(t.created_at, t.id) for t in everything]
        assert keys == sorted(keys)
        assert everything[0].idempotency_key == "d-1"
        for limit in (1, 3, 10, 11):
            assert await _paged(session, limit) == everything
            assert await _paged(session, limit, newest_first=True) == everything[::-1]
        of_bob = await _paged(session, 2, account_id=accounts.bob_account)
        assert of_bob == [
            t
            for t in everything
            if accounts.bob_account in (t.debit_account_id, t.credit_account_id)
        ]
        assert len(of_bob) == 7
        assert await _all(session, account_id=accounts.carol_account) == []


async def test_list_transfers_cursor_skips_nothing_added_later(
    sessions: async_sessionmaker[AsyncSession], accounts: Accounts
) -> None:
    await _history(sessions, accounts)
    async with sessions() as session:
        first = await list_transfers(session, limit=4)
        assert first.next_after is not None
        await deposit(session, accounts.alice, 1, "later")
        await session.commit()
        second = await list_transfers(
            session, after=first.next_after, limit=TRANSFER_PAGE_LIMIT_MAX
        )
        assert second.next_after is None
        assert second.transfers[-1].idempotency_key == "later"
        assert first.transfers + second.transfers == await _all(session)
        assert len(first.transfers) + len(second.transfers) == 10


@pytest.mark.parametrize("limit", [0, -1, TRANSFER_PAGE_LIMIT_MAX + 1])
async def test_list_transfers_bounds_the_page(
    sessions: async_sessionmaker[AsyncSession], limit: int
) -> None:
    async with sessions() as session:
        with pytest.raises(ValueError, match="limit"):
            await list_transfers(session, limit=limit)


@pytest.mark.parametrize(
    "token",
    ["", "not base64!", "bm9wZQ", TransferCursor(utc_now(), uuid.uuid4()).to_token()[:-3]],
    ids=["empty", "not-base64", "not-a-cursor", "cut-short"],  # the same in every xdist worker
)
def test_bad_cursor_tokens_are_refused(token: str) -> None:
    with pytest.raises(ValueError, match="not a transfer cursor"):
        TransferCursor.from_token(token, of="transfer")
