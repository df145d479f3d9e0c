"""Every setting of one opase instance: public URLs, storage, limits, secrets.

Values come from, highest priority first: keyword arguments, `OPASE_*` environment variables,
the TOML file named by `OPASE_CONFIG` (or passed as `config_file`), then the defaults below.
Durations end in `_s`, sizes in `_bytes`, counts in `_count`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

DEFAULT_PUBLIC_URL = "http://127.0.0.1:4000"


def check_base_url(url: str) -> str:
    """A public base URL: http(s), a host, no query, fragment or user-info."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{url!r} is not an absolute http(s) URL")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError(f"{url!r} must not have a query, fragment or user-info")
    return url.rstrip("/") if parts.path not in ("", "/") else f"{parts.scheme}://{parts.netloc}"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="OPASE_", extra="forbid", frozen=True, validate_default=True
    )

    # Public URLs: what clients see. They make the `id`s of resources and, behind a
    # TLS-terminating proxy, the `@target-uri` a signature covers.
    public_url: str = DEFAULT_PUBLIC_URL
    """Base of wallet addresses: `<public_url>/alice` is a wallet address."""
    auth_server_url: str = ""
    """The grant endpoint clients POST to; default `<public_url>/auth`."""
    resource_server_url: str = ""
    """Base of incoming payments, quotes, outgoing payments; default `<public_url>/op`."""
    wallet_address_html_url: str | None = None
    """Where a browser asking a wallet address for text/html is sent. `%wa` is replaced by
    the wallet address URL, `%ewa` by it URL-encoded, `%wp` by its path, `%ewp` encoded
    (the reference implementation's template words)."""

    # Listener.
    host: str = "127.0.0.1"
    port: int = Field(default=4000, ge=0, le=65535)
    workers: int = Field(default=1, ge=1, le=64)

    # Admin API: its own listener, loopback by default, bearer keys compared in constant time.
    admin_host: str = "127.0.0.1"
    admin_port: int = Field(default=4100, ge=0, le=65535)
    admin_api_keys: list[SecretStr] = Field(default_factory=list)
    """Bearer keys of the admin API; with none set, every admin request is refused."""

    # Storage.
    data_dir: Path = Path(".opase")
    database_url: str = ""
    """`postgresql://...` for PostgreSQL; default: SQLite in `data_dir`."""

    # Limits.
    request_body_bytes_max: int = Field(default=64 * 1024, ge=1024)
    wallet_address_cache_s: int = Field(default=300, ge=0)
    """Cache-Control max-age of wallet address documents and JWKS, and how long this
    process may serve them from memory after a change made by another process."""
    wallet_address_cache_count_max: int = Field(default=10_000, ge=0)

    # Request signatures (RFC 9421) and the client keys they are checked with.
    signature_age_s_max: int = Field(default=60, ge=1, le=3600)
    """How old a signature's `created` may be; older ones are refused, and the replay
    cache remembers each accepted signature for this long (plus the skew)."""
    signature_clock_skew_s: int = Field(default=10, ge=0, le=300)
    """How far a client's clock may run ahead of ours (and behind, on top of the age)."""
    client_keys_cache_s: int = Field(default=60, ge=0)
    """How long a client's fetched JWKS is trusted when its answer has no Cache-Control."""
    client_keys_cache_s_max: int = Field(default=300, ge=0)
    """The most a Cache-Control max-age may extend that: a key revoked by the client's ASE
    stops working here within this long."""
    client_keys_negative_cache_s: int = Field(default=5, ge=0)
    """How long a failed fetch (or an unknown `kid`) is remembered before trying again."""
    client_keys_fetch_timeout_s: float = Field(default=5.0, gt=0, le=60)
    client_keys_bytes_max: int = Field(default=64 * 1024, ge=1024)
    client_keys_allow_loopback_http: bool = False
    """Fetch client keys over plain http from loopback addresses (the sandbox); otherwise
    only https."""

    # The GNAP authorization server.
    access_token_lifetime_s: int = Field(default=600, ge=1, le=366 * 24 * 3600)
    """`expires_in` of every access token: the resource server refuses it afterwards."""
    request_cache_s: float = Field(default=2.0, ge=0, le=60)
    """How long a process keeps what it read for a signed request: an access token (its
    grant, client and access) and a wallet address of this ASE a request names. A token
    revoked or rotated, or a wallet address deactivated, in another process still works
    here for at most this long; in the same process, not at all. 0: read every time."""
    request_cache_count_max: int = Field(default=10_000, ge=0)
    grant_wait_s: int = Field(default=5, ge=0, le=3600)
    """`continue.wait` of an interactive grant without a finish URI: the client polls no
    sooner (earlier is too_fast). A client with a finish redirect waits for nothing."""
    interaction_lifetime_s: int = Field(default=600, ge=10, le=24 * 3600)
    """How long the owner has to start and finish an interaction."""
    incoming_payment_interaction: bool = False
    """Require the owner's consent for incoming-payment grants (never for `list-all`, which
    `list_all_interaction` decides)."""
    quote_interaction: bool = False
    list_all_interaction: bool = True
    """Require consent for `list-all`, which reveals every client's payments."""
    finish_hash_encoding: Literal["base64", "base64url"] = "base64"
    """The interaction finish hash: standard base64 as the deployed clients verify it
    (`@interledger/open-payments`), or RFC 9635's base64url without padding."""
    idp_consent_url: str | None = None
    """The ASE's own identity provider: where the owner is sent to log in and decide
    (`?interactId=&nonce=&clientUri=` appended). Unset: the built-in consent pages."""
    idp_secret: SecretStr | None = None
    """The shared secret the ASE's identity provider sends as `x-idp-secret` to the
    identity provider API (specs/idp.yaml). Unset: that API refuses every call."""
    introspection_url: str | None = None
    """Where the resource server introspects tokens when the authorization server runs in
    other processes (`opase serve --role resource`); unset: in process."""
    introspection_host: str = "127.0.0.1"
    introspection_port: int = Field(default=4200, ge=1, le=65535)
    """The introspection listener of `opase serve --role auth` (never public)."""
    introspection_api_key: SecretStr | None = None
    """When set, the introspection listener wants `Authorization: Bearer <key>` and the
    resource server sends it; unset, the listener's address is its only protection."""

    # Exchange rates: the static table (admin API), or a provider when this is set.
    exchange_rates_url: str | None = None
    """A provider answering `GET <url>?base=USD` with `{"base": "USD", "rates": {"EUR":
    "0.92", ...}}` (decimal strings or JSON numbers); when set, payments use its rates and
    the static table is not consulted. Unset: the static table set through the admin API."""
    exchange_rates_cache_s: int = Field(default=60, ge=0)
    """How long this process reuses a provider's answer for one base; 0 fetches every time."""

    # Browser clients read wallet addresses cross-origin.
    cors_allow_origins: list[str] = Field(default_factory=lambda: ["*"])

    # Development aid: check every response against the specs (slow, see README).
    validate_responses: bool = False

    # The resource server.
    incoming_payment_expiry_s_max: int = Field(default=30 * 24 * 3600, ge=1)
    """The latest `expiresAt` of an incoming payment, from its creation, and the default when
    the client names none (Rafiki's INCOMING_PAYMENT_EXPIRY_MAX: 30 days)."""
    ilp_address: str = Field(
        default="test.opase",
        pattern=r"^(g|private|example|peer|self|test[1-3]?|local)([.][a-zA-Z0-9_~-]+)+$",
    )
    """This ASE's ILP address; each incoming payment receives at a sub-address of it."""
    quote_lifespan_s: int = Field(default=5 * 60, ge=1, le=24 * 3600)
    """How long a quote's price holds (its `expiresAt`, unless its incoming payment expires
    sooner): rates move, so a quote is short-lived."""
    outgoing_payment_lease_s: int = Field(default=30, ge=1, le=3600)
    """How long a process that took up an outgoing payment may take to settle it before the
    worker of any process takes it up again (after a crash: the wait before it resumes)."""

    # Webhooks: events for the ASE's endpoint (admin API `PUT /webhook`), from the outbox.
    webhook_attempts_max: int = Field(default=10, ge=1, le=100)
    """Sends of one event before it is dead-lettered (listed and re-driven through the
    admin API); a failed send is retried after a backoff."""
    webhook_timeout_s: float = Field(default=2.0, gt=0, le=60)
    """The most one send may take, connecting included; longer is a failure."""
    webhook_backoff_s: float = Field(default=10.0, gt=0, le=3600)
    """The wait after a failed send: this times the sends so far, at most six times this
    (Rafiki's schedule: 10, 20, ... 60 s)."""
    webhook_poll_s: float = Field(default=1.0, gt=0, le=60)
    """How long the delivery worker sleeps when nothing is due."""
    webhook_batch_count_max: int = Field(default=20, ge=1, le=100)
    """Events one delivery pass claims and sends at once."""
    liquidity_low_threshold_minor: int | None = Field(default=None, ge=1)
    """A wallet address whose available balance falls below this many minor units (of its
    own asset) is reported as `wallet_address.liquidity_low`; unset: never."""

    @field_validator("public_url")
    @classmethod
    def _public_url_is_base(cls, value: str) -> str:
        return check_base_url(value)

    @field_validator("exchange_rates_url")
    @classmethod
    def _exchange_rates_url_is_base(cls, value: str | None) -> str | None:
        # `?base=` is appended, so the URL has no query of its own.
        return None if value is None else check_base_url(value)

    @model_validator(mode="after")
    def _derive_server_urls(self) -> Settings:
        # frozen model: set derived defaults through object.__setattr__ once, at construction.
        if not self.auth_server_url:
            object.__setattr__(self, "auth_server_url", f"{self.public_url}/auth")
        if not self.resource_server_url:
            object.__setattr__(self, "resource_server_url", f"{self.public_url}/op")
        object.__setattr__(self, "auth_server_url", check_base_url(self.auth_server_url))
        object.__setattr__(self, "resource_server_url", check_base_url(self.resource_server_url))
        return self

    @model_validator(mode="after")
    def _one_process_on_sqlite(self) -> Settings:
        # SQLite's replay cache lives in its process: a second worker would accept a
        # signature the first already accepted.
        if self.workers > 1 and not self.is_postgres:
            raise ValueError(
                "workers > 1 needs PostgreSQL (OPASE_DATABASE_URL): on SQLite one process "
                "serves, because its replay cache lives in that process"
            )
        return self

    @property
    def database_url_resolved(self) -> str:
        """The SQLAlchemy async URL of the database."""
        url = self.database_url
        if not url:
            return f"sqlite+aiosqlite:///{(self.data_dir / 'opase.db').resolve()}"
        if url.startswith(("postgresql://", "postgres://")):
            return "postgresql+asyncpg://" + url.split("://", 1)[1]
        if url.startswith("sqlite:///"):
            return "sqlite+aiosqlite:///" + url.removeprefix("sqlite:///")
        return url

    @property
    def reserved_wallet_address_paths(self) -> tuple[str, ...]:
        """Paths under the public URL where the authorization or resource server answers
        (`/auth`, `/op` by default): a wallet address there would never be reached."""
        public = urlsplit(self.public_url)
        base_path = public.path.rstrip("/")
        reserved = []
        for url in (self.auth_server_url, self.resource_server_url):
            parts = urlsplit(url)
            if parts.netloc == public.netloc and parts.path.startswith(base_path + "/"):
                reserved.append(parts.path[len(base_path) :].rstrip("/"))
        return tuple(reserved)

    @property
    def admin_url(self) -> str:
        host = f"[{self.admin_host}]" if ":" in self.admin_host else self.admin_host
        return f"http://{host}:{self.admin_port}"

    @property
    def is_postgres(self) -> bool:
        return self.database_url_resolved.startswith("postgresql")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = os.environ.get("OPASE_CONFIG")
        if config_file:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(config_file)))
        return tuple(sources)


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Settings from the environment, an optional TOML file and explicit overrides."""
    if config_file is not None:
        # Through the environment so that uvicorn's worker processes load the same file.
        if not config_file.is_file():
            raise FileNotFoundError(f"settings file {config_file} does not exist")
        os.environ["OPASE_CONFIG"] = str(config_file)
    return Settings(**overrides)
