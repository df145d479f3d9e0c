"""Admin API operations (specs/admin.yaml): the ASE's back office.

Each operation runs in one transaction (`admin_session`); what the services refuse maps to
the spec's errors there, once: LookupError -> 404, ValueError -> 400, a unique or
idempotency clash -> 409.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from opase.errors import Conflict, InvalidRequest, NotFound
from opase.ledger import (
    IdempotencyKeyReused,
    InsufficientFunds,
    PendingExpired,
    TransferNotPending,
)
from opase.wallets.directory import WalletAddressAdminRecord
from opase.web.context import RequestContext

# Refusals that depend on the state, not on the input: a retry could succeed later.
CONFLICTS = (IdempotencyKeyReused, InsufficientFunds, TransferNotPending, PendingExpired)


@asynccontextmanager
async def admin_session(ctx: RequestContext) -> AsyncIterator[AsyncSession]:
    """A session committed when the operation succeeds, rolled back when it fails."""
    async with ctx.services.sessions() as session:
        try:
            yield session
            await session.commit()
        except CONFLICTS as exc:
            raise Conflict(str(exc)) from exc
        except LookupError as exc:
            raise NotFound(str(exc)) from exc
        except ValueError as exc:
            raise InvalidRequest(str(exc)) from exc
        except IntegrityError as exc:
            raise Conflict("conflicts with an existing record (a unique value is taken)") from exc


def path_id(ctx: RequestContext, name: str = "id") -> uuid.UUID:
    # The spec declares `format: uuid` and the router checked it.
    return uuid.UUID(ctx.path_params[name])


def wallet_address_view(ctx: RequestContext, record: WalletAddressAdminRecord) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": str(record.id),
        "url": f"{ctx.settings.public_url}{record.path}",
        "path": record.path,
        "assetId": str(record.asset_id),
        "assetCode": record.asset_code,
        "assetScale": record.asset_scale,
        "status": record.status,
    }
    if record.public_name is not None:
        view["publicName"] = record.public_name
    if record.owner_username is not None:
        view["owner"] = record.owner_username
    return view
