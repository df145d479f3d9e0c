"""Quotes of the resource server.

Revision ID: 0008
Revises: 0007

Hand-reviewed; runs on SQLite and PostgreSQL. One new table.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _timestamp(name: str, *, nullable: bool = False) -> sa.Column[object]:
    # Plain SQLAlchemy: revisions must not import application types that may change later.
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "quotes",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column(
            "wallet_address_id",
            sa.Uuid(),
            sa.ForeignKey(
                "wallet_addresses.id", name="fk_quotes_wallet_address_id_wallet_addresses"
            ),
            nullable=False,
        ),
        sa.Column("receiver", sa.String(length=2048), nullable=False),
        sa.Column(
            "incoming_payment_id",
            sa.Uuid(),
            sa.ForeignKey(
                "incoming_payments.id", name="fk_quotes_incoming_payment_id_incoming_payments"
            ),
            nullable=False,
        ),
        sa.Column("client_wallet_address", sa.String(length=2048), nullable=True),
        sa.Column("client_key_thumbprint", sa.String(length=43), nullable=True),
        sa.Column("debit_amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("debit_asset_code", sa.String(length=12), nullable=False),
        sa.Column("debit_asset_scale", sa.SmallInteger(), nullable=False),
        sa.Column("receive_amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("receive_asset_code", sa.String(length=12), nullable=False),
        sa.Column("receive_asset_scale", sa.SmallInteger(), nullable=False),
        sa.Column("sending_fee_minor", sa.BigInteger(), nullable=False),
        sa.Column("receiving_fee_minor", sa.BigInteger(), nullable=False),
        sa.Column("rate", sa.String(length=64), nullable=False),
        _timestamp("expires_at"),
        _timestamp("used_at", nullable=True),
        _timestamp("created_at"),
        sa.CheckConstraint(
            "(client_wallet_address IS NULL) <> (client_key_thumbprint IS NULL)",
            name="ck_quotes_one_client_identity",
        ),
        sa.CheckConstraint("debit_amount_minor > 0", name="ck_quotes_debit_amount_positive"),
        sa.CheckConstraint("receive_amount_minor > 0", name="ck_quotes_receive_amount_positive"),
        sa.CheckConstraint(
            "sending_fee_minor >= 0 AND receiving_fee_minor >= 0",
            name="ck_quotes_fees_nonnegative",
        ),
    )
    op.create_index(
        "ix_quotes_wallet_address_id_created_at_id",
        "quotes",
        ["wallet_address_id", "created_at", "id"],
    )


def downgrade() -> None:
    op.drop_index("ix_quotes_wallet_address_id_created_at_id", table_name="quotes")
    op.drop_table("quotes")
