"""Indexes for a client's own incoming and outgoing payments, by wallet address and client.

Revision ID: 0011
Revises: 0010

Hand-reviewed; runs on SQLite and PostgreSQL. A plain `list` shows a client only what it
created: with only (wallet_address_id, created_at, id), a page for a client that made few of
a wallet address's payments read every other client's rows on the way. Partial (a payment
names its client by wallet address or by key thumbprint, never both), so each index holds
only the rows it can find.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | Sequence[str] | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("incoming_payments", "outgoing_payments")
CLIENT_COLUMNS = {
    "wallet_address": "client_wallet_address",
    "key_thumbprint": "client_key_thumbprint",
}


def upgrade() -> None:
    for table in TABLES:
        for by, column in CLIENT_COLUMNS.items():
            present = sa.text(f"{column} IS NOT NULL")
            op.create_index(
                f"ix_{table}_own_by_{by}",
                table,
                ["wallet_address_id", column, "created_at", "id"],
                sqlite_where=present,
                postgresql_where=present,
            )


def downgrade() -> None:
    for table in TABLES:
        for by in CLIENT_COLUMNS:
            op.drop_index(f"ix_{table}_own_by_{by}", table_name=table)
