"""Amounts: integer minor units inside, uint64 strings on the wire, their asset scale applied
exactly when people read them. The bounds every layer checks against live here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

UINT64_MAX: Final = 2**64 - 1
"""The largest amount the wire format admits (`value`: a string of a uint64)."""
AMOUNT_MINOR_MAX: Final = 2**63 - 1
"""The largest amount opase holds: the ledger's running sums and every amount column are
BIGINT. A wire amount above it is refused, never wrapped or rounded."""


@dataclass(frozen=True, slots=True)
class Amount:
    """An amount in an asset: `value_minor` minor units at `asset_scale`."""

    value_minor: int
    asset_code: str
    asset_scale: int

    @classmethod
    def from_wire(cls, amount: dict[str, Any]) -> Amount:
        """The Open Payments `amount` object, already checked against its schema (a uint64
        string `value`): exact, no rounding."""
        return cls(int(amount["value"]), amount["assetCode"], amount["assetScale"])

    @property
    def asset(self) -> tuple[str, int]:
        return (self.asset_code, self.asset_scale)

    def wire(self) -> dict[str, Any]:
        return wire_amount(self.value_minor, self.asset_code, self.asset_scale)


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
