"""The resource server's shared pieces: authorization through token introspection, and
cursor pagination of list operations. No HTTP handlers here: they live beside the other
operations (`opase.incoming_payments`, ...)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Final

import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from opase.errors import InvalidRequest
from opase.wallets.service import WalletAddressRecord, find_wallet_address_by_url

METADATA_BYTES_MAX: Final = 8 * 1024
"""`metadata` is the client's reconciliation data (an invoice reference), not a document."""


def wire_time(value: datetime) -> str:
    """A timestamp as the resource server writes it: UTC, milliseconds, `Z`."""
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def check_metadata(value: Any) -> dict[str, Any] | None:
    """A payment's `metadata` (the schema has made it an object), within its size limit."""
    if value is None:
        return None
    if len(orjson.dumps(value)) > METADATA_BYTES_MAX:
        raise InvalidRequest(f"metadata may hold at most {METADATA_BYTES_MAX} bytes of JSON")
    metadata: dict[str, Any] = value
    return metadata


async def local_wallet_address(
    session: AsyncSession, public_url: str, url: str
) -> WalletAddressRecord:
    """The active wallet address of this ASE a request names; 400 for any other URL."""
    record = await find_wallet_address_by_url(session, public_url, url)
    if record is None:
        raise InvalidRequest(f"{url} is not an active wallet address of this ASE")
    return record
