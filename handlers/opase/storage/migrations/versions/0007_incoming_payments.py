"""Incoming payments of the resource server.

Revision ID: 0007
Revises: 0006

Hand-reviewed; runs on SQLite and PostgreSQL. One new table.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _timestamp(name: str, *, nullable: bool = False) -> sa.Column[object]:
    # Plain SQLAlchemy: revisions must not import application types that may change later.
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "incoming_payments",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column(
            "wallet_address_id",
            sa.Uuid(),
            sa.ForeignKey(
                "wallet_addresses.id",
                name="fk_incoming_payments_wallet_address_id_wallet_addresses",
            ),
            nullable=False,
        ),
        sa.Column("client_wallet_address", sa.String(length=2048), nullable=True),
        sa.Column("client_key_thumbprint", sa.String(length=43), nullable=True),
        sa.Column("incoming_amount_minor", sa.BigInteger(), nullable=True),
        sa.Column("received_amount_minor", sa.BigInteger(), nullable=False),
        _timestamp("expires_at"),
        _timestamp("completed_at", nullable=True),
        sa.Column("metadata", sa.JSON(), nullable=True),
        sa.Column("shared_secret", sa.String(length=64), nullable=False),
        _timestamp("created_at"),
        _timestamp("updated_at"),
        sa.CheckConstraint(
            "(client_wallet_address IS NULL) <> (client_key_thumbprint IS NULL)",
            name="ck_incoming_payments_one_client_identity",
        ),
        sa.CheckConstraint(
            "incoming_amount_minor IS NULL OR incoming_amount_minor > 0",
            name="ck_incoming_payments_incoming_amount_positive",
        ),
        sa.CheckConstraint(
            "received_amount_minor >= 0", name="ck_incoming_payments_received_amount_nonnegative"
        ),
    )
    op.create_index(
        "ix_incoming_payments_wallet_address_id_created_at_id",
        "incoming_payments",
        ["wallet_address_id", "created_at", "id"],
    )


def downgrade() -> None:
    op.drop_index(
        "ix_incoming_payments_wallet_address_id_created_at_id", table_name="incoming_payments"
    )
    op.drop_table("incoming_payments")
