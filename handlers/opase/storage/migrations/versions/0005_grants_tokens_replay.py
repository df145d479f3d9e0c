"""Grants bound to their client's key with their access and interaction, outgoing-payment
grant spending, access tokens stored hashed, and the replay cache of HTTP message signatures.

Revision ID: 0005
Revises: 0004

Hand-reviewed; runs on SQLite and PostgreSQL. New tables only.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _timestamp(name: str, *, nullable: bool = False) -> sa.Column[object]:
    # Plain SQLAlchemy: revisions must not import application types that may change later.
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "grants",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("client_wallet_address", sa.String(length=2048), nullable=True),
        sa.Column("client_jwk", sa.JSON(), nullable=True),
        sa.Column("client_key_id", sa.String(length=255), nullable=False),
        sa.Column("client_key_thumbprint", sa.String(length=43), nullable=False),
        sa.Column("continue_token_sha256", sa.String(length=64), nullable=False),
        sa.Column("access", sa.JSON(), nullable=False),
        sa.Column("subject", sa.JSON(), nullable=True),
        sa.Column("interact_id", sa.Uuid(), nullable=True),
        sa.Column("interact_nonce", sa.String(length=255), nullable=True),
        sa.Column("interact_ref", sa.String(length=255), nullable=True),
        _timestamp("interaction_expires_at", nullable=True),
        sa.Column("interaction_session_sha256", sa.String(length=64), nullable=True),
        sa.Column("finish_uri", sa.String(length=2048), nullable=True),
        sa.Column("finish_nonce", sa.String(length=255), nullable=True),
        sa.Column("wait_s", sa.Integer(), nullable=True),
        _timestamp("continued_at", nullable=True),
        sa.Column("finalization_reason", sa.String(length=16), nullable=True),
        _timestamp("created_at"),
        _timestamp("updated_at"),
        sa.UniqueConstraint("continue_token_sha256", name="uq_grants_continue_token_sha256"),
        sa.UniqueConstraint("interact_id", name="uq_grants_interact_id"),
        sa.UniqueConstraint("interact_ref", name="uq_grants_interact_ref"),
        sa.CheckConstraint(
            "state IN ('pending', 'approved', 'denied', 'finalized', 'revoked')",
            name="ck_grants_state",
        ),
        sa.CheckConstraint(
            "(client_wallet_address IS NULL) <> (client_jwk IS NULL)",
            name="ck_grants_one_client_identity",
        ),
        sa.CheckConstraint(
            "(finish_uri IS NULL) = (finish_nonce IS NULL)", name="ck_grants_finish_pair"
        ),
    )
    op.create_table(
        "grant_spending",
        sa.Column(
            "grant_id",
            sa.Uuid(),
            sa.ForeignKey("grants.id", name="fk_grant_spending_grant_id_grants"),
            primary_key=True,
        ),
        sa.Column("debit_limit_minor", sa.BigInteger(), nullable=True),
        sa.Column("receive_limit_minor", sa.BigInteger(), nullable=True),
        sa.Column("interval", sa.String(length=100), nullable=True),
        _timestamp("interval_start", nullable=True),
        sa.Column("debit_spent_minor", sa.BigInteger(), nullable=False),
        sa.Column("receive_spent_minor", sa.BigInteger(), nullable=False),
        sa.CheckConstraint(
            "debit_spent_minor >= 0 AND receive_spent_minor >= 0",
            name="ck_grant_spending_non_negative",
        ),
        sa.CheckConstraint(
            "debit_limit_minor IS NULL OR debit_spent_minor <= debit_limit_minor",
            name="ck_grant_spending_debit_within_limit",
        ),
        sa.CheckConstraint(
            "receive_limit_minor IS NULL OR receive_spent_minor <= receive_limit_minor",
            name="ck_grant_spending_receive_within_limit",
        ),
    )
    op.create_table(
        "access_tokens",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column(
            "grant_id",
            sa.Uuid(),
            sa.ForeignKey("grants.id", name="fk_access_tokens_grant_id_grants"),
            nullable=False,
        ),
        sa.Column("value_sha256", sa.String(length=64), nullable=False),
        _timestamp("expires_at", nullable=True),
        _timestamp("revoked_at", nullable=True),
        _timestamp("created_at"),
        sa.UniqueConstraint("value_sha256", name="uq_access_tokens_value_sha256"),
    )
    op.create_index("ix_access_tokens_grant_id", "access_tokens", ["grant_id"])
    op.create_table(
        "seen_signatures",
        sa.Column("signature_sha256", sa.String(length=64), primary_key=True),
        _timestamp("expires_at"),
    )
    op.create_index("ix_seen_signatures_expires_at", "seen_signatures", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_seen_signatures_expires_at", table_name="seen_signatures")
    op.drop_table("seen_signatures")
    op.drop_index("ix_access_tokens_grant_id", table_name="access_tokens")
    op.drop_table("access_tokens")
    op.drop_table("grant_spending")
    op.drop_table("grants")
