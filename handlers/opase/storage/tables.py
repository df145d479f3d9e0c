"""The database tables, as SQLModel classes.

Conventions: uuid primary keys (made in Python, so an object's id is known before it is
flushed), timezone-aware UTC timestamps, amounts as integers of the asset's minor unit
(`amount_minor`, BIGINT). Every constraint has an explicit name so that migrations can
refer to it on both SQLite (batch mode rebuilds tables) and PostgreSQL.

The schema in `migrations/versions/` must match these classes; a test compares them.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlmodel import Field, SQLModel

WALLET_ADDRESS_STATUSES: Final = ("active", "inactive")
KEY_STATUSES: Final = ("active", "revoked")
LEDGER_ACCOUNT_KINDS: Final = ("wallet", "settlement", "fees", "peer_liquidity")
LEDGER_TRANSFER_KINDS: Final = ("posted", "pending", "post_pending", "void_pending")

ASSET_CODE_LENGTH_MIN: Final = 3
ASSET_CODE_LENGTH_MAX: Final = 12
ASSET_SCALE_MAX: Final = 255
WALLET_ADDRESS_PATH_LENGTH_MAX: Final = 255
"""The largest BIGINT: no single amount, and no balance, may exceed it."""
LEDGER_MEMO_LENGTH_MAX: Final = 255


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


@dataclass(frozen=True, slots=True)
class _ColumnPlan:
    attribute: str
    column: str
    default: Any
    default_factory: Callable[[], Any] | None
    required: bool


@functools.lru_cache(maxsize=64)  # one entry per table model
def _column_plans(model: type[SQLModel]) -> tuple[_ColumnPlan, ...]:
    plans = []
    for mapped in sa.inspect(model).column_attrs:
        field = model.model_fields[mapped.key]
        factory = field.default_factory
        plans.append(
            _ColumnPlan(
                mapped.key,
                mapped.columns[0].key,
                field.default,
                factory,  # type: ignore[arg-type]  # ours take no arguments
                field.is_required(),
            )
        )
    return tuple(plans)


def new_row(model: type[SQLModel], **values: Any) -> dict[str, Any]:
    """A new row of `model` for a Core INSERT, by column name: `values` (by attribute name)
    and the model's defaults for the rest, as constructing the model would give, without the
    cost of an ORM instance: for hot paths that write new rows outside the unit of work."""
    row: dict[str, Any] = {}
    given_count = 0
    for plan in _column_plans(model):
        if plan.attribute in values:
            row[plan.column] = values[plan.attribute]
            given_count += 1
        elif plan.default_factory is not None:
            row[plan.column] = plan.default_factory()
        else:
            assert not plan.required, f"a new {model.__name__} needs {plan.attribute}"
            row[plan.column] = plan.default
    assert given_count == len(values), f"{model.__name__} has no column for one of {set(values)}"
    return row


def column_values(instance: SQLModel) -> dict[str, Any]:
    """An instance's values by column name: the same shape as `new_row`'s."""
    plans = _column_plans(type(instance))
    return {plan.column: getattr(instance, plan.attribute) for plan in plans}


def sa_table(model: type[SQLModel]) -> sa.Table:
    """The Core table of a table model, for Core statements (INSERT ... ON CONFLICT)."""
    # SQLModel does not declare `__table__` to type checkers.
    table = model.__table__  # type: ignore[attr-defined]
    assert isinstance(table, sa.Table)
    return table


def _own_list_indexes(table: str) -> tuple[sa.Index, sa.Index]:
    """A payment table's indexes for a client's own payments (a plain `list`, not
    `list-all`): a page reads that client's rows only, however many other clients' the
    wallet address has. Partial: a payment names its client one way, never both."""

    def by(name: str, column: str) -> sa.Index:
        present = sa.text(f"{column} IS NOT NULL")
        return sa.Index(
            f"ix_{table}_own_by_{name}",
            "wallet_address_id",
            column,
            "created_at",
            "id",
            sqlite_where=present,
            postgresql_where=present,
        )

    return (
        by("wallet_address", "client_wallet_address"),
        by("key_thumbprint", "client_key_thumbprint"),
    )


def _one_of(column: str, values: tuple[str, ...]) -> str:
    listed = ", ".join(f"'{v}'" for v in values)
    return f"{column} IN ({listed})"


def _id_field() -> Any:
    return Field(default_factory=uuid.uuid4, primary_key=True, sa_type=sa.Uuid)


def _created_at_field() -> Any:
    return Field(default_factory=utc_now, sa_type=UtcDateTime, nullable=False)


def _running_sum_field() -> Any:
    # The server default fills the rows that existed before the column (migration 0002).
    return Field(
        default=0, sa_type=sa.BigInteger, nullable=False, sa_column_kwargs={"server_default": "0"}
    )


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
    """One side of double-entry transfers: a wallet address's money; per asset, the ASE's
    settlement account (the mirror of money that entered or left the ledger) and its fees
    account; or a peer's liquidity on a payment rail.

    The four running sums are TigerBeetle's model: they only grow (a pending amount shrinks
    when it is posted or voided), each stays within BIGINT, and the ledger updates them in the
    same transaction as the transfer that moves them. The transfer history can recompute them
    (`opase.ledger.audit`). The posted balance is `credits_posted_minor - debits_posted_minor`.
    """

    __tablename__ = "ledger_accounts"
    __table_args__ = (
        sa.UniqueConstraint("wallet_address_id", name="uq_ledger_accounts_wallet_address_id"),
        # A peer holds at most one liquidity account per asset; NULL peer ids (not yet
        # assigned) are distinct on both databases.
        sa.UniqueConstraint("peer_id", "asset_id", name="uq_ledger_accounts_peer_id_asset_id"),
        sa.CheckConstraint(_one_of("kind", LEDGER_ACCOUNT_KINDS), name="ck_ledger_accounts_kind"),
        # Wallet accounts belong to a wallet address; the ASE's own accounts to nobody.
        sa.CheckConstraint(
            "(kind = 'wallet') = (wallet_address_id IS NOT NULL)",
            name="ck_ledger_accounts_wallet_address_id",
        ),
        sa.CheckConstraint(
            "peer_id IS NULL OR kind = 'peer_liquidity'", name="ck_ledger_accounts_peer_id"
        ),
        # NULL is "no limit", and only the settlement account has none: it mirrors every
        # deposit, so it goes as far below zero as the ASE holds money.
        sa.CheckConstraint(
            "(kind = 'settlement') = (credit_limit_minor IS NULL)",
            name="ck_ledger_accounts_credit_limit_minor_null",
        ),
        sa.CheckConstraint(
            "credit_limit_minor >= 0", name="ck_ledger_accounts_credit_limit_minor_range"
        ),
        sa.CheckConstraint(
            "debits_posted_minor >= 0 AND credits_posted_minor >= 0"
            " AND debits_pending_minor >= 0 AND credits_pending_minor >= 0",
            name="ck_ledger_accounts_sums_non_negative",
        ),
        # One settlement and one fees account per asset: the get-or-create functions rely on
        # it to be race-free.
        sa.Index(
            "uq_ledger_accounts_settlement_asset_id",
            "asset_id",
            unique=True,
            sqlite_where=sa.text("kind = 'settlement'"),
            postgresql_where=sa.text("kind = 'settlement'"),
        ),
        sa.Index(
            "uq_ledger_accounts_fees_asset_id",
            "asset_id",
            unique=True,
            sqlite_where=sa.text("kind = 'fees'"),
            postgresql_where=sa.text("kind = 'fees'"),
        ),
    )

    id: uuid.UUID = _id_field()
    asset_id: uuid.UUID = Field(foreign_key="assets.id", sa_type=sa.Uuid, nullable=False)
    kind: str = Field(sa_type=sa.String(16), nullable=False)
    wallet_address_id: uuid.UUID | None = Field(
        default=None, foreign_key="wallet_addresses.id", sa_type=sa.Uuid, nullable=True
    )
    peer_id: uuid.UUID | None = Field(default=None, sa_type=sa.Uuid, nullable=True)
    """The peer of a `peer_liquidity` account; there is no peers table yet, so no key."""
    # No column default: the ORM would write it in place of an explicit None.
    credit_limit_minor: int | None = Field(default=None, sa_type=sa.BigInteger, nullable=True)
    """How far below zero the available balance may go; None: no limit. Every account states
    its limit (a forgotten one is NULL, which the database refuses for any kind but
    settlement)."""
    debits_posted_minor: int = _running_sum_field()
    credits_posted_minor: int = _running_sum_field()
    debits_pending_minor: int = _running_sum_field()
    credits_pending_minor: int = _running_sum_field()
    created_at: datetime = _created_at_field()


class LedgerTransfer(SQLModel, table=True):
    """`amount_minor` moves from the debit account to the credit account. Rows are never
    updated or deleted: the accounts' running sums are derived from them.

    Kinds: `posted` moves money at once; `pending` reserves it until `expires_at`; a
    `post_pending` row posts all or part of its pending transfer (`pending_id`) and releases
    the rest; a `void_pending` row releases all of it. A pending transfer is resolved at most
    once: `pending_id` is unique.
    """

    __tablename__ = "ledger_transfers"
    __table_args__ = (
        sa.UniqueConstraint("idempotency_key", name="uq_ledger_transfers_idempotency_key"),
        sa.UniqueConstraint("pending_id", name="uq_ledger_transfers_pending_id"),
        sa.CheckConstraint("amount_minor > 0", name="ck_ledger_transfers_amount_minor_positive"),
        sa.CheckConstraint(
            "debit_account_id <> credit_account_id", name="ck_ledger_transfers_distinct_accounts"
        ),
        sa.CheckConstraint(_one_of("kind", LEDGER_TRANSFER_KINDS), name="ck_ledger_transfers_kind"),
        sa.CheckConstraint(
            "(kind IN ('post_pending', 'void_pending')) = (pending_id IS NOT NULL)",
            name="ck_ledger_transfers_pending_id",
        ),
        sa.CheckConstraint(
            "(kind = 'pending') = (expires_at IS NOT NULL)", name="ck_ledger_transfers_expires_at"
        ),
        # The keyset of `list_transfers`: (created_at, id) is a total order.
        sa.Index("ix_ledger_transfers_created_at_id", "created_at", "id"),
    )

    id: uuid.UUID = _id_field()
    kind: str = Field(sa_type=sa.String(16), nullable=False)
    debit_account_id: uuid.UUID = Field(
        foreign_key="ledger_accounts.id", sa_type=sa.Uuid, nullable=False, index=True
    )
    credit_account_id: uuid.UUID = Field(
        foreign_key="ledger_accounts.id", sa_type=sa.Uuid, nullable=False, index=True
    )
    amount_minor: int = Field(sa_type=sa.BigInteger, nullable=False)
    pending_id: uuid.UUID | None = Field(
        default=None,
        sa_type=sa.Uuid,
        nullable=True,
        # Named, unlike the keys of 0001, so that migrations can drop it on both databases.
        sa_column_args=[
            sa.ForeignKey(
                "ledger_transfers.id", name="fk_ledger_transfers_pending_id_ledger_transfers"
            )
        ],
    )
    expires_at: datetime | None = Field(default=None, sa_type=UtcDateTime, nullable=True)
    idempotency_key: str | None = Field(default=None, sa_type=sa.String(255), nullable=True)
    """Unique per ledger; None only on the voids that expiry makes."""
    memo: str | None = Field(default=None, sa_type=sa.String(LEDGER_MEMO_LENGTH_MAX), nullable=True)
    created_at: datetime = _created_at_field()


class IdempotentResponse(SQLModel, table=True):
    """The first answer to a request that carried an Idempotency-Key: a repeat with the same
    key and the same request gets it again; the same key on another request is refused."""

    __tablename__ = "idempotent_responses"

    idempotency_key: str = Field(sa_column=sa.Column(sa.String(200), primary_key=True))
    request_sha256: str = Field(sa_column=sa.Column(sa.String(64), nullable=False))
    status_code: int = Field(sa_column=sa.Column(sa.SmallInteger, nullable=False))
    body: bytes = Field(sa_column=sa.Column(sa.LargeBinary, nullable=False))
    created_at: datetime = _created_at_field()


FEE_KINDS: Final = ("sending", "receiving")
BASIS_POINTS_MAX: Final = 10_000
"""100%: a fee's proportional part is at most the whole amount."""
EXCHANGE_RATE_LENGTH_MAX: Final = 19
"""A rate's decimal text: at most 18 digits and a point."""
WEBHOOK_URL_LENGTH_MAX: Final = 2048
WEBHOOK_SECRET_LENGTH_MAX: Final = 200
WEBHOOK_ENDPOINT_ID: Final = 1
"""The id of the one row of `webhook_endpoints`."""


class AssetFee(SQLModel, table=True):
    """What the ASE charges on a payment in an asset, per side (`kind`): `fixed_minor` plus
    `basis_points` hundredths of a percent of the amount. A side without a row charges
    nothing."""

    __tablename__ = "fees"
    __table_args__ = (
        sa.UniqueConstraint("asset_id", "kind", name="uq_fees_asset_id_kind"),
        sa.CheckConstraint(_one_of("kind", FEE_KINDS), name="ck_fees_kind"),
        sa.CheckConstraint("fixed_minor >= 0", name="ck_fees_fixed_minor_range"),
        sa.CheckConstraint(
            f"basis_points BETWEEN 0 AND {BASIS_POINTS_MAX}", name="ck_fees_basis_points_range"
        ),
    )

    id: uuid.UUID = _id_field()
    asset_id: uuid.UUID = Field(
        sa_type=sa.Uuid,
        nullable=False,
        # Named so that a later migration can refer to it on both databases.
        sa_column_args=[sa.ForeignKey("assets.id", name="fk_fees_asset_id_assets")],
    )
    kind: str = Field(sa_type=sa.String(16), nullable=False)
    fixed_minor: int = Field(sa_type=sa.BigInteger, nullable=False)
    basis_points: int = Field(sa_type=sa.Integer, nullable=False)
    updated_at: datetime = Field(default_factory=utc_now, sa_type=UtcDateTime, nullable=False)


class ExchangeRate(SQLModel, table=True):
    """A static rate: one unit of `base_code` is worth `rate` units of `counter_code`.

    Codes, not asset ids: a payment may convert to an asset this ASE does not hold. The rate
    is decimal text (`0.92`), never a float; SQLite has no exact decimal type (its NUMERIC
    affinity turns `0.92` into a binary float), so both databases store the text.
    """

    __tablename__ = "exchange_rates"
    __table_args__ = (
        sa.UniqueConstraint(
            "base_code", "counter_code", name="uq_exchange_rates_base_code_counter_code"
        ),
        sa.CheckConstraint(
            f"length(rate) BETWEEN 1 AND {EXCHANGE_RATE_LENGTH_MAX}",
            name="ck_exchange_rates_rate_length",
        ),
    )

    id: uuid.UUID = _id_field()
    base_code: str = Field(sa_type=sa.String(ASSET_CODE_LENGTH_MAX), nullable=False)
    counter_code: str = Field(sa_type=sa.String(ASSET_CODE_LENGTH_MAX), nullable=False)
    rate: str = Field(sa_type=sa.String(EXCHANGE_RATE_LENGTH_MAX), nullable=False)
    updated_at: datetime = Field(default_factory=utc_now, sa_type=UtcDateTime, nullable=False)


class WebhookEndpoint(SQLModel, table=True):
    """Where events are sent: one row at most (id 1), replaced as a whole."""

    __tablename__ = "webhook_endpoints"
    __table_args__ = (
        sa.CheckConstraint(f"id = {WEBHOOK_ENDPOINT_ID}", name="ck_webhook_endpoints_one_row"),
    )

    id: int = Field(
        default=WEBHOOK_ENDPOINT_ID,
        sa_column=sa.Column(sa.Integer, primary_key=True, autoincrement=False),
    )
    url: str = Field(sa_type=sa.String(WEBHOOK_URL_LENGTH_MAX), nullable=False)
    secret: str | None = Field(
        default=None, sa_type=sa.String(WEBHOOK_SECRET_LENGTH_MAX), nullable=True
    )
    """The HMAC key events will be signed with: kept as given, because signing needs it."""
    updated_at: datetime = Field(default_factory=utc_now, sa_type=UtcDateTime, nullable=False)


GRANT_STATES: Final = ("pending", "approved", "denied", "finalized", "revoked")
"""pending (waiting for the owner) -> approved (consent given, no token yet) -> finalized
(tokens issued); pending -> denied (terminal); approved or finalized -> revoked (terminal)."""
CLIENT_WALLET_ADDRESS_LENGTH_MAX: Final = 2048
URL_LENGTH_MAX: Final = 2048
NONCE_LENGTH_MAX: Final = 255
INTERVAL_LENGTH_MAX: Final = 100
SHA256_HEX_LENGTH: Final = 64
JWK_THUMBPRINT_LENGTH: Final = 43
"""RFC 7638 SHA-256 thumbprint, base64url without padding."""


class Grant(SQLModel, table=True):
    """A GNAP grant: the client it belongs to, the access it asks for, and its interaction.

    The client is a wallet address (its keys at `<wallet address>/jwks.json`) or, for
    directed identity, the JWK it presented. Either way the grant remembers which key signed
    its request (`client_key_id` + thumbprint): every later call under the grant must be
    signed by that same key. Continuation tokens are stored as SHA-256, never in clear.
    `access` holds the access items exactly as granted, which is also what the consent
    screen shows.
    """

    __tablename__ = "grants"
    __table_args__ = (
        sa.UniqueConstraint("continue_token_sha256", name="uq_grants_continue_token_sha256"),
        sa.UniqueConstraint("interact_id", name="uq_grants_interact_id"),
        sa.UniqueConstraint("interact_ref", name="uq_grants_interact_ref"),
        sa.CheckConstraint(_one_of("state", GRANT_STATES), name="ck_grants_state"),
        sa.CheckConstraint(
            "(client_wallet_address IS NULL) <> (client_jwk IS NULL)",
            name="ck_grants_one_client_identity",
        ),
        sa.CheckConstraint(
            "(finish_uri IS NULL) = (finish_nonce IS NULL)", name="ck_grants_finish_pair"
        ),
    )

    id: uuid.UUID = _id_field()
    state: str = Field(default="pending", sa_type=sa.String(16), nullable=False)
    client_wallet_address: str | None = Field(
        default=None, sa_type=sa.String(CLIENT_WALLET_ADDRESS_LENGTH_MAX), nullable=True
    )
    client_jwk: dict[str, str] | None = Field(
        default=None, sa_type=sa.JSON(none_as_null=True), nullable=True
    )
    client_key_id: str = Field(sa_type=sa.String(255), nullable=False)
    client_key_thumbprint: str = Field(sa_type=sa.String(JWK_THUMBPRINT_LENGTH), nullable=False)
    continue_token_sha256: str = Field(sa_type=sa.String(SHA256_HEX_LENGTH), nullable=False)
    access: list[dict[str, Any]] = Field(default_factory=list, sa_type=sa.JSON, nullable=False)
    subject: dict[str, Any] | None = Field(
        default=None, sa_type=sa.JSON(none_as_null=True), nullable=True
    )
    interact_id: uuid.UUID | None = Field(default=None, sa_type=sa.Uuid, nullable=True)
    """The id in the interaction URL; None for a grant that needs no interaction."""
    interact_nonce: str | None = Field(
        default=None, sa_type=sa.String(NONCE_LENGTH_MAX), nullable=True
    )
    """Our nonce: in the interaction URL, and `interact.finish` (the server nonce of the
    finish hash)."""
    interact_ref: str | None = Field(
        default=None, sa_type=sa.String(NONCE_LENGTH_MAX), nullable=True
    )
    """Set when the owner approves; the client continues with it."""
    interaction_expires_at: datetime | None = Field(
        default=None, sa_type=UtcDateTime, nullable=True
    )
    interaction_session_sha256: str | None = Field(
        default=None, sa_type=sa.String(SHA256_HEX_LENGTH), nullable=True
    )
    """The browser that started the interaction (a cookie's hash): only it may finish it."""
    finish_uri: str | None = Field(default=None, sa_type=sa.String(URL_LENGTH_MAX), nullable=True)
    finish_nonce: str | None = Field(
        default=None, sa_type=sa.String(NONCE_LENGTH_MAX), nullable=True
    )
    """The client's nonce, first line of the finish hash."""
    wait_s: int | None = Field(default=None, sa_type=sa.Integer, nullable=True)
    """`continue.wait` told to the client: polling sooner after `continued_at` is too_fast."""
    continued_at: datetime | None = Field(default=None, sa_type=UtcDateTime, nullable=True)
    finalization_reason: str | None = Field(default=None, sa_type=sa.String(16), nullable=True)
    """issued, rejected or revoked: why the grant reached a terminal state."""
    created_at: datetime = _created_at_field()
    updated_at: datetime = Field(default_factory=utc_now, sa_type=UtcDateTime, nullable=False)


class GrantSpending(SQLModel, table=True):
    """An outgoing-payment grant's limits and what payments under it have used in the current
    interval: checking and reserving an amount is one conditional UPDATE of this row, O(1)
    and race-free; the CHECK constraints hold the limits even against a faulty caller."""

    __tablename__ = "grant_spending"
    __table_args__ = (
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

    grant_id: uuid.UUID = Field(
        sa_column=sa.Column(
            sa.Uuid,
            sa.ForeignKey("grants.id", name="fk_grant_spending_grant_id_grants"),
            primary_key=True,
        )
    )
    debit_limit_minor: int | None = Field(default=None, sa_type=sa.BigInteger, nullable=True)
    receive_limit_minor: int | None = Field(default=None, sa_type=sa.BigInteger, nullable=True)
    interval: str | None = Field(
        default=None, sa_type=sa.String(INTERVAL_LENGTH_MAX), nullable=True
    )
    """ISO 8601 repeating interval; None: the limits hold for the grant's whole life."""
    interval_start: datetime | None = Field(default=None, sa_type=UtcDateTime, nullable=True)
    """Start of the interval the spent sums belong to."""
    debit_spent_minor: int = Field(default=0, sa_type=sa.BigInteger, nullable=False)
    receive_spent_minor: int = Field(default=0, sa_type=sa.BigInteger, nullable=False)


class AccessToken(SQLModel, table=True):
    """An access token of a grant, stored as the SHA-256 of its value; `id` is the token's
    `manage` URL id, which never contains the value."""

    __tablename__ = "access_tokens"
    __table_args__ = (sa.UniqueConstraint("value_sha256", name="uq_access_tokens_value_sha256"),)

    id: uuid.UUID = _id_field()
    grant_id: uuid.UUID = Field(
        sa_type=sa.Uuid,
        nullable=False,
        index=True,
        sa_column_args=[sa.ForeignKey("grants.id", name="fk_access_tokens_grant_id_grants")],
    )
    value_sha256: str = Field(sa_type=sa.String(SHA256_HEX_LENGTH), nullable=False)
    expires_at: datetime | None = Field(default=None, sa_type=UtcDateTime, nullable=True)
    revoked_at: datetime | None = Field(default=None, sa_type=UtcDateTime, nullable=True)
    created_at: datetime = _created_at_field()


class SeenSignature(SQLModel, table=True):
    """Signatures already accepted, until they are too old to be accepted anyway: the replay
    cache shared by every worker process on PostgreSQL."""

    __tablename__ = "seen_signatures"

    signature_sha256: str = Field(
        sa_column=sa.Column(sa.String(SHA256_HEX_LENGTH), primary_key=True)
    )
    expires_at: datetime = Field(sa_type=UtcDateTime, nullable=False, index=True)


IDP_CSRF_TOKEN_LENGTH_MAX: Final = 64


class IdpSession(SQLModel, table=True):
    """A browser's session with the built-in identity provider (`opase.idp.pages`): anonymous
    (`owner_id` None: it carries the login form's CSRF token) or logged in. The cookie holds
    a random value; only its SHA-256 is stored, so a database leak opens no session."""

    __tablename__ = "idp_sessions"

    id: str = Field(sa_column=sa.Column(sa.String(SHA256_HEX_LENGTH), primary_key=True))
    """SHA-256 (hex) of the cookie value."""
    owner_id: uuid.UUID | None = Field(
        default=None,
        sa_type=sa.Uuid,
        nullable=True,
        sa_column_args=[sa.ForeignKey("owners.id", name="fk_idp_sessions_owner_id_owners")],
    )
    csrf_token: str = Field(sa_type=sa.String(IDP_CSRF_TOKEN_LENGTH_MAX), nullable=False)
    created_at: datetime = _created_at_field()
    expires_at: datetime = Field(sa_type=UtcDateTime, nullable=False, index=True)


class IdpLoginFailure(SQLModel, table=True):
    """Login attempts of the built-in identity provider within the current window, per
    username and per client address (`opase.idp.sessions` explains the policy). The key is
    the SHA-256 of `username:<name>` or `address:<ip>`: fixed width, and no names stored."""

    __tablename__ = "idp_login_failures"

    key_sha256: str = Field(sa_column=sa.Column(sa.String(SHA256_HEX_LENGTH), primary_key=True))
    failure_count: int = Field(sa_type=sa.Integer, nullable=False)
    window_started_at: datetime = Field(sa_type=UtcDateTime, nullable=False, index=True)


SHARED_SECRET_LENGTH_MAX: Final = 64
"""Unpadded base64url of 32 random bytes is 43 characters."""


class IncomingPayment(SQLModel, table=True):
    """Money a wallet address of this ASE expects: created by a client under an
    incoming-payment grant, received into until `incoming_amount_minor` (the cap), expiry
    or completion. `client_*` name the client that created it (exactly one): a plain `read`
    or `list` shows a client only its own. `shared_secret` is the STREAM secret of its ILP
    payment method: a credential, never logged, shown only to clients allowed to read it."""

    __tablename__ = "incoming_payments"
    __table_args__ = (
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
        sa.Index(
            "ix_incoming_payments_wallet_address_id_created_at_id",
            "wallet_address_id",
            "created_at",
            "id",
        ),
        *_own_list_indexes("incoming_payments"),
        # The expiry sweep looks for payments not yet reported whose expiry has passed.
        sa.Index(
            "ix_incoming_payments_expiry_reported_at_expires_at",
            "expiry_reported_at",
            "expires_at",
        ),
    )

    id: uuid.UUID = _id_field()
    wallet_address_id: uuid.UUID = Field(
        sa_type=sa.Uuid,
        nullable=False,
        sa_column_args=[
            sa.ForeignKey(
                "wallet_addresses.id",
                name="fk_incoming_payments_wallet_address_id_wallet_addresses",
            )
        ],
    )
    client_wallet_address: str | None = Field(
        default=None, sa_type=sa.String(CLIENT_WALLET_ADDRESS_LENGTH_MAX), nullable=True
    )
    client_key_thumbprint: str | None = Field(
        default=None, sa_type=sa.String(JWK_THUMBPRINT_LENGTH), nullable=True
    )
    """The RFC 7638 thumbprint of a directed-identity (JWK) client."""
    incoming_amount_minor: int | None = Field(default=None, sa_type=sa.BigInteger, nullable=True)
    received_amount_minor: int = Field(default=0, sa_type=sa.BigInteger, nullable=False)
    expires_at: datetime = Field(sa_type=UtcDateTime, nullable=False)
    completed_at: datetime | None = Field(default=None, sa_type=UtcDateTime, nullable=True)
    metadata_: dict[str, Any] | None = Field(
        default=None,
        sa_type=sa.JSON(none_as_null=True),
        nullable=True,
        sa_column_kwargs={"name": "metadata"},
    )
    shared_secret: str = Field(sa_type=sa.String(SHARED_SECRET_LENGTH_MAX), nullable=False)
    created_at: datetime = _created_at_field()
    updated_at: datetime = Field(
        default_factory=utc_now,
        sa_type=UtcDateTime,
        nullable=False,
        sa_column_kwargs={"onupdate": utc_now},
    )
    expiry_reported_at: datetime | None = Field(default=None, sa_type=UtcDateTime, nullable=True)
    """When its expiry went to the webhook outbox (`incoming_payment.expired`), so that the
    sweep reports each expired payment once."""


QUOTE_RATE_LENGTH_MAX: Final = 64
"""A rate's fixed-point text: 18 significant digits within 10**±18 fit."""


class Quote(SQLModel, table=True):
    """A priced offer to pay `receiver` (an incoming payment; of this ASE when
    `incoming_payment_id` names its row, else at another ASE) from a wallet
    address: the debit and the promised receive amount, each with its asset, the fees and
    the rate that made them (`opase.pricing.quoting`). Immutable once made; `used_at` is
    set when an outgoing payment takes it, which a quote allows once."""

    __tablename__ = "quotes"
    __table_args__ = (
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
        sa.Index(
            "ix_quotes_wallet_address_id_created_at_id", "wallet_address_id", "created_at", "id"
        ),
    )

    id: uuid.UUID = _id_field()
    wallet_address_id: uuid.UUID = Field(
        sa_type=sa.Uuid,
        nullable=False,
        sa_column_args=[
            sa.ForeignKey(
                "wallet_addresses.id", name="fk_quotes_wallet_address_id_wallet_addresses"
            )
        ],
    )
    receiver: str = Field(sa_type=sa.String(URL_LENGTH_MAX), nullable=False)
    """The incoming payment's URL, as the client named it."""
    incoming_payment_id: uuid.UUID | None = Field(
        default=None,
        sa_type=sa.Uuid,
        nullable=True,
        sa_column_args=[
            sa.ForeignKey(
                "incoming_payments.id", name="fk_quotes_incoming_payment_id_incoming_payments"
            )
        ],
    )
    client_wallet_address: str | None = Field(
        default=None, sa_type=sa.String(CLIENT_WALLET_ADDRESS_LENGTH_MAX), nullable=True
    )
    client_key_thumbprint: str | None = Field(
        default=None, sa_type=sa.String(JWK_THUMBPRINT_LENGTH), nullable=True
    )
    debit_amount_minor: int = Field(sa_type=sa.BigInteger, nullable=False)
    debit_asset_code: str = Field(sa_type=sa.String(ASSET_CODE_LENGTH_MAX), nullable=False)
    debit_asset_scale: int = Field(sa_type=sa.SmallInteger, nullable=False)
    receive_amount_minor: int = Field(sa_type=sa.BigInteger, nullable=False)
    receive_asset_code: str = Field(sa_type=sa.String(ASSET_CODE_LENGTH_MAX), nullable=False)
    receive_asset_scale: int = Field(sa_type=sa.SmallInteger, nullable=False)
    sending_fee_minor: int = Field(sa_type=sa.BigInteger, nullable=False)
    """In the debit asset."""
    receiving_fee_minor: int = Field(sa_type=sa.BigInteger, nullable=False)
    """In the receive asset, with a fixed-receive quote's rounding dust."""
    rate: str = Field(sa_type=sa.String(QUOTE_RATE_LENGTH_MAX), nullable=False)
    """Receive-asset units per debit-asset unit, as exact decimal text."""
    expires_at: datetime = Field(sa_type=UtcDateTime, nullable=False)
    used_at: datetime | None = Field(default=None, sa_type=UtcDateTime, nullable=True)
    created_at: datetime = _created_at_field()


OUTGOING_PAYMENT_STATES: Final = ("sending", "completed", "failed")
"""sending (funds reserved on the ledger, not yet moved) -> completed | failed (terminal)."""
OUTGOING_PAYMENT_FAILURE_LENGTH_MAX: Final = 255


class OutgoingPayment(SQLModel, table=True):
    """A payment from a wallet address of this ASE, made under an outgoing-payment grant at
    the price of one quote (which it uses up: `quote_id` is unique). The amounts and the
    receiver are the quote's; `quote_shown` says whether the client named the quote (the
    spec's `quoteId`) or gave `incomingPayment` + `debitAmount`, priced by a quote made here.

    While `sending`, `ledger_reservation_id` holds the debit on the ledger (a pending
    transfer) and the grant's spent sums count it (`spending_interval_start` names their
    interval, for giving it back on failure); the worker takes the payment up again at
    `next_attempt_at`, so a payment whose process died is finished by another."""

    __tablename__ = "outgoing_payments"
    __table_args__ = (
        sa.CheckConstraint(
            "(client_wallet_address IS NULL) <> (client_key_thumbprint IS NULL)",
            name="ck_outgoing_payments_one_client_identity",
        ),
        sa.CheckConstraint(
            _one_of("state", OUTGOING_PAYMENT_STATES), name="ck_outgoing_payments_state"
        ),
        sa.CheckConstraint(
            "(state = 'failed') = (failure_reason IS NOT NULL)",
            name="ck_outgoing_payments_failure_reason",
        ),
        sa.CheckConstraint(
            "sent_amount_minor >= 0", name="ck_outgoing_payments_sent_amount_nonnegative"
        ),
        sa.UniqueConstraint("quote_id", name="uq_outgoing_payments_quote_id"),
        sa.Index(
            "ix_outgoing_payments_wallet_address_id_created_at_id",
            "wallet_address_id",
            "created_at",
            "id",
        ),
        *_own_list_indexes("outgoing_payments"),
        sa.Index("ix_outgoing_payments_state_next_attempt_at", "state", "next_attempt_at"),
    )

    id: uuid.UUID = _id_field()
    wallet_address_id: uuid.UUID = Field(
        sa_type=sa.Uuid,
        nullable=False,
        sa_column_args=[
            sa.ForeignKey(
                "wallet_addresses.id",
                name="fk_outgoing_payments_wallet_address_id_wallet_addresses",
            )
        ],
    )
    quote_id: uuid.UUID = Field(
        sa_type=sa.Uuid,
        nullable=False,
        sa_column_args=[sa.ForeignKey("quotes.id", name="fk_outgoing_payments_quote_id_quotes")],
    )
    quote_shown: bool = Field(sa_type=sa.Boolean, nullable=False)
    grant_id: uuid.UUID = Field(sa_type=sa.Uuid, nullable=False)
    """The grant whose limits the payment counts against (no foreign key: the authorization
    server's tables may live apart from the resource server's)."""
    client_wallet_address: str | None = Field(
        default=None, sa_type=sa.String(CLIENT_WALLET_ADDRESS_LENGTH_MAX), nullable=True
    )
    client_key_thumbprint: str | None = Field(
        default=None, sa_type=sa.String(JWK_THUMBPRINT_LENGTH), nullable=True
    )
    state: str = Field(default="sending", sa_type=sa.String(16), nullable=False)
    failure_reason: str | None = Field(
        default=None, sa_type=sa.String(OUTGOING_PAYMENT_FAILURE_LENGTH_MAX), nullable=True
    )
    sent_amount_minor: int = Field(default=0, sa_type=sa.BigInteger, nullable=False)
    """In the debit asset: what left the sender's side for the receiver (the debit less the
    sending fee) once completed; 0 before."""
    metadata_: dict[str, Any] | None = Field(
        default=None,
        sa_type=sa.JSON(none_as_null=True),
        nullable=True,
        sa_column_kwargs={"name": "metadata"},
    )
    ledger_reservation_id: uuid.UUID = Field(sa_type=sa.Uuid, nullable=False)
    spending_interval_start: datetime | None = Field(
        default=None, sa_type=UtcDateTime, nullable=True
    )
    attempts: int = Field(default=0, sa_type=sa.Integer, nullable=False)
    next_attempt_at: datetime = Field(sa_type=UtcDateTime, nullable=False)
    finished_at: datetime | None = Field(default=None, sa_type=UtcDateTime, nullable=True)
    created_at: datetime = _created_at_field()
    updated_at: datetime = Field(default_factory=utc_now, sa_type=UtcDateTime, nullable=False)


WEBHOOK_EVENT_STATUSES: Final = ("pending", "delivered", "dead")
"""pending (to send at `next_attempt_at`) -> delivered | dead (out of tries; re-drivable)."""
WEBHOOK_EVENT_TYPE_LENGTH_MAX: Final = 64
WEBHOOK_EVENT_ERROR_LENGTH_MAX: Final = 500


class WebhookEvent(SQLModel, table=True):
    """The outbox: an event for the ASE's webhook endpoint, written in the same transaction
    as the change it reports, so no change goes unreported and no report goes out for a
    change that rolled back. Each event is sent on its own (a failing one never holds up
    newer ones); `id` is the idempotency key the receiver sees."""

    __tablename__ = "webhook_events"
    __table_args__ = (
        sa.CheckConstraint(
            _one_of("status", WEBHOOK_EVENT_STATUSES), name="ck_webhook_events_status"
        ),
        sa.CheckConstraint("attempts >= 0", name="ck_webhook_events_attempts_nonnegative"),
        sa.Index("ix_webhook_events_status_next_attempt_at", "status", "next_attempt_at"),
        sa.Index("ix_webhook_events_created_at_id", "created_at", "id"),
    )

    id: uuid.UUID = _id_field()
    type: str = Field(sa_type=sa.String(WEBHOOK_EVENT_TYPE_LENGTH_MAX), nullable=False)
    data: dict[str, Any] = Field(sa_type=sa.JSON, nullable=False)
    status: str = Field(default="pending", sa_type=sa.String(16), nullable=False)
    attempts: int = Field(default=0, sa_type=sa.Integer, nullable=False)
    next_attempt_at: datetime = Field(default_factory=utc_now, sa_type=UtcDateTime, nullable=False)
    last_error: str | None = Field(
        default=None, sa_type=sa.String(WEBHOOK_EVENT_ERROR_LENGTH_MAX), nullable=True
    )
    delivered_at: datetime | None = Field(default=None, sa_type=UtcDateTime, nullable=True)
    created_at: datetime = _created_at_field()
