"""Wallet addresses, assets, owners and keys on both databases."""

from __future__ import annotations

import uuid

import pytest
from argon2 import PasswordHasher
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from opase.ledger import balance_minor
from opase.storage.tables import LedgerAccount, WalletAddress, WalletAddressKey
from opase.wallets.directory import (
    WalletAddressRecord,
    add_key,
    create_asset,
    create_owner,
    create_wallet_address,
    deactivate_wallet_address,
    find_active_wallet_address,
    list_active_keys,
    revoke_key,
)

# Ed25519 public keys, base64url: RFC 8037 Appendix A.2, and 32 bytes of 0x01.
KEY_X = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
OTHER_KEY_X = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE"


async def _count(session: AsyncSession, table: type[object]) -> int:
    return (await session.execute(select(func.count()).select_from(table))).scalar_one()


async def test_finds_active_wallet_address_with_its_asset(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as session:
        eur = await create_asset(session, "EUR", 3)
        bob = await create_wallet_address(session, "/accounts/bob", eur.id, "Bob")
        await session.commit()
    async with sessions() as session:
        found = await find_active_wallet_address(session, "/accounts/bob")
        assert found == WalletAddressRecord(
            id=bob.id, path="/accounts/bob", public_name="Bob", asset_code="EUR", asset_scale=3
        )
        # Exact match only: no case folding, no trailing-slash or prefix leniency.
        for near_miss in ("/accounts/Bob", "/accounts/bob/", "/accounts", "/bob"):
            assert await find_active_wallet_address(session, near_miss) is None


async def test_inactive_wallet_address_is_not_found(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as session:
        usd = await create_asset(session, "USD", 2)
        carol = await create_wallet_address(session, "/carol", usd.id, None)
        await session.commit()
        assert await find_active_wallet_address(session, "/carol") is not None
        created = carol.updated_at
        await deactivate_wallet_address(session, carol.id)
        await deactivate_wallet_address(session, carol.id)  # idempotent
        await session.commit()
    async with sessions() as session:
        assert await find_active_wallet_address(session, "/carol") is None
        stored = await session.get(WalletAddress, carol.id)
        assert stored is not None and stored.status == "inactive"
        assert stored.updated_at >= created


async def test_wallet_address_gets_an_empty_ledger_account(session: AsyncSession) -> None:
    usd = await create_asset(session, "USD", 2)
    alice = await create_wallet_address(session, "/alice", usd.id, "Alice")
    account = (
        await session.execute(
            select(LedgerAccount).where(col(LedgerAccount.wallet_address_id) == alice.id)
        )
    ).scalar_one()
    assert (account.kind, account.asset_id) == ("wallet", usd.id)
    assert await balance_minor(session, alice.id) == 0


@pytest.mark.parametrize(
    ("path", "complaint"),
    [
        ("alice", "must start with '/'"),
        ("", "must start with '/'"),
        ("/", "empty segment"),
        ("//alice", "empty segment"),
        ("/accounts//bob", "empty segment"),
        ("/alice/", "trailing"),
        ("/alice/jwks.json", "must not end with"),
        ("/jwks.json", "must not end with"),
        ("/alice/did.json", "must not end with"),
        ("/accounts/../alice", "'..'"),
        ("/./alice", "'.'"),
        ("/al ice", "may only have"),
        ("/al%20ice", "may only have"),
        ("/alice?x=1", "may only have"),
        ("/alice#x", "may only have"),
        ("/älice", "may only have"),
        ("/" + "a" * 255, "at most 255"),
    ],
)
async def test_create_wallet_address_rejects_bad_paths(
    session: AsyncSession, path: str, complaint: str
) -> None:
    usd = await create_asset(session, "USD", 2)
    with pytest.raises(ValueError, match=complaint):
        await create_wallet_address(session, path, usd.id, None)
    assert await _count(session, WalletAddress) == 0
    assert await _count(session, LedgerAccount) == 0


@pytest.mark.parametrize(
    "path", ["/alice", "/accounts/bob", "/a-b_c.d~e/F9", "/" + "a" * 254, "/jwks.json.bak"]
)
async def test_create_wallet_address_accepts_good_paths(session: AsyncSession, path: str) -> None:
    usd = await create_asset(session, "USD", 2)
    created = await create_wallet_address(session, path, usd.id, None)
    found = await find_active_wallet_address(session, path)
    assert found is not None and found.id == created.id


async def test_create_wallet_address_needs_an_existing_asset(session: AsyncSession) -> None:
    with pytest.raises(LookupError, match="no asset"):
        await create_wallet_address(session, "/alice", uuid.uuid4(), None)


async def test_duplicate_path_is_refused(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions() as session:
        usd = await create_asset(session, "USD", 2)
        await create_wallet_address(session, "/alice", usd.id, None)
        await session.commit()
    async with sessions() as session:
        with pytest.raises(IntegrityError):
            await create_wallet_address(session, "/alice", usd.id, "Other")


async def test_duplicate_asset_is_refused(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions() as session:
        await create_asset(session, "USD", 2)
        await create_asset(session, "USD", 9)  # another scale is another asset
        await session.commit()
    async with sessions() as session:
        with pytest.raises(IntegrityError):
            await create_asset(session, "USD", 2)


@pytest.mark.parametrize(("code", "scale"), [("US", 2), ("A" * 13, 2), ("USD", -1), ("USD", 256)])
async def test_create_asset_rejects_bad_values(
    session: AsyncSession, code: str, scale: int
) -> None:
    with pytest.raises(ValueError, match="asset"):
        await create_asset(session, code, scale)


async def test_owner_password_is_an_argon2_hash(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions() as session:
        owner = await create_owner(session, "alice", "correct horse")
        await session.commit()
    assert owner.password_hash.startswith("$argon2id$")
    assert "correct horse" not in owner.password_hash
    assert PasswordHasher().verify(owner.password_hash, "correct horse")
    async with sessions() as session:
        with pytest.raises(IntegrityError):
            await create_owner(session, "alice", "another")


async def test_wallet_address_with_owner(session: AsyncSession) -> None:
    usd = await create_asset(session, "USD", 2)
    owner = await create_owner(session, "alice", "pw")
    alice = await create_wallet_address(session, "/alice", usd.id, None, owner_id=owner.id)
    assert alice.owner_id == owner.id
    with pytest.raises(LookupError, match="no owner"):
        await create_wallet_address(session, "/bob", usd.id, None, owner_id=uuid.uuid4())


async def test_keys_lists_active_not_revoked(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions() as session:
        usd = await create_asset(session, "USD", 2)
        alice = await create_wallet_address(session, "/alice", usd.id, None)
        bob = await create_wallet_address(session, "/bob", usd.id, None)
        await add_key(session, alice.id, "key-1", KEY_X)
        await add_key(session, alice.id, "key-2", OTHER_KEY_X)
        await add_key(session, bob.id, "key-1", KEY_X)  # kids are unique per wallet address
        await session.commit()
    async with sessions() as session:
        await revoke_key(session, alice.id, "key-1")
        await revoke_key(session, alice.id, "key-1")  # idempotent
        await session.commit()
    async with sessions() as session:
        assert await list_active_keys(session, alice.id) == [
            {
                "kid": "key-2",
                "alg": "EdDSA",
                "kty": "OKP",
                "crv": "Ed25519",
                "x": OTHER_KEY_X,
                "use": "sig",
            }
        ]
        assert [key["kid"] for key in await list_active_keys(session, bob.id)] == ["key-1"]
        revoked = (
            await session.execute(
                select(WalletAddressKey).where(col(WalletAddressKey.status) == "revoked")
            )
        ).scalar_one()
        assert revoked.revoked_at is not None
        with pytest.raises(LookupError):
            await revoke_key(session, alice.id, "no-such-key")


async def test_duplicate_key_id_is_refused(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions() as session:
        usd = await create_asset(session, "USD", 2)
        alice = await create_wallet_address(session, "/alice", usd.id, None)
        await add_key(session, alice.id, "key-1", KEY_X)
        await session.commit()
    async with sessions() as session:
        with pytest.raises(IntegrityError):
            await add_key(session, alice.id, "key-1", OTHER_KEY_X)


@pytest.mark.parametrize(
    ("key_id", "x", "complaint"),
    [
        ("", KEY_X, "key id"),
        ("k", KEY_X + "=", "base64url"),
        ("k", KEY_X.replace("_", "/"), "base64url"),
        ("k", KEY_X[:-4], "32 bytes"),
        ("k", KEY_X + "AAAA", "32 bytes"),
    ],
)
async def test_add_key_rejects_bad_keys(
    session: AsyncSession, key_id: str, x: str, complaint: str
) -> None:
    usd = await create_asset(session, "USD", 2)
    alice = await create_wallet_address(session, "/alice", usd.id, None)
    with pytest.raises(ValueError, match=complaint):
        await add_key(session, alice.id, key_id, x)
    assert await list_active_keys(session, alice.id) == []


async def test_add_key_needs_an_existing_wallet_address(session: AsyncSession) -> None:
    with pytest.raises(LookupError):
        await add_key(session, uuid.uuid4(), "key-1", KEY_X)


async def test_foreign_keys_are_enforced(session: AsyncSession) -> None:
    # Bypasses the service's checks: the database itself refuses (SQLite: PRAGMA foreign_keys).
    session.add(WalletAddress(path="/orphan", asset_id=uuid.uuid4()))
    with pytest.raises(IntegrityError):
        await session.flush()
