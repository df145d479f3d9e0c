"""Prepares opase's database for the benchmark: `python -m tests.bench.seed`.

Run with the server's own environment (`OPASE_DATA_DIR`, `OPASE_PUBLIC_URL`, ...), so it
sees exactly the database the server will: it runs the migrations, then creates one asset,
the wallet address `/alice` and one Ed25519 key for it through opase's service functions,
which flush but never commit (the caller owns the transaction, committed here once).
"""

from __future__ import annotations

import asyncio
import base64

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from opase.settings import Settings, load_settings
from opase.storage import create_engine, session_factory, upgrade_sync
from opase.wallets.service import add_key, create_asset, create_wallet_address
from tests.bench.workloads import WALLET_ADDRESS_PATH

ASSET_CODE = "USD"
ASSET_SCALE = 2
PUBLIC_NAME = "Alice"
KEY_ID = "bench-key-1"


def public_key_x() -> str:
    """A fresh Ed25519 public key as the JWK `x` (unpadded base64url)."""
    raw = Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


async def seed(settings: Settings) -> str:
    engine = create_engine(settings)
    try:
        async with session_factory(engine)() as session:
            asset = await create_asset(session, ASSET_CODE, ASSET_SCALE)
            wallet_address = await create_wallet_address(
                session, WALLET_ADDRESS_PATH, asset.id, PUBLIC_NAME
            )
            await add_key(session, wallet_address.id, KEY_ID, public_key_x())
            await session.commit()
    finally:
        await engine.dispose()
    return f"{settings.public_url}{WALLET_ADDRESS_PATH}"


def main() -> int:
    settings = load_settings()
    upgrade_sync(settings)  # outside any event loop: it runs its own
    print(f"seeded {asyncio.run(seed(settings))} in {settings.database_url_resolved}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
