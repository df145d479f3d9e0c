"""A quote's receiver may be an incoming payment at another ASE: no local row to refer to.

Revision ID: 0012
Revises: 0011

Hand-reviewed; runs on SQLite and PostgreSQL (SQLite recreates the table in batch mode, its
named constraints kept). `quotes.incoming_payment_id` becomes nullable: set for a receiver
of this ASE (the foreign key still holds), empty for one elsewhere, which `receiver` names.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | Sequence[str] | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("quotes") as batch:
        batch.alter_column("incoming_payment_id", existing_type=sa.Uuid(), nullable=True)


def downgrade() -> None:
    # Only while every quote is to a local receiver: a remote one has no row to name.
    with op.batch_alter_table("quotes") as batch:
        batch.alter_column("incoming_payment_id", existing_type=sa.Uuid(), nullable=False)
