"""The resource server's shared pieces: authorization through token introspection, and
cursor pagination of list operations. No HTTP handlers here: they live beside the other
operations (`opase.api.resource.incoming_payment`, ...)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from opase.errors import InvalidRequest
from opase.wallets.service import WalletAddressRecord, find_wallet_address_by_url

if TYPE_CHECKING:
    from opase.services import Services

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
    services: Services, url: str, *, session: AsyncSession | None = None
) -> WalletAddressRecord:
    """The active wallet address of this ASE a request names; 400 for any other URL.

    Kept by `services.local_wallet_addresses` for `request_cache_s` (a deactivation in
    this process drops it at once): a wallet address's id and asset never change. A miss
    reads through `session` when the caller holds one (a second connection per request
    could exhaust the pool under load), else on its own."""

    public_url = services.settings.public_url

    async def load(wallet_url: str) -> WalletAddressRecord | None:
        if session is not None:
            return await find_wallet_address_by_url(session, public_url, wallet_url)
        async with services.autocommit() as own_session:
            return await find_wallet_address_by_url(own_session, public_url, wallet_url)

    record = await services.local_wallet_addresses.get_or_load(url, load)
    if record is None:
        raise InvalidRequest(f"{url} is not an active wallet address of this ASE")
    return record
