"""The back office's calls through the admin API that the admin tests start from: an asset, a
wallet address, a deposit, each asserted to succeed."""

from __future__ import annotations

from typing import Any

from tests.client import CheckedClient

SOME_ID = "0b0e6f0e-3f4b-4a57-9d59-3c1d1b6f0a11"
"""An id nothing has."""


async def create_asset(admin: CheckedClient, code: str = "USD") -> str:
    """A new asset at scale 2: its id."""
    created = await admin.post("/assets", json={"code": code, "scale": 2})
    assert created.status_code == 201, created.text
    return created.json()["id"]  # type: ignore[no-any-return]


async def create_wallet(admin: CheckedClient, path: str = "/alice", **extra: Any) -> dict[str, Any]:
    """A new wallet address at `path`, named Alice, in a new USD asset."""
    body = {"path": path, "assetId": await create_asset(admin), "publicName": "Alice", **extra}
    created = await admin.post("/wallet-addresses", json=body)
    assert created.status_code == 201, created.text
    return created.json()  # type: ignore[no-any-return]


async def deposit(admin: CheckedClient, wallet_id: str, amount: int, key: str) -> str:
    """A deposit of `amount` minor units with the idempotency key `key`: its transfer id."""
    response = await admin.post(
        f"/wallet-addresses/{wallet_id}/deposits",
        json={"amount": str(amount)},
        headers={"Idempotency-Key": key},
    )
    assert response.status_code == 201, response.text
    return response.json()["id"]  # type: ignore[no-any-return]
