"""When an incoming payment still receives: the one rule, in Python and in SQL.

An incoming payment receives until it is completed (by its client, or by reaching its
`incomingAmount`, the cap) or it expires. Crediting, completing, quoting to it and reporting
its expiry all ask this module, so the rule cannot drift between them.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

import sqlalchemy as sa

from opase.storage.tables import IncomingPayment, sa_table

_TABLE = sa_table(IncomingPayment)


def is_completed(payment: Mapping[str, Any]) -> bool:
    """Completed by its client, or its cap reached (`payment`: values by column name)."""
    cap_minor = payment["incoming_amount_minor"]
    return payment["completed_at"] is not None or (
        cap_minor is not None and payment["received_amount_minor"] >= cap_minor
    )


def closed_reason(
    payment: Mapping[str, Any], now: datetime
) -> Literal["completed", "expired"] | None:
    """Why the payment takes no more money at `now`, or None while it still receives."""
    if is_completed(payment):
        return "completed"
    if payment["expires_at"] <= now:
        return "expired"
    return None


def not_completed_sql() -> tuple[sa.ColumnElement[bool], ...]:
    """`is_completed` negated, as WHERE conditions on the incoming payments table."""
    cap, received = _TABLE.c.incoming_amount_minor, _TABLE.c.received_amount_minor
    return (_TABLE.c.completed_at.is_(None), sa.or_(cap.is_(None), received < cap))


def still_receiving_sql(now: datetime) -> tuple[sa.ColumnElement[bool], ...]:
    """`closed_reason(payment, now) is None`, as WHERE conditions."""
    return (*not_completed_sql(), _TABLE.c.expires_at > now)
