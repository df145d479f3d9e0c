"""Timestamps on the wire: one form for every API opase serves."""

from __future__ import annotations

from datetime import UTC, datetime


def wire_time(value: datetime) -> str:
    """RFC 3339 in UTC with milliseconds and `Z` (`2026-12-05T02:03:04.567Z`), as Open
    Payments writes `createdAt`: stored timestamps are aware UTC."""
    assert value.tzinfo is not None, "stored timestamps are aware UTC"
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
