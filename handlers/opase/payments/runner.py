"""Who executes outgoing payments, and when: at once after the request that created one, and
a worker that takes up every payment still `sending` past its lease (its process died, or
settling failed for a reason that may pass). A lease is one conditional UPDATE: two workers
never both execute one payment at once, and `outgoing.execute` settles at most once."""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import datetime, timedelta
from typing import Final

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from opase.payments.outgoing import execute
from opase.settings import Settings
from opase.storage.tables import OutgoingPayment, sa_table, utc_now

log = logging.getLogger(__name__)

RETRY_DELAY_S_MAX: Final = 300
WORKER_BATCH_MAX: Final = 50
WORKER_IDLE_S: Final = 1.0


def _retry_delay_s(lease_s: int, attempts: int) -> int:
    """The lease of a payment's next try: doubling from the lease, to at most 5 min."""
    delay_s: int = lease_s * 2 ** min(attempts, 10)
    return min(delay_s, max(lease_s, RETRY_DELAY_S_MAX))


async def _claim(
    sessions: async_sessionmaker[AsyncSession], lease_s: int, now: datetime, count_max: int
) -> list[uuid.UUID]:
    """Due sending payments, each leased to this caller by one conditional UPDATE."""
    table = sa_table(OutgoingPayment)
    async with sessions() as session:
        due = (
            await session.execute(
                sa.select(table.c.id, table.c.attempts)
                .where(table.c.state == "sending", table.c.next_attempt_at <= now)
                .order_by(table.c.next_attempt_at)
                .limit(count_max)
            )
        ).all()
        claimed = []
        for payment_id, attempts in due:
            leased = await session.execute(
                sa.update(table)
                .where(
                    table.c.id == payment_id,
                    table.c.state == "sending",
                    table.c.next_attempt_at <= now,
                )
                .values(
                    attempts=table.c.attempts + 1,
                    next_attempt_at=now + timedelta(seconds=_retry_delay_s(lease_s, attempts)),
                )
            )
            if leased.rowcount == 1:  # type: ignore[attr-defined]
                claimed.append(payment_id)
        await session.commit()
    return claimed


async def run_due(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    *,
    now: datetime | None = None,
    count_max: int = WORKER_BATCH_MAX,
) -> int:
    """One pass of the worker: execute every payment whose lease has run out; the count."""
    lease_s = settings.outgoing_payment_lease_s
    claimed = await _claim(sessions, lease_s, now or utc_now(), count_max)
    for payment_id in claimed:
        try:
            await execute(sessions, settings, payment_id)
        except Exception:
            log.exception("outgoing payment %s: settling failed; will retry", payment_id)
    return len(claimed)


class PaymentRunner:
    """Executes payments in this process: each new one at once, in the background of the
    request that created it, and (with `run_forever`) every one the worker finds due."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], settings: Settings) -> None:
        self._sessions = sessions
        self._settings = settings
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self, payment_id: uuid.UUID) -> None:
        task = asyncio.get_running_loop().create_task(self._execute(payment_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _execute(self, payment_id: uuid.UUID) -> None:
        try:
            await execute(self._sessions, self._settings, payment_id)
        except Exception:
            # Left sending: the worker takes it up when its lease runs out.
            log.exception("outgoing payment %s: settling failed; will retry", payment_id)

    async def idle(self) -> None:
        """Wait until the payments started here are settled (for tests and shutdown)."""
        while self._tasks:
            await asyncio.gather(*tuple(self._tasks), return_exceptions=True)

    async def run_forever(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                count = await run_due(self._sessions, self._settings)
            except Exception:
                log.exception("outgoing payment worker: pass failed; retrying")
                count = 0
            if count == 0:
                try:
                    await asyncio.wait_for(stop.wait(), WORKER_IDLE_S)
                except TimeoutError:
                    pass
