"""The one page cursor of the admin API's lists: the (created_at, id) of a page's last row,
a total order, as an opaque base64url token."""

from __future__ import annotations

import base64
import binascii
import uuid
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class KeysetCursor:
    """Where a page ended: the (created_at, id) of its last row."""

    created_at: datetime
    id: uuid.UUID

    def to_token(self) -> str:
        text = f"{self.created_at.isoformat()}|{self.id}"
        return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")

    @classmethod
    def from_token(cls, token: str, *, of: str = "page") -> KeysetCursor:
        """Raises ValueError (`not a <of> cursor`) for anything `to_token` did not make."""
        try:
            text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
            created_at_text, id_text = text.split("|")
            created_at = datetime.fromisoformat(created_at_text)
            row_id = uuid.UUID(id_text)
        except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
            raise ValueError(f"not a {of} cursor: {token!r}") from exc
        if created_at.tzinfo is None:
            raise ValueError(f"not a {of} cursor: {token!r}")
        return cls(created_at, row_id)
