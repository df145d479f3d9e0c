"""Pricing and notification settings: fees per asset and side, static exchange rates, and
the one webhook endpoint.

Revision ID: 0004
Revises: 0003

Hand-reviewed; runs on SQLite and PostgreSQL. New tables only, so the upgrade touches no
existing row. Rates are decimal text on both databases: SQLite's NUMERIC affinity would
store `0.92` as a binary float.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _updated_at() -> sa.Column[object]:
    # Plain SQLAlchemy: revisions must not import application types that may change later.
    return sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False)


def upgrade() -> None:
    op.create_table(
        "fees",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column(
            "asset_id",
            sa.Uuid(),
            sa.ForeignKey("assets.id", name="fk_fees_asset_id_assets"),
            nullable=False,
        ),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("fixed_minor", sa.BigInteger(), nullable=False),
        sa.Column("basis_points", sa.Integer(), nullable=False),
        _updated_at(),
        sa.UniqueConstraint("asset_id", "kind", name="uq_fees_asset_id_kind"),
        sa.CheckConstraint("kind IN ('sending', 'receiving')", name="ck_fees_kind"),
        sa.CheckConstraint("fixed_minor >= 0", name="ck_fees_fixed_minor_range"),
        sa.CheckConstraint("basis_points BETWEEN 0 AND 10000", name="ck_fees_basis_points_range"),
    )
    op.create_table(
        "exchange_rates",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("base_code", sa.String(length=12), nullable=False),
        sa.Column("counter_code", sa.String(length=12), nullable=False),
        sa.Column("rate", sa.String(length=19), nullable=False),
        _updated_at(),
        sa.UniqueConstraint(
            "base_code", "counter_code", name="uq_exchange_rates_base_code_counter_code"
        ),
        sa.CheckConstraint("length(rate) BETWEEN 1 AND 19", name="ck_exchange_rates_rate_length"),
    )
    op.create_table(
        "webhook_endpoints",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("url", sa.String(length=2048), nullable=False),
        sa.Column("secret", sa.String(length=200), nullable=True),
        _updated_at(),
        sa.CheckConstraint("id = 1", name="ck_webhook_endpoints_one_row"),
    )


def downgrade() -> None:
    op.drop_table("webhook_endpoints")
    op.drop_table("exchange_rates")
    op.drop_table("fees")
