"""Ledger: account kinds fees and peer_liquidity, credit limits, stored running sums;
two-phase transfers (pending, post, void) with memos and a listing keyset.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30

Hand-reviewed; runs on SQLite (batch mode copies each table) and PostgreSQL (plain ALTERs).
Existing transfers are all single-phase deposits, so the running sums of existing accounts
are backfilled from them: the first audit after the upgrade is clean.

On SQLite, copying `ledger_accounts` drops the original, and with foreign keys enforced
SQLite refuses to drop a table that transfers refer to: `PRAGMA foreign_keys` cannot change
inside the migration's transaction, and deferring the checks does not help (the dropped
rows count as violations even once the copy takes the table's name). So the transfers wait
in a holding table, without constraints, while both tables are copied, and come back after.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_RUNNING_SUMS = (
    "debits_posted_minor",
    "credits_posted_minor",
    "debits_pending_minor",
    "credits_pending_minor",
)
_HOLDING_TABLE = "_alembic_hold_ledger_transfers"
_RESTORE_AS_POSTED = (
    "INSERT INTO ledger_transfers"
    " (id, debit_account_id, credit_account_id, amount_minor, idempotency_key, created_at, kind)"
    " SELECT id, debit_account_id, credit_account_id, amount_minor, idempotency_key, created_at,"
    " 'posted' FROM _alembic_hold_ledger_transfers"
)
_RESTORE_AS_0001 = (
    "INSERT INTO ledger_transfers"
    " (id, debit_account_id, credit_account_id, amount_minor, idempotency_key, created_at)"
    " SELECT id, debit_account_id, credit_account_id, amount_minor, idempotency_key, created_at"
    " FROM _alembic_hold_ledger_transfers"
)
# Every statement below is built from the constants of this file only, never from input.
_BACKFILL_SUM = (
    "UPDATE ledger_accounts SET {side}s_posted_minor = ("
    "SELECT COALESCE(SUM(t.amount_minor), 0) FROM {transfers} AS t"
    " WHERE t.{side}_account_id = ledger_accounts.id)"
)


def _on_sqlite() -> bool:
    return op.get_bind().dialect.name == "sqlite"


def _hold_transfers() -> None:
    """SQLite only: move every transfer aside (see the module docstring)."""
    assert _on_sqlite()
    op.execute("CREATE TABLE _alembic_hold_ledger_transfers AS SELECT * FROM ledger_transfers")
    op.execute("DELETE FROM ledger_transfers")


def _restore_transfers(*, as_posted: bool) -> None:
    """SQLite only: bring the held transfers back, as `posted` ones when upgrading."""
    assert _on_sqlite()
    op.execute(_RESTORE_AS_POSTED if as_posted else _RESTORE_AS_0001)
    op.execute("DROP TABLE _alembic_hold_ledger_transfers")


def _partial_unique_index(kind: str) -> None:
    op.create_index(
        f"uq_ledger_accounts_{kind}_asset_id",
        "ledger_accounts",
        ["asset_id"],
        unique=True,
        sqlite_where=sa.text(f"kind = '{kind}'"),
        postgresql_where=sa.text(f"kind = '{kind}'"),
    )


def _upgrade_accounts() -> None:
    # Dropped around the copy and made again: batch mode's reflection of a partial index
    # could lose its WHERE, and then every account of an asset would clash.
    op.drop_index("uq_ledger_accounts_settlement_asset_id", table_name="ledger_accounts")
    with op.batch_alter_table("ledger_accounts") as batch:
        batch.add_column(sa.Column("peer_id", sa.Uuid(), nullable=True))
        batch.add_column(sa.Column("credit_limit_minor", sa.BigInteger(), nullable=True))
        for name in _RUNNING_SUMS:
            batch.add_column(
                sa.Column(name, sa.BigInteger(), nullable=False, server_default=sa.text("0"))
            )
        batch.drop_constraint("ck_ledger_accounts_kind", type_="check")
        batch.create_check_constraint(
            "ck_ledger_accounts_kind",
            "kind IN ('wallet', 'settlement', 'fees', 'peer_liquidity')",
        )
        batch.create_unique_constraint(
            "uq_ledger_accounts_peer_id_asset_id", ["peer_id", "asset_id"]
        )
        batch.create_check_constraint(
            "ck_ledger_accounts_peer_id", "peer_id IS NULL OR kind = 'peer_liquidity'"
        )
        batch.create_check_constraint(
            "ck_ledger_accounts_credit_limit_minor_range", "credit_limit_minor >= 0"
        )
        batch.create_check_constraint(
            "ck_ledger_accounts_sums_non_negative",
            "debits_posted_minor >= 0 AND credits_posted_minor >= 0"
            " AND debits_pending_minor >= 0 AND credits_pending_minor >= 0",
        )
    _partial_unique_index("settlement")
    _partial_unique_index("fees")
    # Wallets may not overdraw; settlement accounts have no limit (NULL). Set before the
    # constraint that ties the two together is added.
    op.execute("UPDATE ledger_accounts SET credit_limit_minor = 0 WHERE kind <> 'settlement'")
    transfers = _HOLDING_TABLE if _on_sqlite() else "ledger_transfers"
    for side in ("debit", "credit"):
        op.execute(_BACKFILL_SUM.format(side=side, transfers=transfers))
    with op.batch_alter_table("ledger_accounts") as batch:
        batch.create_check_constraint(
            "ck_ledger_accounts_credit_limit_minor_null",
            "(kind = 'settlement') = (credit_limit_minor IS NULL)",
        )


def _upgrade_transfers() -> None:
    with op.batch_alter_table("ledger_transfers") as batch:
        # Every existing transfer moved money at once; new rows always name their kind.
        batch.add_column(
            sa.Column("kind", sa.String(length=16), nullable=False, server_default="posted")
        )
        batch.add_column(
            sa.Column(
                "pending_id",
                sa.Uuid(),
                sa.ForeignKey(
                    "ledger_transfers.id", name="fk_ledger_transfers_pending_id_ledger_transfers"
                ),
                nullable=True,
            )
        )
        batch.add_column(sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("memo", sa.String(length=255), nullable=True))
    with op.batch_alter_table("ledger_transfers") as batch:
        batch.alter_column("kind", existing_type=sa.String(length=16), server_default=None)
        batch.create_unique_constraint("uq_ledger_transfers_pending_id", ["pending_id"])
        batch.create_check_constraint(
            "ck_ledger_transfers_kind",
            "kind IN ('posted', 'pending', 'post_pending', 'void_pending')",
        )
        batch.create_check_constraint(
            "ck_ledger_transfers_pending_id",
            "(kind IN ('post_pending', 'void_pending')) = (pending_id IS NOT NULL)",
        )
        batch.create_check_constraint(
            "ck_ledger_transfers_expires_at", "(kind = 'pending') = (expires_at IS NOT NULL)"
        )
    op.create_index("ix_ledger_transfers_created_at_id", "ledger_transfers", ["created_at", "id"])


def upgrade() -> None:
    if _on_sqlite():
        _hold_transfers()
    _upgrade_accounts()
    _upgrade_transfers()
    if _on_sqlite():
        _restore_transfers(as_posted=True)


def _refuse_lossy_downgrade() -> None:
    # Two-phase history and the new account kinds have no 0001 equivalent: refuse rather
    # than lose them.
    bind = op.get_bind()
    two_phase_count = bind.execute(
        sa.text("SELECT COUNT(*) FROM ledger_transfers WHERE kind <> 'posted'")
    ).scalar_one()
    internal_count = bind.execute(
        sa.text("SELECT COUNT(*) FROM ledger_accounts WHERE kind IN ('fees', 'peer_liquidity')")
    ).scalar_one()
    if two_phase_count or internal_count:
        raise RuntimeError(
            "cannot downgrade below 0002: the ledger has two-phase transfers"
            " or fees or peer liquidity accounts"
        )


def _downgrade_transfers() -> None:
    op.drop_index("ix_ledger_transfers_created_at_id", table_name="ledger_transfers")
    with op.batch_alter_table("ledger_transfers") as batch:
        for name in (
            "ck_ledger_transfers_expires_at",
            "ck_ledger_transfers_pending_id",
            "ck_ledger_transfers_kind",
        ):
            batch.drop_constraint(name, type_="check")
        batch.drop_constraint("uq_ledger_transfers_pending_id", type_="unique")
        batch.drop_constraint("fk_ledger_transfers_pending_id_ledger_transfers", type_="foreignkey")
        for name in ("memo", "expires_at", "pending_id", "kind"):
            batch.drop_column(name)


def _downgrade_accounts() -> None:
    op.drop_index("uq_ledger_accounts_fees_asset_id", table_name="ledger_accounts")
    op.drop_index("uq_ledger_accounts_settlement_asset_id", table_name="ledger_accounts")
    with op.batch_alter_table("ledger_accounts") as batch:
        for name in (
            "ck_ledger_accounts_credit_limit_minor_null",
            "ck_ledger_accounts_sums_non_negative",
            "ck_ledger_accounts_credit_limit_minor_range",
            "ck_ledger_accounts_peer_id",
            "ck_ledger_accounts_kind",
        ):
            batch.drop_constraint(name, type_="check")
        batch.drop_constraint("uq_ledger_accounts_peer_id_asset_id", type_="unique")
        for name in (*_RUNNING_SUMS, "credit_limit_minor", "peer_id"):
            batch.drop_column(name)
        batch.create_check_constraint("ck_ledger_accounts_kind", "kind IN ('wallet', 'settlement')")
    _partial_unique_index("settlement")


def downgrade() -> None:
    _refuse_lossy_downgrade()
    if _on_sqlite():
        _hold_transfers()
    _downgrade_transfers()
    _downgrade_accounts()
    if _on_sqlite():
        _restore_transfers(as_posted=False)
