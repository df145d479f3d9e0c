"""`wallet_address.not_found`: someone asked for a wallet address this ASE does not have
(a payer with a typo, or an account the ASE has yet to create). Reported at most once per
path per `NOT_FOUND_REPORT_S` by each process, and for at most `NOT_FOUND_PATH_COUNT_MAX`
paths per period, so a flood of 404s costs the database a bounded number of writes."""

from __future__ import annotations

import logging
import time
from typing import Final

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from opase.webhooks.outbox import enqueue

log = logging.getLogger("opase.webhooks")

NOT_FOUND_REPORT_S: Final = 60.0
NOT_FOUND_PATH_COUNT_MAX: Final = 1000


class NotFoundReporter:
    """Remembers, per process, which paths were reported lately."""

    def __init__(
        self, *, period_s: float = NOT_FOUND_REPORT_S, count_max: int = NOT_FOUND_PATH_COUNT_MAX
    ) -> None:
        assert period_s > 0 and count_max > 0
        self.period_s = period_s
        self.count_max = count_max
        self._reported_until: dict[str, float] = {}
        """Path -> monotonic time until which it is not reported again, oldest first."""

    def _should_report(self, path: str, now_s: float) -> bool:
        until = self._reported_until.get(path)
        if until is not None and until > now_s:
            return False
        self._reported_until.pop(path, None)
        if len(self._reported_until) >= self.count_max:
            # Insertion order is expiry order (one period for all): drop what has expired.
            while self._reported_until:
                oldest = next(iter(self._reported_until))
                if self._reported_until[oldest] > now_s:
                    break
                del self._reported_until[oldest]
        if len(self._reported_until) >= self.count_max:
            # Every slot is a path reported within the period: this one goes unreported,
            # which is the bound on writes.
            return False
        self._reported_until[path] = now_s + self.period_s
        assert len(self._reported_until) <= self.count_max
        return True

    async def report(
        self, sessions: async_sessionmaker[AsyncSession], wallet_address_url: str
    ) -> bool:
        """Enqueue the event in its own transaction unless the path was reported lately;
        whether it was enqueued."""
        if not self._should_report(wallet_address_url, time.monotonic()):
            return False
        try:
            async with sessions() as session:
                data = {"walletAddressUrl": wallet_address_url}
                await enqueue(session, "wallet_address.not_found", data)
                await session.commit()
        except SQLAlchemyError:
            # The 404 is the answer that matters; the report is tried again by the next one.
            self._reported_until.pop(wallet_address_url, None)
            log.warning("could not report wallet_address.not_found", exc_info=True)
            return False
        return True
