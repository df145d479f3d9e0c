"""Keyset pagination of the list operations (`first`, `last`, `cursor`; `pagination`).

Items are listed newest first (as Rafiki), ordered by `(created_at, id)`, so a page costs one
index range scan of `page size + 1` rows whatever its depth (no OFFSET). A cursor is an item's
id, opaque to clients: `first=n&cursor=c` is the n items after `c`, `last=n&cursor=c` the n
before it; `first` and `last` are exclusive, and `last` needs a cursor (as Rafiki).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Generic, Protocol, TypeVar

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from opase.api.resource.authorize import Authorized
from opase.errors import InvalidRequest
from opase.storage.keyset import past

PAGE_SIZE_DEFAULT: Final = 20
PAGE_SIZE_MAX: Final = 100


class _HasId(Protocol):
    @property
    def id(self) -> uuid.UUID: ...


Row = TypeVar("Row", bound=_HasId)


@dataclass(frozen=True, slots=True)
class PageRequest:
    size: int
    cursor: uuid.UUID | None
    backward: bool
    """`last`: the items before the cursor."""


@dataclass(frozen=True, slots=True)
class Page(Generic[Row]):
    items: list[Row]
    page_info: dict[str, Any]
    """The spec's `page-info`: `startCursor`/`endCursor` (absent when empty), `hasNextPage`,
    `hasPreviousPage`."""


def page_request(query: Mapping[str, Any]) -> PageRequest:
    """The page the query asks for; 400 for what the spec's schema cannot say."""
    first, last, cursor = query.get("first"), query.get("last"), query.get("cursor")
    if first is not None and last is not None:
        raise InvalidRequest("first and last are mutually exclusive")
    if last is not None and cursor is None:
        raise InvalidRequest("last needs a cursor")
    size = int(first if first is not None else last if last is not None else PAGE_SIZE_DEFAULT)
    if not 1 <= size <= PAGE_SIZE_MAX:
        raise InvalidRequest(f"a page holds 1 to {PAGE_SIZE_MAX} items")
    cursor_id = None
    if cursor is not None:
        try:
            cursor_id = uuid.UUID(str(cursor))
        except ValueError:
            raise InvalidRequest(f"unknown cursor {cursor!r}") from None
    return PageRequest(size, cursor_id, backward=last is not None)


async def paginate(
    session: AsyncSession,
    statement: sa.Select[Any],
    created_at: Any,
    id_: Any,
    request: PageRequest,
) -> Page[Any]:
    """One page of `statement` (already filtered to what the client may see), whose rows
    have the columns `created_at` and `id_`. A cursor outside that set is a 400."""
    conditions: list[sa.ColumnElement[bool]] = []
    if request.cursor is not None:
        cursor_row = (
            await session.execute(
                statement.with_only_columns(created_at, id_).where(id_ == request.cursor)
            )
        ).one_or_none()
        if cursor_row is None:
            raise InvalidRequest(f"unknown cursor {request.cursor}")
        cursor_at, cursor_id = cursor_row
        # Listed newest first: "after the cursor" in the list is older in time.
        conditions.append(
            past(created_at, id_, cursor_at, cursor_id, going_back_in_time=not request.backward)
        )
    # Read from the cursor outwards: newest first going forward, oldest first going back.
    order = (created_at.asc(), id_.asc()) if request.backward else (created_at.desc(), id_.desc())
    rows: Sequence[Any] = (
        (
            await session.execute(
                statement.where(*conditions).order_by(*order).limit(request.size + 1)
            )
        )
        .scalars()
        .all()
    )
    more = len(rows) > request.size
    items = list(rows[: request.size])
    if request.backward:
        items.reverse()
        has_previous, has_next = more, True  # the cursor itself comes after
    else:
        has_previous, has_next = request.cursor is not None, more
    info: dict[str, Any] = {"hasNextPage": has_next, "hasPreviousPage": has_previous}
    if items:
        info["startCursor"] = str(items[0].id)
        info["endCursor"] = str(items[-1].id)
    return Page(items, info)


async def own_page(
    session: AsyncSession,
    authorized: Authorized,
    payments: Any,
    wallet_address_id: uuid.UUID,
    request: PageRequest,
) -> Page[Any]:
    """A page of a payment table model (`IncomingPayment`, `OutgoingPayment`: the same
    columns for owner, creator and keyset) for one wallet address, narrowed to what the
    client created unless it may see all."""
    statement = authorized.own_only(
        sa.select(payments).where(payments.wallet_address_id == wallet_address_id),
        payments.client_wallet_address,
        payments.client_key_thumbprint,
    )
    return await paginate(session, statement, payments.created_at, payments.id, request)
