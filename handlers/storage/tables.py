"""The database tables, as SQLModel classes.

Conventions: uuid primary keys (made in Python, so an object's id is known before it is
flushed), timezone-aware UTC timestamps, amounts as integers of the asset's minor unit
(`amount_minor`, BIGINT). Every constraint has an explicit name so that migrations can
refer to it on both SQLite (batch mode rebuilds tables) and PostgreSQL.

The schema in `migrations/versions/` must match these classes; a test compares them.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlmodel import Field, SQLModel

WALLET_ADDRESS_STATUSES: Final = ("active", "inactive")
KEY_STATUSES: Final = ("active", "revoked")
LEDGER_ACCOUNT_KINDS: Final = ("wallet", "settlement")

ASSET_CODE_LENGTH_MIN: Final = 3
ASSET_CODE_LENGTH_MAX: Final = 12
ASSET_SCALE_MAX: Final = 255
WALLET_ADDRESS_PATH_LENGTH_MAX: Final = 255
AMOUNT_MINOR_MAX: Final = 2**63 - 1
"""The largest BIGINT: no single amount, and no balance, may exceed it."""


def utc_now() -> datetime:
    return datetime.now(UTC)


class UtcDateTime(sa.TypeDecorator[datetime]):
    """An aware UTC datetime on every database.

    PostgreSQL stores `timestamptz`; SQLite has no time zones and stores the naive UTC
    text, so the zone is put back when reading. Naive datetimes are refused on the way in
    because their zone would be a guess.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: give a time zone")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def sa_table(model: type[SQLModel]) -> sa.Table:
    """The Core table of a table model, for Core statements (INSERT ... ON CONFLICT)."""
    # SQLModel does not declare `__table__` to type checkers.
    table = model.__table__  # type: ignore[attr-defined]
    assert isinstance(table, sa.Table)
    return table


def _one_of(column: str, values: tuple[str, ...]) -> str:
    listed = ", ".join(f"'{v}'" for v in values)
    return f"{column} IN ({listed})"


def _id_field() -> Any:
    return Field(default_factory=uuid.uuid4, primary_key=True, sa_type=sa.Uuid)


def _created_at_field() -> Any:
    return Field(default_factory=utc_now, sa_type=UtcDateTime, nullable=False)


class Asset(SQLModel, table=True):
    __tablename__ = "assets"
    __table_args__ = (
        sa.UniqueConstraint("code", "scale", name="uq_assets_code_scale"),
        sa.CheckConstraint(
            f"length(code) BETWEEN {ASSET_CODE_LENGTH_MIN} AND {ASSET_CODE_LENGTH_MAX}",
            name="ck_assets_code_length",
        ),
        sa.CheckConstraint(f"scale BETWEEN 0 AND {ASSET_SCALE_MAX}", name="ck_assets_scale_range"),
    )

    id: uuid.UUID = _id_field()
    code: str = Field(sa_type=sa.String(ASSET_CODE_LENGTH_MAX), nullable=False)
    scale: int = Field(sa_type=sa.SmallInteger, nullable=False)
    created_at: datetime = _created_at_field()


class Owner(SQLModel, table=True):
    """Someone who may log in to approve grants for their wallet addresses."""

    __tablename__ = "owners"
    __table_args__ = (sa.UniqueConstraint("username", name="uq_owners_username"),)

    id: uuid.UUID = _id_field()
    username: str = Field(sa_type=sa.String(64), nullable=False)
    password_hash: str = Field(sa_type=sa.String(255), nullable=False)
    """An argon2 PHC string: the parameters and salt travel with the hash."""
    created_at: datetime = _created_at_field()


class WalletAddress(SQLModel, table=True):
    __tablename__ = "wallet_addresses"
    __table_args__ = (
        sa.UniqueConstraint("path", name="uq_wallet_addresses_path"),
        sa.CheckConstraint(
            _one_of("status", WALLET_ADDRESS_STATUSES), name="ck_wallet_addresses_status"
        ),
    )

    id: uuid.UUID = _id_field()
    path: str = Field(sa_type=sa.String(WALLET_ADDRESS_PATH_LENGTH_MAX), nullable=False)
    """The URL path under the public base URL, such as `/alice` or `/accounts/bob`."""
    public_name: str | None = Field(default=None, sa_type=sa.String(255), nullable=True)
    asset_id: uuid.UUID = Field(
        foreign_key="assets.id", sa_type=sa.Uuid, nullable=False, index=True
    )
    owner_id: uuid.UUID | None = Field(
        default=None, foreign_key="owners.id", sa_type=sa.Uuid, nullable=True, index=True
    )
    status: str = Field(default="active", sa_type=sa.String(16), nullable=False)
    created_at: datetime = _created_at_field()
    updated_at: datetime = Field(
        default_factory=utc_now,
        sa_type=UtcDateTime,
        nullable=False,
        sa_column_kwargs={"onupdate": utc_now},
    )


class WalletAddressKey(SQLModel, table=True):
    """An Ed25519 public key clients of a wallet address sign requests with."""

    __tablename__ = "wallet_address_keys"
    __table_args__ = (
        sa.UniqueConstraint(
            "wallet_address_id", "key_id", name="uq_wallet_address_keys_wallet_address_id_key_id"
        ),
        sa.CheckConstraint(_one_of("status", KEY_STATUSES), name="ck_wallet_address_keys_status"),
        # A revoked key says when; an active one has no revocation time.
        sa.CheckConstraint(
            "(status = 'revoked') = (revoked_at IS NOT NULL)",
            name="ck_wallet_address_keys_revoked_at",
        ),
    )

    id: uuid.UUID = _id_field()
    wallet_address_id: uuid.UUID = Field(
        foreign_key="wallet_addresses.id", sa_type=sa.Uuid, nullable=False
    )
    key_id: str = Field(sa_type=sa.String(255), nullable=False)
    """The JWK `kid`."""
    x: str = Field(sa_type=sa.String(64), nullable=False)
    """The base64url (unpadded) 32-byte Ed25519 public key, the JWK `x`."""
    status: str = Field(default="active", sa_type=sa.String(16), nullable=False)
    created_at: datetime = _created_at_field()
    revoked_at: datetime | None = Field(default=None, sa_type=UtcDateTime, nullable=True)


class LedgerAccount(SQLModel, table=True):
    """One side of double-entry transfers: a wallet address's money, or the ASE's
    settlement account of an asset (money that entered or left the ledger)."""

    __tablename__ = "ledger_accounts"
    __table_args__ = (
        sa.UniqueConstraint("wallet_address_id", name="uq_ledger_accounts_wallet_address_id"),
        sa.CheckConstraint(_one_of("kind", LEDGER_ACCOUNT_KINDS), name="ck_ledger_accounts_kind"),
        # Wallet accounts belong to a wallet address; settlement accounts to nobody.
        sa.CheckConstraint(
            "(kind = 'wallet') = (wallet_address_id IS NOT NULL)",
            name="ck_ledger_accounts_wallet_address_id",
        ),
        # One settlement account per asset: `settlement_account` relies on it to get or create
        # without a race.
        sa.Index(
            "uq_ledger_accounts_settlement_asset_id",
            "asset_id",
            unique=True,
            sqlite_where=sa.text("kind = 'settlement'"),
            postgresql_where=sa.text("kind = 'settlement'"),
        ),
    )

    id: uuid.UUID = _id_field()
    asset_id: uuid.UUID = Field(foreign_key="assets.id", sa_type=sa.Uuid, nullable=False)
    kind: str = Field(sa_type=sa.String(16), nullable=False)
    wallet_address_id: uuid.UUID | None = Field(
        default=None, foreign_key="wallet_addresses.id", sa_type=sa.Uuid, nullable=True
    )
    created_at: datetime = _created_at_field()


class LedgerTransfer(SQLModel, table=True):
    """`amount_minor` moves from the debit account to the credit account. Rows are never
    updated or deleted: balances are derived from them."""

    __tablename__ = "ledger_transfers"
    __table_args__ = (
        sa.UniqueConstraint("idempotency_key", name="uq_ledger_transfers_idempotency_key"),
        sa.CheckConstraint("amount_minor > 0", name="ck_ledger_transfers_amount_minor_positive"),
        sa.CheckConstraint(
            "debit_account_id <> credit_account_id", name="ck_ledger_transfers_distinct_accounts"
        ),
    )

    id: uuid.UUID = _id_field()
    debit_account_id: uuid.UUID = Field(
        foreign_key="ledger_accounts.id", sa_type=sa.Uuid, nullable=False, index=True
    )
    credit_account_id: uuid.UUID = Field(
        foreign_key="ledger_accounts.id", sa_type=sa.Uuid, nullable=False, index=True
    )
    amount_minor: int = Field(sa_type=sa.BigInteger, nullable=False)
    idempotency_key: str | None = Field(default=None, sa_type=sa.String(255), nullable=True)
    created_at: datetime = _created_at_field()
