"""A payment's `metadata`: the client's reconciliation data (an invoice reference), bounded."""

from __future__ import annotations

from typing import Any, Final

import orjson

from opase.payments.refusals import InvalidPaymentRequest

METADATA_BYTES_MAX: Final = 8 * 1024
"""Metadata is for references, not documents."""


def check_metadata(value: Any) -> dict[str, Any] | None:
    """A payment's `metadata` (the schema has made it an object), within its size limit."""
    if value is None:
        return None
    if len(orjson.dumps(value)) > METADATA_BYTES_MAX:
        raise InvalidPaymentRequest(f"metadata may hold at most {METADATA_BYTES_MAX} bytes of JSON")
    metadata: dict[str, Any] = value
    return metadata
