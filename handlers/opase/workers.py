"""Every background loop of an opase process, in one list.

Each loop claims its work in the database (conditional UPDATEs, row locks that skip what
another holds), so N processes run the same loops side by side; each outlives every error of
a pass (logged, then tried again after its pause) and ends when `stop` is set.

    webhook delivery          every public process: the outbox is shared
    incoming payment expiry   every public process: `incoming_payment.expired` events
    outgoing payments         processes of the resource server: payments past their lease
    ledger reservations       processes of the resource server: pending transfers past
                              their timeout voided, so reserved funds always come back
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Collection, Coroutine
from functools import partial
from typing import Any, Final

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from opase.ledger import void_expired
from opase.payments import incoming
from opase.services import Services
from opase.settings import Settings
from opase.storage.tables import utc_now
from opase.webhooks.delivery import deliver_forever

log = logging.getLogger(__name__)

BackgroundLoop = Callable[[asyncio.Event], Coroutine[Any, Any, None]]
RESERVATION_SWEEP_S: Final = 60.0
"""How often expired ledger reservations are voided: a payment's reservation lasts a day
(`payments.outgoing.RESERVATION_TIMEOUT_S`), so a minute late is nothing."""


def background_loops(
    services: Services, settings: Settings, roles: Collection[str]
) -> list[BackgroundLoop]:
    """The loops a public process with these roles runs."""
    sessions = services.sessions
    loops: list[BackgroundLoop] = [
        partial(deliver_forever, sessions, settings),
        partial(
            _every,
            "incoming payment expiry",
            partial(_report_expired_payments, sessions, settings),
            settings.webhook_poll_s,
        ),
    ]
    if "resource" in roles:
        loops.append(services.payments.run_forever)
        loops.append(
            partial(
                _every,
                "ledger reservation sweep",
                partial(_void_expired_reservations, sessions),
                RESERVATION_SWEEP_S,
            )
        )
    return loops


async def _every(
    name: str, one_pass: Callable[[], Awaitable[int]], pause_s: float, stop: asyncio.Event
) -> None:
    """`one_pass` again and again until `stop`: at once after a pass that did work, else
    after `pause_s`; a failing pass is logged and retried after the pause."""
    while not stop.is_set():
        done = 0
        try:
            done = await one_pass()
        except Exception:
            log.exception("%s: pass failed; trying again", name)
        if done == 0:
            try:
                await asyncio.wait_for(stop.wait(), timeout=pause_s)
            except TimeoutError:
                pass


async def _report_expired_payments(
    sessions: async_sessionmaker[AsyncSession], settings: Settings
) -> int:
    async with sessions() as session:
        reported = await incoming.report_expired(session, settings, utc_now())
        await session.commit()
    return reported


async def _void_expired_reservations(sessions: async_sessionmaker[AsyncSession]) -> int:
    async with sessions() as session:
        voided = await void_expired(session)
        await session.commit()
    return voided
