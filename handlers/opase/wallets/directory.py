"""Wallet addresses, assets, owners and keys: look-ups for the wallet address server and
the administrative operations that create them.

Functions flush (so constraint violations surface at the call) but never commit: the
caller owns the transaction. Missing rows raise LookupError, refused arguments ValueError;
a duplicate of a unique value raises sqlalchemy's IntegrityError from the database.
"""

from __future__ import annotations

import asyncio
import binascii
import re
import uuid
from dataclasses import dataclass
from typing import Final

import sqlalchemy as sa
from argon2 import PasswordHasher
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from opase import base64url
from opase.ledger import create_wallet_account
from opase.storage.tables import (
    ASSET_CODE_LENGTH_MAX,
    ASSET_CODE_LENGTH_MIN,
    ASSET_SCALE_MAX,
    WALLET_ADDRESS_PATH_LENGTH_MAX,
    Asset,
    Owner,
    WalletAddress,
    WalletAddressKey,
    utc_now,
)

_SEGMENT: Final = re.compile(r"[A-Za-z0-9._~-]+")
"""RFC 3986 unreserved characters: a path made of them needs no percent-encoding."""
_RESERVED_SUFFIXES: Final = ("/jwks.json", "/did.json")
"""A wallet address's own documents live under these suffixes of its path."""
ED25519_PUBLIC_KEY_BYTES: Final = 32
KEY_ID_LENGTH_MAX: Final = 255
USERNAME_LENGTH_MAX: Final = 64
PUBLIC_NAME_LENGTH_MAX: Final = 255
IDP_PATH: Final = "/idp"
"""Where the built-in identity provider's pages answer (`opase.idp.pages`), under the public URL."""

_password_hasher: Final = PasswordHasher()


@dataclass(frozen=True, slots=True)
class WalletAddressRecord:
    """What the wallet address document shows."""

    id: uuid.UUID
    path: str
    public_name: str | None
    asset_code: str
    asset_scale: int


def check_wallet_address_path(path: str) -> None:
    """Raise ValueError unless `path` can be a wallet address path such as `/accounts/bob`."""
    if not path.startswith("/"):
        raise ValueError(f"wallet address path {path!r} must start with '/'")
    if len(path) > WALLET_ADDRESS_PATH_LENGTH_MAX:
        raise ValueError(
            f"wallet address path must have at most {WALLET_ADDRESS_PATH_LENGTH_MAX} characters"
        )
    if path.endswith(_RESERVED_SUFFIXES):
        raise ValueError(
            f"wallet address path {path!r} must not end with {' or '.join(_RESERVED_SUFFIXES)}"
        )
    for segment in path[1:].split("/"):
        if not segment:
            raise ValueError(f"wallet address path {path!r} has an empty segment or a trailing '/'")
        # Clients and proxies collapse dot-segments, so such a URL would name another path.
        if segment in (".", ".."):
            raise ValueError(f"wallet address path {path!r} must not have '.' or '..' segments")
        if not _SEGMENT.fullmatch(segment):
            raise ValueError(
                f"wallet address path segment {segment!r} may only have A-Z a-z 0-9 . _ ~ -"
            )


def _check_base64url_ed25519(x: str) -> None:
    # Unpadded base64url (RFC 7515 section 2) of exactly 32 bytes (RFC 8037).
    if "=" in x or not re.fullmatch(r"[A-Za-z0-9_-]*", x):
        raise ValueError("key x must be unpadded base64url")
    try:
        raw = base64url.decode(x)
    except binascii.Error as exc:
        raise ValueError("key x must be unpadded base64url") from exc
    if len(raw) != ED25519_PUBLIC_KEY_BYTES:
        raise ValueError(f"key x must encode {ED25519_PUBLIC_KEY_BYTES} bytes, not {len(raw)}")


async def find_active_wallet_address(
    session: AsyncSession, path: str
) -> WalletAddressRecord | None:
    """The active wallet address at exactly `path`, or None."""
    query = (
        sa.select(
            col(WalletAddress.id),
            col(WalletAddress.path),
            col(WalletAddress.public_name),
            col(Asset.code),
            col(Asset.scale),
        )
        .join(Asset, col(Asset.id) == col(WalletAddress.asset_id))
        .where(col(WalletAddress.path) == path, col(WalletAddress.status) == "active")
    )
    row = (await session.execute(query)).one_or_none()
    if row is None:
        return None
    return WalletAddressRecord(
        id=row[0], path=row[1], public_name=row[2], asset_code=row[3], asset_scale=row[4]
    )


async def find_wallet_address_by_url(
    session: AsyncSession, public_url: str, url: str
) -> WalletAddressRecord | None:
    """The active wallet address of this ASE (served under `public_url`) at `url`; None for
    any other URL, another ASE's included."""
    if not url.startswith(public_url + "/"):
        return None
    return await find_active_wallet_address(session, url[len(public_url) :])


async def list_active_keys(
    session: AsyncSession, wallet_address_id: uuid.UUID
) -> list[dict[str, str]]:
    """The wallet address's active keys as Ed25519 JWKs, oldest first."""
    query = (
        select(WalletAddressKey.key_id, WalletAddressKey.x)
        .where(
            col(WalletAddressKey.wallet_address_id) == wallet_address_id,
            col(WalletAddressKey.status) == "active",
        )
        .order_by(col(WalletAddressKey.created_at), col(WalletAddressKey.key_id))
    )
    return [
        {"kid": key_id, "alg": "EdDSA", "kty": "OKP", "crv": "Ed25519", "x": x, "use": "sig"}
        for key_id, x in (await session.execute(query)).all()
    ]


async def create_asset(session: AsyncSession, code: str, scale: int) -> Asset:
    if not ASSET_CODE_LENGTH_MIN <= len(code) <= ASSET_CODE_LENGTH_MAX:
        raise ValueError(
            f"asset code must have {ASSET_CODE_LENGTH_MIN}..{ASSET_CODE_LENGTH_MAX} characters"
        )
    if isinstance(scale, bool) or not isinstance(scale, int) or not 0 <= scale <= ASSET_SCALE_MAX:
        raise ValueError(f"asset scale must be an int in 0..{ASSET_SCALE_MAX}, not {scale!r}")
    asset = Asset(code=code, scale=scale)
    session.add(asset)
    await session.flush()
    return asset


async def create_owner(session: AsyncSession, username: str, password: str) -> Owner:
    if not 0 < len(username) <= USERNAME_LENGTH_MAX or username != username.strip():
        raise ValueError(
            f"username must have 1..{USERNAME_LENGTH_MAX} characters, no surrounding spaces"
        )
    if not password:
        raise ValueError("password must not be empty")
    # argon2 is slow on purpose (tens of ms of CPU): keep it off the event loop.
    password_hash = await asyncio.to_thread(_password_hasher.hash, password)
    owner = Owner(username=username, password_hash=password_hash)
    session.add(owner)
    await session.flush()
    return owner


async def create_wallet_address(
    session: AsyncSession,
    path: str,
    asset_id: uuid.UUID,
    public_name: str | None,
    owner_id: uuid.UUID | None = None,
    *,
    reserved_paths: tuple[str, ...] = (),
) -> WalletAddress:
    """An active wallet address at `path` and its ledger account. `reserved_paths` are
    where other servers answer on the same host (`Settings.reserved_wallet_address_paths`);
    IDP_PATH is always reserved."""
    check_wallet_address_path(path)
    for reserved in (*reserved_paths, IDP_PATH):
        if path == reserved or path.startswith(reserved + "/"):
            raise ValueError(
                f"wallet address path {path!r} is under {reserved}, where another server answers"
            )
    if public_name is not None and not 0 < len(public_name) <= PUBLIC_NAME_LENGTH_MAX:
        raise ValueError(f"public name must have 1..{PUBLIC_NAME_LENGTH_MAX} characters or be None")
    if await session.get(Asset, asset_id) is None:
        raise LookupError(f"no asset {asset_id}")
    if owner_id is not None and await session.get(Owner, owner_id) is None:
        raise LookupError(f"no owner {owner_id}")
    wallet_address = WalletAddress(
        path=path, public_name=public_name, asset_id=asset_id, owner_id=owner_id
    )
    session.add(wallet_address)
    await session.flush()
    await create_wallet_account(session, wallet_address.id, asset_id)
    return wallet_address


async def _wallet_address(session: AsyncSession, wallet_address_id: uuid.UUID) -> WalletAddress:
    wallet_address = await session.get(WalletAddress, wallet_address_id)
    if wallet_address is None:
        raise LookupError(f"no wallet address {wallet_address_id}")
    return wallet_address


async def add_key(
    session: AsyncSession, wallet_address_id: uuid.UUID, key_id: str, x: str
) -> WalletAddressKey:
    """An active Ed25519 public key (`x`, base64url) named `key_id` for the wallet address."""
    if not 0 < len(key_id) <= KEY_ID_LENGTH_MAX:
        raise ValueError(f"key id must have 1..{KEY_ID_LENGTH_MAX} characters")
    _check_base64url_ed25519(x)
    await _wallet_address(session, wallet_address_id)
    key = WalletAddressKey(wallet_address_id=wallet_address_id, key_id=key_id, x=x)
    session.add(key)
    await session.flush()
    return key


async def revoke_key(session: AsyncSession, wallet_address_id: uuid.UUID, key_id: str) -> None:
    """Stop publishing the key; revoking a revoked key changes nothing."""
    query = select(WalletAddressKey).where(
        col(WalletAddressKey.wallet_address_id) == wallet_address_id,
        col(WalletAddressKey.key_id) == key_id,
    )
    key = (await session.execute(query)).scalar_one_or_none()
    if key is None:
        raise LookupError(f"wallet address {wallet_address_id} has no key {key_id!r}")
    if key.status == "active":
        key.status = "revoked"
        key.revoked_at = utc_now()
        await session.flush()


async def deactivate_wallet_address(session: AsyncSession, wallet_address_id: uuid.UUID) -> None:
    """The wallet address stops resolving (404); its ledger history stays."""
    wallet_address = await _wallet_address(session, wallet_address_id)
    if wallet_address.status != "inactive":
        wallet_address.status = "inactive"
        wallet_address.updated_at = utc_now()
        await session.flush()


@dataclass(frozen=True, slots=True)
class WalletAddressAdminRecord:
    """What the admin API shows of a wallet address, whatever its status."""

    id: uuid.UUID
    path: str
    public_name: str | None
    asset_id: uuid.UUID
    asset_code: str
    asset_scale: int
    owner_username: str | None
    status: str


async def list_assets(session: AsyncSession) -> list[Asset]:
    query = select(Asset).order_by(col(Asset.code), col(Asset.scale))
    return list((await session.execute(query)).scalars().all())


async def get_wallet_address_admin(
    session: AsyncSession, wallet_address_id: uuid.UUID
) -> WalletAddressAdminRecord:
    query = (
        select(WalletAddress, Asset, Owner)
        .join(Asset, col(Asset.id) == col(WalletAddress.asset_id))
        .outerjoin(Owner, col(Owner.id) == col(WalletAddress.owner_id))
        .where(col(WalletAddress.id) == wallet_address_id)
    )
    row = (await session.execute(query)).one_or_none()
    if row is None:
        raise LookupError(f"no wallet address {wallet_address_id}")
    wallet_address, asset, owner = row
    return WalletAddressAdminRecord(
        id=wallet_address.id,
        path=wallet_address.path,
        public_name=wallet_address.public_name,
        asset_id=asset.id,
        asset_code=asset.code,
        asset_scale=asset.scale,
        owner_username=owner.username if owner is not None else None,
        status=wallet_address.status,
    )


async def update_public_name(
    session: AsyncSession, wallet_address_id: uuid.UUID, public_name: str | None
) -> None:
    if public_name is not None and not 0 < len(public_name) <= PUBLIC_NAME_LENGTH_MAX:
        raise ValueError(f"public name must have 1..{PUBLIC_NAME_LENGTH_MAX} characters or be None")
    wallet_address = await _wallet_address(session, wallet_address_id)
    wallet_address.public_name = public_name
    wallet_address.updated_at = utc_now()
    await session.flush()


async def wallet_address_id_by_path(session: AsyncSession, path: str) -> uuid.UUID:
    """The wallet address at `path`, whatever its status (the back office sees them all)."""
    query = select(WalletAddress.id).where(col(WalletAddress.path) == path)
    found = (await session.execute(query)).scalar_one_or_none()
    if found is None:
        raise LookupError(f"no wallet address at {path}")
    return found


async def asset_by_code(session: AsyncSession, code: str, scale: int) -> Asset:
    query = select(Asset).where(col(Asset.code) == code, col(Asset.scale) == scale)
    asset = (await session.execute(query)).scalar_one_or_none()
    if asset is None:
        raise LookupError(f"no asset {code} with scale {scale}")
    return asset
