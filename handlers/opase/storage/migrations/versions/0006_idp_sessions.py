"""The built-in identity provider: browser sessions and login attempt counters.

Revision ID: 0006
Revises: 0005

Hand-reviewed; runs on SQLite and PostgreSQL. New tables only.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _timestamp(name: str, *, nullable: bool = False) -> sa.Column[object]:
    # Plain SQLAlchemy: revisions must not import application types that may change later.
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "idp_sessions",
        sa.Column("id", sa.String(length=64), primary_key=True),
        sa.Column(
            "owner_id",
            sa.Uuid(),
            sa.ForeignKey("owners.id", name="fk_idp_sessions_owner_id_owners"),
            nullable=True,
        ),
        sa.Column("csrf_token", sa.String(length=64), nullable=False),
        _timestamp("created_at"),
        _timestamp("expires_at"),
    )
    op.create_index("ix_idp_sessions_expires_at", "idp_sessions", ["expires_at"])
    op.create_table(
        "idp_login_failures",
        sa.Column("key_sha256", sa.String(length=64), primary_key=True),
        sa.Column("failure_count", sa.Integer(), nullable=False),
        _timestamp("window_started_at"),
    )
    op.create_index(
        "ix_idp_login_failures_window_started_at", "idp_login_failures", ["window_started_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_idp_login_failures_window_started_at", table_name="idp_login_failures")
    op.drop_table("idp_login_failures")
    op.drop_index("ix_idp_sessions_expires_at", table_name="idp_sessions")
    op.drop_table("idp_sessions")
