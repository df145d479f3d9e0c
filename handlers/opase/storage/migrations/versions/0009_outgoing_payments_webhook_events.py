"""Outgoing payments of the resource server, and the webhook outbox.

Revision ID: 0009
Revises: 0008

Hand-reviewed; runs on SQLite and PostgreSQL. Two new tables.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _timestamp(name: str, *, nullable: bool = False) -> sa.Column[object]:
    # Plain SQLAlchemy: revisions must not import application types that may change later.
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "outgoing_payments",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column(
            "wallet_address_id",
            sa.Uuid(),
            sa.ForeignKey(
                "wallet_addresses.id",
                name="fk_outgoing_payments_wallet_address_id_wallet_addresses",
            ),
            nullable=False,
        ),
        sa.Column(
            "quote_id",
            sa.Uuid(),
            sa.ForeignKey("quotes.id", name="fk_outgoing_payments_quote_id_quotes"),
            nullable=False,
        ),
        sa.Column("quote_shown", sa.Boolean(), nullable=False),
        sa.Column("grant_id", sa.Uuid(), nullable=False),
        sa.Column("client_wallet_address", sa.String(length=2048), nullable=True),
        sa.Column("client_key_thumbprint", sa.String(length=43), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("failure_reason", sa.String(length=255), nullable=True),
        sa.Column("sent_amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("metadata", sa.JSON(), nullable=True),
        sa.Column("ledger_reservation_id", sa.Uuid(), nullable=False),
        _timestamp("spending_interval_start", nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        _timestamp("next_attempt_at"),
        _timestamp("finished_at", nullable=True),
        _timestamp("created_at"),
        _timestamp("updated_at"),
        sa.CheckConstraint(
            "(client_wallet_address IS NULL) <> (client_key_thumbprint IS NULL)",
            name="ck_outgoing_payments_one_client_identity",
        ),
        sa.CheckConstraint(
            "state IN ('sending', 'completed', 'failed')", name="ck_outgoing_payments_state"
        ),
        sa.CheckConstraint(
            "(state = 'failed') = (failure_reason IS NOT NULL)",
            name="ck_outgoing_payments_failure_reason",
        ),
        sa.CheckConstraint(
            "sent_amount_minor >= 0", name="ck_outgoing_payments_sent_amount_nonnegative"
        ),
        sa.UniqueConstraint("quote_id", name="uq_outgoing_payments_quote_id"),
    )
    op.create_index(
        "ix_outgoing_payments_wallet_address_id_created_at_id",
        "outgoing_payments",
        ["wallet_address_id", "created_at", "id"],
    )
    op.create_index(
        "ix_outgoing_payments_state_next_attempt_at",
        "outgoing_payments",
        ["state", "next_attempt_at"],
    )
    op.create_table(
        "webhook_events",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        _timestamp("next_attempt_at"),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        _timestamp("delivered_at", nullable=True),
        _timestamp("created_at"),
        sa.CheckConstraint(
            "status IN ('pending', 'delivered', 'dead')", name="ck_webhook_events_status"
        ),
        sa.CheckConstraint("attempts >= 0", name="ck_webhook_events_attempts_nonnegative"),
    )
    op.create_index(
        "ix_webhook_events_status_next_attempt_at",
        "webhook_events",
        ["status", "next_attempt_at"],
    )
    op.create_index("ix_webhook_events_created_at_id", "webhook_events", ["created_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_webhook_events_created_at_id", table_name="webhook_events")
    op.drop_index("ix_webhook_events_status_next_attempt_at", table_name="webhook_events")
    op.drop_table("webhook_events")
    op.drop_index("ix_outgoing_payments_state_next_attempt_at", table_name="outgoing_payments")
    op.drop_index(
        "ix_outgoing_payments_wallet_address_id_created_at_id", table_name="outgoing_payments"
    )
    op.drop_table("outgoing_payments")
