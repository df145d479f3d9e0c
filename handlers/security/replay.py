"""The replay cache: each accepted signature is accepted once.

A signature is remembered until its `created` falls out of the age window, after which the
age check refuses it anyway; so the cache holds at most one window of traffic. On PostgreSQL
the cache is a table every worker process shares (the primary key decides, race-free); on
SQLite, where one process serves, it lives in memory.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final, Protocol

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from opase.storage.tables import SeenSignature, sa_table
from opase.storage.upsert import dialect_insert

log = logging.getLogger("opase.security")

IN_PROCESS_COUNT_MAX: Final = 200_000
"""Bounds memory (~30 MB). Past it the oldest entries go first: by then they are close to
the end of the window, where the age check catches a replay of them."""
PURGE_EVERY_COUNT: Final = 1000
"""The shared table is swept of expired rows once per this many insertions."""

_SEEN: Final = sa_table(SeenSignature)


def signature_fingerprint(signature: bytes) -> str:
    return hashlib.sha256(signature).hexdigest()


class ReplayCache(Protocol):
    async def first_sighting(self, signature: bytes, *, forget_after_s: float) -> bool:
        """True the first time `signature` is presented, False every later time before
        `forget_after_s` (Unix time) passes."""
        ...


class InProcessReplayCache:
    def __init__(self, count_max: int = IN_PROCESS_COUNT_MAX) -> None:
        assert count_max > 0
        self.count_max = count_max
        self._expiry_by_fingerprint: dict[str, float] = {}

    async def first_sighting(self, signature: bytes, *, forget_after_s: float) -> bool:
        fingerprint = signature_fingerprint(signature)
        now_s = time.time()
        seen_until_s = self._expiry_by_fingerprint.get(fingerprint)
        if seen_until_s is not None and seen_until_s > now_s:
            return False
        if len(self._expiry_by_fingerprint) >= self.count_max:
            self._purge(now_s)
        self._expiry_by_fingerprint[fingerprint] = forget_after_s
        assert len(self._expiry_by_fingerprint) <= self.count_max
        return True

    def _purge(self, now_s: float) -> None:
        live = {k: v for k, v in self._expiry_by_fingerprint.items() if v > now_s}
        while len(live) >= self.count_max:
            # dicts keep insertion order: the first entry is the oldest.
            del live[next(iter(live))]
        if len(live) < len(self._expiry_by_fingerprint) // 2:
            log.debug("replay cache: %d entries expired", len(self._expiry_by_fingerprint))
        self._expiry_by_fingerprint = live


@dataclass(frozen=True, slots=True)
class ReplayClaim:
    """An accepted signature not yet recorded: the operation's transaction records it
    (`RequestContext.transaction`), or, when the operation opened none (it failed first),
    the router records it on its own afterwards."""

    cache: DatabaseReplayCache
    signature: bytes
    forget_after_s: float

    async def take_in(self, session: AsyncSession) -> bool:
        return await self.cache.first_sighting_in(
            session, self.signature, forget_after_s=self.forget_after_s
        )

    async def take_alone(self) -> bool:
        return await self.cache.first_sighting(self.signature, forget_after_s=self.forget_after_s)


class DatabaseReplayCache:
    def __init__(self, autocommit: async_sessionmaker[AsyncSession]) -> None:
        """`autocommit`: sessions whose statements commit one by one. Each statement here
        decides alone (the insert by the primary key, the take-over by its condition), so
        none needs a transaction around it, and a claim costs one round trip."""
        self.sessions = autocommit
        self._inserted_count = 0

    async def first_sighting(self, signature: bytes, *, forget_after_s: float) -> bool:
        async with self.sessions() as session:
            return await self.first_sighting_in(session, signature, forget_after_s=forget_after_s)

    async def first_sighting_in(
        self, session: AsyncSession, signature: bytes, *, forget_after_s: float
    ) -> bool:
        """`first_sighting` inside the caller's transaction: the claim stands or falls with
        the operation it lets through. A concurrent claim of the same signature waits on the
        key until that transaction ends, then finds it taken (or free, after a rollback)."""
        now = datetime.now(UTC)
        inserted = await self._insert(session, signature, forget_after_s)
        if not inserted:
            # A row left from before its expiry passed counts as unseen: take it over.
            inserted = await self._take_over_expired(session, signature, forget_after_s, now)
        self._inserted_count += 1
        if self._inserted_count % PURGE_EVERY_COUNT == 0:
            # On its own: never inside an operation's transaction, whose locks it would hold.
            async with self.sessions() as purging:
                await purging.execute(sa.delete(_SEEN).where(_SEEN.c.expires_at < now))
        return inserted

    @staticmethod
    async def _insert(session: AsyncSession, signature: bytes, forget_after_s: float) -> bool:
        statement = (
            dialect_insert(session, _SEEN)
            .values(
                signature_sha256=signature_fingerprint(signature),
                expires_at=datetime.fromtimestamp(forget_after_s, UTC),
            )
            .on_conflict_do_nothing(index_elements=["signature_sha256"])
        )
        result = await session.execute(statement)
        return bool(result.rowcount)  # type: ignore[attr-defined]

    @staticmethod
    async def _take_over_expired(
        session: AsyncSession, signature: bytes, forget_after_s: float, now: datetime
    ) -> bool:
        result = await session.execute(
            sa.update(_SEEN)
            .where(
                _SEEN.c.signature_sha256 == signature_fingerprint(signature),
                _SEEN.c.expires_at <= now,
            )
            .values(expires_at=datetime.fromtimestamp(forget_after_s, UTC))
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]
