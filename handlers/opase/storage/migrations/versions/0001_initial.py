"""Initial schema: assets, owners, wallet addresses and their keys, a minimal ledger.

Revision ID: 0001
Revises:
Create Date: 2026-11-24

Hand-reviewed; runs on SQLite and PostgreSQL. Conventions (see opase.storage.tables):
uuid primary keys, timezone-aware timestamps, BIGINT minor-unit amounts, named constraints.
No ON DELETE CASCADE anywhere: wallet addresses are deactivated, never deleted, and ledger
rows are history.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _id() -> sa.Column[object]:
    return sa.Column("id", sa.Uuid(), primary_key=True)


def _timestamp(name: str, *, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "assets",
        _id(),
        sa.Column("code", sa.String(length=12), nullable=False),
        sa.Column("scale", sa.SmallInteger(), nullable=False),
        _timestamp("created_at"),
        sa.UniqueConstraint("code", "scale", name="uq_assets_code_scale"),
        sa.CheckConstraint("length(code) BETWEEN 3 AND 12", name="ck_assets_code_length"),
        sa.CheckConstraint("scale BETWEEN 0 AND 255", name="ck_assets_scale_range"),
    )
    op.create_table(
        "owners",
        _id(),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        _timestamp("created_at"),
        sa.UniqueConstraint("username", name="uq_owners_username"),
    )
    op.create_table(
        "wallet_addresses",
        _id(),
        sa.Column("path", sa.String(length=255), nullable=False),
        sa.Column("public_name", sa.String(length=255), nullable=True),
        sa.Column("asset_id", sa.Uuid(), sa.ForeignKey("assets.id"), nullable=False),
        sa.Column("owner_id", sa.Uuid(), sa.ForeignKey("owners.id"), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        _timestamp("created_at"),
        _timestamp("updated_at"),
        sa.UniqueConstraint("path", name="uq_wallet_addresses_path"),
        sa.CheckConstraint("status IN ('active', 'inactive')", name="ck_wallet_addresses_status"),
    )
    op.create_index("ix_wallet_addresses_asset_id", "wallet_addresses", ["asset_id"])
    op.create_index("ix_wallet_addresses_owner_id", "wallet_addresses", ["owner_id"])

    op.create_table(
        "wallet_address_keys",
        _id(),
        sa.Column(
            "wallet_address_id", sa.Uuid(), sa.ForeignKey("wallet_addresses.id"), nullable=False
        ),
        sa.Column("key_id", sa.String(length=255), nullable=False),
        sa.Column("x", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        _timestamp("created_at"),
        _timestamp("revoked_at", nullable=True),
        # Also the index for "keys of a wallet address".
        sa.UniqueConstraint(
            "wallet_address_id", "key_id", name="uq_wallet_address_keys_wallet_address_id_key_id"
        ),
        sa.CheckConstraint("status IN ('active', 'revoked')", name="ck_wallet_address_keys_status"),
        sa.CheckConstraint(
            "(status = 'revoked') = (revoked_at IS NOT NULL)",
            name="ck_wallet_address_keys_revoked_at",
        ),
    )

    op.create_table(
        "ledger_accounts",
        _id(),
        sa.Column("asset_id", sa.Uuid(), sa.ForeignKey("assets.id"), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column(
            "wallet_address_id", sa.Uuid(), sa.ForeignKey("wallet_addresses.id"), nullable=True
        ),
        _timestamp("created_at"),
        sa.UniqueConstraint("wallet_address_id", name="uq_ledger_accounts_wallet_address_id"),
        sa.CheckConstraint("kind IN ('wallet', 'settlement')", name="ck_ledger_accounts_kind"),
        sa.CheckConstraint(
            "(kind = 'wallet') = (wallet_address_id IS NOT NULL)",
            name="ck_ledger_accounts_wallet_address_id",
        ),
    )
    # At most one settlement account per asset (a partial unique index, on both databases).
    op.create_index(
        "uq_ledger_accounts_settlement_asset_id",
        "ledger_accounts",
        ["asset_id"],
        unique=True,
        sqlite_where=sa.text("kind = 'settlement'"),
        postgresql_where=sa.text("kind = 'settlement'"),
    )

    op.create_table(
        "ledger_transfers",
        _id(),
        sa.Column(
            "debit_account_id", sa.Uuid(), sa.ForeignKey("ledger_accounts.id"), nullable=False
        ),
        sa.Column(
            "credit_account_id", sa.Uuid(), sa.ForeignKey("ledger_accounts.id"), nullable=False
        ),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("idempotency_key", sa.String(length=255), nullable=True),
        _timestamp("created_at"),
        sa.UniqueConstraint("idempotency_key", name="uq_ledger_transfers_idempotency_key"),
        sa.CheckConstraint("amount_minor > 0", name="ck_ledger_transfers_amount_minor_positive"),
        sa.CheckConstraint(
            "debit_account_id <> credit_account_id", name="ck_ledger_transfers_distinct_accounts"
        ),
    )
    # Balances sum an account's transfers on either side.
    op.create_index(
        "ix_ledger_transfers_debit_account_id", "ledger_transfers", ["debit_account_id"]
    )
    op.create_index(
        "ix_ledger_transfers_credit_account_id", "ledger_transfers", ["credit_account_id"]
    )


def downgrade() -> None:
    # Reverse order of creation; dropping a table drops its indexes.
    op.drop_table("ledger_transfers")
    op.drop_table("ledger_accounts")
    op.drop_table("wallet_address_keys")
    op.drop_table("wallet_addresses")
    op.drop_table("owners")
    op.drop_table("assets")
