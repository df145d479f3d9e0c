"""Fees per asset and side: what the ASE charges on a payment.

A fee is `fixed_minor` plus `basis_points` hundredths of a percent of the amount, in minor
units of the asset. `sending` is charged to the sender, on top of what is sent; `receiving`
to the receiver, out of what arrives. A side without a stored fee charges nothing.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from opase.amounts import AMOUNT_MINOR_MAX
from opase.storage.tables import (
    BASIS_POINTS_MAX,
    FEE_KINDS,
    Asset,
    AssetFee,
    sa_table,
    utc_now,
)
from opase.storage.upsert import upsert

BASIS_POINTS_PER_WHOLE: Final = 10_000
"""10000 basis points make the whole amount."""


@dataclass(frozen=True, slots=True)
class Fee:
    asset_id: uuid.UUID
    kind: str
    """`sending` or `receiving`."""
    fixed_minor: int
    basis_points: int
    updated_at: datetime

    def __post_init__(self) -> None:
        # A fee comes from the table, whose constraints hold these: anything else is a bug.
        assert self.kind in FEE_KINDS, self.kind
        assert 0 <= self.fixed_minor <= AMOUNT_MINOR_MAX, self.fixed_minor
        assert 0 <= self.basis_points <= BASIS_POINTS_MAX, self.basis_points


def ceil_div(numerator: int, denominator: int) -> int:
    """⌈numerator / denominator⌉ in exact integer arithmetic (no float on the way)."""
    assert denominator > 0
    return -(-numerator // denominator)


def fee_minor(fee: Fee, amount_minor: int) -> int:
    """The fee on `amount_minor`: `fixed_minor + ceil(amount_minor * basis_points / 10000)`.

    The proportional part is rounded up to a whole minor unit, whichever side pays: a fee
    never comes out below its stated rate, and the sender sees the whole fee in what they
    are debited (the receiver gets what is left, never a fraction of a unit). Exact integer
    arithmetic: Python ints do not overflow, so the product is exact for every amount.

    The result can exceed what the ledger holds (2**63-1) for amounts near it; whoever adds
    it to an amount (a quote) must refuse a total above `AMOUNT_MINOR_MAX`.
    """
    _check_minor("amount_minor", amount_minor)
    proportional_minor = ceil_div(amount_minor * fee.basis_points, BASIS_POINTS_PER_WHOLE)
    assert 0 <= proportional_minor <= amount_minor  # basis points are at most 100%
    return fee.fixed_minor + proportional_minor


def _check_minor(name: str, value_minor: int) -> None:
    if isinstance(value_minor, bool) or not isinstance(value_minor, int):
        raise TypeError(f"{name} must be an int, not {type(value_minor).__name__}")
    if not 0 <= value_minor <= AMOUNT_MINOR_MAX:
        raise ValueError(f"{name} must be in 0..{AMOUNT_MINOR_MAX}, not {value_minor}")


def _check_fee(kind: str, fixed_minor: int, basis_points: int) -> None:
    if kind not in FEE_KINDS:
        raise ValueError(f"fee kind must be one of {', '.join(FEE_KINDS)}, not {kind!r}")
    _check_minor("fixed_minor", fixed_minor)
    if isinstance(basis_points, bool) or not isinstance(basis_points, int):
        raise TypeError(f"basis_points must be an int, not {type(basis_points).__name__}")
    if not 0 <= basis_points <= BASIS_POINTS_MAX:
        raise ValueError(f"basis_points must be in 0..{BASIS_POINTS_MAX}, not {basis_points}")


def _fee(row: AssetFee) -> Fee:
    return Fee(row.asset_id, row.kind, row.fixed_minor, row.basis_points, row.updated_at)


async def _check_asset(session: AsyncSession, asset_id: uuid.UUID) -> None:
    if await session.get(Asset, asset_id) is None:
        raise LookupError(f"no asset {asset_id}")


async def fee_for(session: AsyncSession, asset_id: uuid.UUID, kind: str) -> Fee | None:
    """The asset's fee on that side, or None when none is set (no fee)."""
    if kind not in FEE_KINDS:
        raise ValueError(f"fee kind must be one of {', '.join(FEE_KINDS)}, not {kind!r}")
    query = select(AssetFee).where(col(AssetFee.asset_id) == asset_id, col(AssetFee.kind) == kind)
    row = (await session.execute(query)).scalar_one_or_none()
    return None if row is None else _fee(row)


async def list_fees(session: AsyncSession, asset_id: uuid.UUID) -> list[Fee]:
    """The asset's fees that are set, sending first; LookupError for an unknown asset."""
    await _check_asset(session, asset_id)
    query = select(AssetFee).where(col(AssetFee.asset_id) == asset_id)
    rows = (await session.execute(query)).scalars().all()
    return sorted((_fee(row) for row in rows), key=lambda fee: FEE_KINDS.index(fee.kind))


async def set_fee(
    session: AsyncSession, asset_id: uuid.UUID, kind: str, *, fixed_minor: int, basis_points: int
) -> Fee:
    """Set (replace) the asset's fee on one side. Every argument is checked before anything
    is written; LookupError for an unknown asset."""
    _check_fee(kind, fixed_minor, basis_points)
    await _check_asset(session, asset_id)
    values = {
        "id": uuid.uuid4(),
        "asset_id": asset_id,
        "kind": kind,
        "fixed_minor": fixed_minor,
        "basis_points": basis_points,
        "updated_at": utc_now(),
    }
    await upsert(
        session,
        sa_table(AssetFee),
        values,
        conflict_columns=["asset_id", "kind"],
        update_columns=["fixed_minor", "basis_points", "updated_at"],
    )
    # Read back through the ORM: the session may hold the row from before the update.
    query = (
        select(AssetFee)
        .where(col(AssetFee.asset_id) == asset_id, col(AssetFee.kind) == kind)
        .execution_options(populate_existing=True)
    )
    stored = _fee((await session.execute(query)).scalar_one())
    assert (stored.fixed_minor, stored.basis_points) == (fixed_minor, basis_points)
    return stored
