"""Incoming payments remember that their expiry was reported to the webhook endpoint.

Revision ID: 0010
Revises: 0009

Hand-reviewed; runs on SQLite and PostgreSQL. One new column and its index.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("incoming_payments") as batch:
        batch.add_column(sa.Column("expiry_reported_at", sa.DateTime(timezone=True), nullable=True))
    # Payments that expired before there were webhooks count as reported: an upgrade must
    # not send the endpoint a burst of stale news. Both databases compare their stored UTC
    # text or timestamptz correctly against CURRENT_TIMESTAMP.
    op.execute(
        "UPDATE incoming_payments SET expiry_reported_at = expires_at"
        " WHERE expires_at <= CURRENT_TIMESTAMP"
    )
    op.create_index(
        "ix_incoming_payments_expiry_reported_at_expires_at",
        "incoming_payments",
        ["expiry_reported_at", "expires_at"],
    )


def downgrade() -> None:
    op.drop_index(
        "ix_incoming_payments_expiry_reported_at_expires_at", table_name="incoming_payments"
    )
    with op.batch_alter_table("incoming_payments") as batch:
        batch.drop_column("expiry_reported_at")
