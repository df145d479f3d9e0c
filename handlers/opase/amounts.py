"""Amounts: integer minor units inside, uint64 strings on the wire, their asset scale applied
exactly when people read them."""

from __future__ import annotations

from typing import Any


def wire_amount(value_minor: int, asset_code: str, asset_scale: int) -> dict[str, Any]:
    """The Open Payments `amount` object."""
    assert value_minor >= 0, value_minor
    return {"value": str(value_minor), "assetCode": asset_code, "assetScale": asset_scale}


def format_amount(value: str | int, asset_code: str, asset_scale: int) -> str:
    """`USD 25.00` for value 2500 at scale 2: the asset scale applied exactly."""
    if isinstance(value, str):
        if not (value.isascii() and value.isdigit()):
            raise ValueError(f"an amount is a string of digits, not {value!r}")
        value_minor = int(value)
    else:
        value_minor = value
    if value_minor < 0 or asset_scale < 0:
        raise ValueError(f"amount {value_minor} at scale {asset_scale} is negative")
    whole, fraction = divmod(value_minor, 10**asset_scale)
    digits = f"{whole}.{fraction:0{asset_scale}d}" if asset_scale else str(whole)
    return f"{asset_code} {digits}"
