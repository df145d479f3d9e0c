"""Keyset pagination on (created_at, id), a total order: `past`, the one condition every
list uses to start after a cursor, and `KeysetCursor`, the admin API lists' page cursor as
an opaque base64url token."""

from __future__ import annotations

import binascii
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from opase import base64url


def past(
    created_at: Any,
    id_: Any,
    cursor_at: datetime,
    cursor_id: uuid.UUID,
    *,
    going_back_in_time: bool,
) -> sa.ColumnElement[bool]:
    """Rows of a table (`created_at`, `id_`: its columns) after the cursor row in a listing
    older-to-newer (`going_back_in_time` False) or newer-to-older.

    A row-value comparison, not `a > x OR (a = x AND b > y)`: SQLite and PostgreSQL both
    seek an index ending in (created_at, id) straight to it, so a page deep in a list costs
    what the first page costs; the OR form is a filter they apply while scanning from the
    list's start to the cursor."""
    row, cursor = sa.tuple_(created_at, id_), sa.tuple_(cursor_at, cursor_id)
    return row < cursor if going_back_in_time else row > cursor


@dataclass(frozen=True, slots=True)
class KeysetCursor:
    """Where a page ended: the (created_at, id) of its last row."""

    created_at: datetime
    id: uuid.UUID

    def to_token(self) -> str:
        text = f"{self.created_at.isoformat()}|{self.id}"
        return base64url.encode(text.encode())

    @classmethod
    def from_token(cls, token: str, *, of: str = "page") -> KeysetCursor:
        """Raises ValueError (`not a <of> cursor`) for anything `to_token` did not make."""
        try:
            text = base64url.decode(token).decode()
            created_at_text, id_text = text.split("|")
            created_at = datetime.fromisoformat(created_at_text)
            row_id = uuid.UUID(id_text)
        except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
            raise ValueError(f"not a {of} cursor: {token!r}") from exc
        if created_at.tzinfo is None:
            raise ValueError(f"not a {of} cursor: {token!r}")
        return cls(created_at, row_id)
