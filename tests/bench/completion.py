"""How long outgoing payments took from created to completed, read from the server's own
database after the outgoing-payment workload: `finished_at - created_at` of each payment
(`created_at` is stamped when the create request's transaction builds the payment,
`finished_at` in the transaction that settles it). A payment still `sending` once the
settle-wait has passed counts as stuck."""

from __future__ import annotations

import asyncio
import math
import time
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import sqlalchemy as sa

from opase.settings import Settings
from opase.storage.engine import create_engine
from opase.storage.tables import OutgoingPayment, sa_table

SETTLE_WAIT_S: Final = 10.0
_PAYMENTS: Final = sa_table(OutgoingPayment)


def _settings(env: dict[str, str]) -> Settings:
    return Settings(
        public_url=env["OPASE_PUBLIC_URL"],
        data_dir=Path(env["OPASE_DATA_DIR"]),
        database_url=env.get("OPASE_DATABASE_URL", ""),
    )


def _percentile(sorted_ms: list[float], fraction: float) -> float | None:
    if not sorted_ms:
        return None
    return sorted_ms[max(1, math.ceil(fraction * len(sorted_ms))) - 1]


async def figures(env: dict[str, str], since: datetime) -> dict[str, Any]:
    """The payments created at or after `since` (one run's)."""
    engine = create_engine(_settings(env))
    of_the_run = _PAYMENTS.c.created_at >= since
    try:
        deadline = time.monotonic() + SETTLE_WAIT_S
        async with engine.connect() as connection:
            while True:
                states = dict(
                    (
                        await connection.execute(
                            sa.select(_PAYMENTS.c.state, sa.func.count())
                            .where(of_the_run)
                            .group_by(_PAYMENTS.c.state)
                        )
                    ).all()
                )
                await connection.rollback()
                if not states.get("sending") or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.2)
            rows = (
                await connection.execute(
                    sa.select(_PAYMENTS.c.created_at, _PAYMENTS.c.finished_at).where(
                        of_the_run, _PAYMENTS.c.state == "completed"
                    )
                )
            ).all()
    finally:
        await engine.dispose()
    delays_ms = sorted((finished - created).total_seconds() * 1000 for created, finished in rows)
    return {
        "completed": states.get("completed", 0),
        "failed": states.get("failed", 0),
        "stuck": states.get("sending", 0),
        "p50_ms": _percentile(delays_ms, 0.50),
        "p99_ms": _percentile(delays_ms, 0.99),
        "max_ms": delays_ms[-1] if delays_ms else None,
    }


def render(label: str, figures: dict[str, Any]) -> str:
    if figures["p50_ms"] is None:
        return f"outgoing payments, {label}: none completed"
    return (
        f"outgoing payments, {label}, created -> completed: p50 {figures['p50_ms']:.1f} ms, "
        f"p99 {figures['p99_ms']:.1f} ms, max {figures['max_ms']:.1f} ms over "
        f"{figures['completed']} completed ({figures['failed']} failed, {figures['stuck']} stuck)"
    )
