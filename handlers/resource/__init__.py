"""The resource server's shared pieces: authorization through token introspection, and
cursor pagination of list operations. No HTTP handlers here: they live beside the other
operations (`opase.incoming_payments`, ...)."""

from __future__ import annotations

from datetime import UTC, datetime


def wire_time(value: datetime) -> str:
    """A timestamp as the resource server writes it: UTC, milliseconds, `Z`."""
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
