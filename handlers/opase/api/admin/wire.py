"""Wire forms shared by the admin operations added with pricing and webhooks."""

from __future__ import annotations

from datetime import UTC, datetime


def wire_datetime(value: datetime) -> str:
    """RFC 3339 in UTC with `Z`, as Open Payments writes `createdAt`."""
    assert value.tzinfo is not None, "stored timestamps are aware UTC"
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
