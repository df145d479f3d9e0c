"""Prepares opase's database for the benchmark: `python -m tests.bench.seed [CREDENTIALS]`.

Run with the server's own environment (`OPASE_DATA_DIR` or `OPASE_DATABASE_URL`,
`OPASE_PUBLIC_URL`, ...), so it sees exactly the database the server will: it runs the
migrations, then, through opase's service functions (which flush but never commit; the
transaction is committed here once):

- the asset USD/2 and the wallet addresses `/alice` (funded, the payer and the owner of the
  incoming payments read and made) and `/bob` (the receiver of outgoing payments);
- a client app `/bench-client` with one Ed25519 key, and a finalized grant to it with one
  access token: incoming payments (create, read, list, complete), quotes (create, read) and
  outgoing payments from `/alice` (create, read, list), without limits;

and writes the client's credentials (its private key, key id and access token) as JSON to
CREDENTIALS, for the load generator's signer (`tests.bench.signer`).
"""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import sys
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from opase.authorization.spending import SpendingLimits, create_spending
from opase.ledger import deposit
from opase.security.access_tokens import token_sha256
from opase.security.client_keys import jwk_thumbprint
from opase.settings import Settings, load_settings
from opase.storage.engine import create_engine, session_factory
from opase.storage.migrate import upgrade_sync
from opase.storage.tables import AccessToken, Grant
from opase.wallets.directory import add_key, create_asset, create_wallet_address
from tests.bench.workloads import CLIENT_PATH, RECEIVER_PATH, WALLET_ADDRESS_PATH

ASSET_CODE = "USD"
ASSET_SCALE = 2
PUBLIC_NAME = "Alice"
KEY_ID = "bench-key-1"
CLIENT_KEY_ID = "bench-client-key"
FUNDS_MINOR = 10**15
"""Alice's balance: no benchmark run of outgoing payments can spend it."""


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def public_key_x(private_key: Ed25519PrivateKey | None = None) -> str:
    """An Ed25519 public key as the JWK `x` (unpadded base64url); a fresh one by default."""
    key = private_key or Ed25519PrivateKey.generate()
    return _b64url(key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))


async def seed(settings: Settings) -> dict[str, str]:
    """Seeds the database; returns the client's credentials."""
    client_key = Ed25519PrivateKey.generate()
    client_x = public_key_x(client_key)
    client_url = settings.public_url + CLIENT_PATH
    alice_url = settings.public_url + WALLET_ADDRESS_PATH
    access_token = secrets.token_urlsafe(32)
    engine = create_engine(settings)
    try:
        async with session_factory(engine)() as session:
            asset = await create_asset(session, ASSET_CODE, ASSET_SCALE)
            alice = await create_wallet_address(session, WALLET_ADDRESS_PATH, asset.id, PUBLIC_NAME)
            await add_key(session, alice.id, KEY_ID, public_key_x())
            await create_wallet_address(session, RECEIVER_PATH, asset.id, "Bob")
            client = await create_wallet_address(session, CLIENT_PATH, asset.id, "Bench Client")
            await add_key(session, client.id, CLIENT_KEY_ID, client_x)
            await deposit(session, alice.id, FUNDS_MINOR, idempotency_key="bench-funds")
            grant = Grant(
                state="finalized",
                finalization_reason="issued",
                access=[
                    {
                        "type": "incoming-payment",
                        "actions": ["create", "read", "list", "complete"],
                    },
                    {"type": "quote", "actions": ["create", "read"]},
                    {
                        "type": "outgoing-payment",
                        "actions": ["create", "read", "list"],
                        "identifier": alice_url,
                    },
                ],
                client_wallet_address=client_url,
                client_key_id=CLIENT_KEY_ID,
                client_key_thumbprint=jwk_thumbprint("Ed25519", "OKP", client_x),
                continue_token_sha256=token_sha256(secrets.token_urlsafe(32)),
            )
            session.add(grant)
            await session.flush()
            # What the authorization server records for an outgoing-payment grant: its
            # limits (none here) and what it has spent.
            await create_spending(session, grant.id, SpendingLimits(None, None, None))
            session.add(AccessToken(grant_id=grant.id, value_sha256=token_sha256(access_token)))
            await session.commit()
    finally:
        await engine.dispose()
    private_raw = client_key.private_bytes(
        Encoding.Raw, PrivateFormat.Raw, encryption_algorithm=NoEncryption()
    )
    return {
        "client_wallet_address": client_url,
        "key_id": CLIENT_KEY_ID,
        "private_key": _b64url(private_raw),
        "access_token": access_token,
        "wallet_address": alice_url,
    }


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    settings = load_settings()
    upgrade_sync(settings)  # outside any event loop: it runs its own
    credentials = asyncio.run(seed(settings))
    if args:
        Path(args[0]).write_text(json.dumps(credentials))
    print(f"seeded {credentials['wallet_address']} in {settings.database_url_resolved}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
