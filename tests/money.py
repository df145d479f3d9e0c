"""Amounts as Open Payments writes them: `{"value": "<minor units>", "assetCode": ...,
"assetScale": ...}`, in the assets of the seeded ASE (`tests.world`)."""

from __future__ import annotations

from typing import Any


def amount(value_minor: int | str, code: str, scale: int) -> dict[str, Any]:
    return {"value": str(value_minor), "assetCode": code, "assetScale": scale}


def usd(value_minor: int | str) -> dict[str, Any]:
    """USD at scale 2: Alice's, Carol's and Dave's asset."""
    return amount(value_minor, "USD", 2)


def eur(value_minor: int | str) -> dict[str, Any]:
    """EUR at scale 3: Bob's asset."""
    return amount(value_minor, "EUR", 3)
