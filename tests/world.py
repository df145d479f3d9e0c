"""The ASE the app tests run (`tests/conftest.py`'s `app`): its public URL, the URLs of its
servers, the wallet addresses `seed` and `add_dave_and_fund_alice` make there, and the
prices `set_prices` sets."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import sqlalchemy as sa
from starlette.applications import Starlette

from opase.ledger import deposit
from opase.pricing import set_fee, set_static_rates
from opase.storage.tables import Asset
from opase.wallets.directory import (
    add_key,
    create_asset,
    create_wallet_address,
    deactivate_wallet_address,
)

PUBLIC_URL = "https://wallet.example"
# An Ed25519 public key (RFC 8037 Appendix A.2), base64url.
KEY_X = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"

AUTH = f"{PUBLIC_URL}/auth"
INCOMING_PAYMENTS = f"{PUBLIC_URL}/op/incoming-payments"
QUOTES = f"{PUBLIC_URL}/op/quotes"
OUTGOING_PAYMENTS = f"{PUBLIC_URL}/op/outgoing-payments"
OUTGOING_PAYMENT_GRANT = f"{PUBLIC_URL}/op/outgoing-payment-grant"

ALICE = f"{PUBLIC_URL}/alice"
"""USD (scale 2), named "Alice", one key (KEY_X)."""
BOB = f"{PUBLIC_URL}/accounts/bob"
"""EUR (scale 3), no public name."""
CAROL = f"{PUBLIC_URL}/carol"
"""Deactivated."""
DAVE = f"{PUBLIC_URL}/dave"
"""USD, made by `add_dave_and_fund_alice` (the `payer` fixture)."""
ALICE_FUNDS_MINOR = 50_000
"""What `add_dave_and_fund_alice` deposits for Alice."""

AUTHENTICATED = 404
"""A signed GET of an unknown outgoing payment once its token is honoured (401 when not):
what the tests probe the resource server with."""


@dataclass(frozen=True)
class Seeded:
    alice_id: uuid.UUID
    bob_id: uuid.UUID


async def seed(app: Starlette) -> Seeded:
    """/alice (USD, named, one key), /accounts/bob (EUR 3, unnamed), /carol (deactivated)."""
    async with app.state.services.sessions() as session:
        usd = await create_asset(session, "USD", 2)
        eur = await create_asset(session, "EUR", 3)
        alice = await create_wallet_address(session, "/alice", usd.id, "Alice")
        bob = await create_wallet_address(session, "/accounts/bob", eur.id, None)
        carol = await create_wallet_address(session, "/carol", usd.id, "Carol")
        await add_key(session, alice.id, "key-1", KEY_X)
        await deactivate_wallet_address(session, carol.id)
        await session.commit()
    return Seeded(alice.id, bob.id)


async def add_dave_and_fund_alice(app: Starlette, seeded: Seeded) -> None:
    """/dave in USD beside the seeded wallet addresses, and ALICE_FUNDS_MINOR for Alice."""
    async with app.state.services.sessions() as session:
        usd_id = (await session.execute(sa.select(Asset.id).where(Asset.code == "USD"))).scalar()
        assert usd_id is not None
        await create_wallet_address(session, "/dave", usd_id, "Dave")
        await deposit(session, seeded.alice_id, ALICE_FUNDS_MINOR, "fund-alice")
        await session.commit()


async def set_prices(app: Starlette) -> None:
    """1 USD = 0.9137 EUR; USD sending fee 25 + 50 bp, EUR receiving fee 100 + 30 bp."""
    async with app.state.services.sessions() as session:
        assets = {
            asset.code: asset.id for asset in (await session.execute(sa.select(Asset))).scalars()
        }
        await set_static_rates(session, "USD", {"EUR": "0.9137"})
        await set_fee(session, assets["USD"], "sending", fixed_minor=25, basis_points=50)
        await set_fee(session, assets["EUR"], "receiving", fixed_minor=100, basis_points=30)
        await session.commit()
