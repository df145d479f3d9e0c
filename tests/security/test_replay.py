"""The replay caches: a signature is accepted once until its `forget_after_s` passes; in
memory (SQLite deployments) and in the shared table (PostgreSQL, also run on SQLite)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Final

import pytest
import sqlalchemy as sa

import opase.security.replay as replay_module
from opase.security.replay import DatabaseReplayCache, InProcessReplayCache
from opase.services import Services
from opase.settings import Settings
from opase.storage.engine import autocommit_engine
from opase.storage.migrate import upgrade
from opase.storage.tables import SeenSignature, sa_table
from opase.webhooks.outbox import OUTBOX, new_event_row

WINDOW_S: Final = 300
CONCURRENT_COUNT: Final = 50
SEEN: Final = sa_table(SeenSignature)


class FakeClock:
    """Stands in for the `time` module inside opase.security.replay."""

    def __init__(self) -> None:
        self.now_s = 1_700_000_000.0

    def time(self) -> float:
        return self.now_s

    def advance(self, seconds: float) -> None:
        self.now_s += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(replay_module, "time", fake)
    return fake


# --- in process -------------------------------------------------------------------------------


async def test_in_process_first_sighting_then_repeats_refused(clock: FakeClock) -> None:
    cache = InProcessReplayCache()
    forget_after_s = clock.now_s + WINDOW_S
    assert await cache.first_sighting(b"sig-1", forget_after_s=forget_after_s)
    assert not await cache.first_sighting(b"sig-1", forget_after_s=forget_after_s)
    assert not await cache.first_sighting(b"sig-1", forget_after_s=forget_after_s + 60)
    assert await cache.first_sighting(b"sig-2", forget_after_s=forget_after_s)


async def test_in_process_signature_is_new_again_after_forget_after_s(clock: FakeClock) -> None:
    cache = InProcessReplayCache()
    assert await cache.first_sighting(b"sig", forget_after_s=clock.now_s + WINDOW_S)
    clock.advance(WINDOW_S - 1)
    assert not await cache.first_sighting(b"sig", forget_after_s=clock.now_s + WINDOW_S)
    clock.advance(1)  # forget_after_s itself: forgotten
    assert await cache.first_sighting(b"sig", forget_after_s=clock.now_s + WINDOW_S)
    assert not await cache.first_sighting(b"sig", forget_after_s=clock.now_s + WINDOW_S)


async def test_in_process_count_max_evicts_oldest_first(clock: FakeClock) -> None:
    cache = InProcessReplayCache(count_max=3)
    forget_after_s = clock.now_s + WINDOW_S
    for signature in (b"a", b"b", b"c", b"d"):
        assert await cache.first_sighting(signature, forget_after_s=forget_after_s)
    # "a", the oldest, made room for "d"; the others are still remembered.
    for signature in (b"b", b"c", b"d"):
        assert not await cache.first_sighting(signature, forget_after_s=forget_after_s)
    assert await cache.first_sighting(b"a", forget_after_s=forget_after_s)


async def test_in_process_count_max_drops_expired_before_live(clock: FakeClock) -> None:
    cache = InProcessReplayCache(count_max=3)
    assert await cache.first_sighting(b"short", forget_after_s=clock.now_s + 10)
    assert await cache.first_sighting(b"b", forget_after_s=clock.now_s + WINDOW_S)
    assert await cache.first_sighting(b"c", forget_after_s=clock.now_s + WINDOW_S)
    clock.advance(11)
    assert await cache.first_sighting(b"d", forget_after_s=clock.now_s + WINDOW_S)
    for signature in (b"b", b"c", b"d"):
        assert not await cache.first_sighting(signature, forget_after_s=clock.now_s + WINDOW_S)


async def test_in_process_count_max_holds_under_many_signatures(clock: FakeClock) -> None:
    count_max = 10
    cache = InProcessReplayCache(count_max=count_max)
    for index in range(25 * count_max):
        signature = index.to_bytes(4, "big")
        assert await cache.first_sighting(signature, forget_after_s=clock.now_s + WINDOW_S)
    # Each insertion at capacity evicted one, the oldest: the newest count_max remain.
    newest = [index.to_bytes(4, "big") for index in range(24 * count_max, 25 * count_max)]
    for signature in newest:
        assert not await cache.first_sighting(signature, forget_after_s=clock.now_s + WINDOW_S)
    evicted = (24 * count_max - 1).to_bytes(4, "big")
    assert await cache.first_sighting(evicted, forget_after_s=clock.now_s + WINDOW_S)


def test_in_process_count_max_must_be_positive() -> None:
    with pytest.raises(AssertionError):
        InProcessReplayCache(count_max=0)


# --- in the database --------------------------------------------------------------------------


@pytest.fixture
async def services(settings: Settings) -> AsyncIterator[Services]:
    await upgrade(settings)
    made = Services.create(settings)
    yield made
    await made.close()


@pytest.fixture
def database_cache(services: Services) -> DatabaseReplayCache:
    return DatabaseReplayCache(autocommit_engine(services.engine))


async def seen_count(services: Services) -> int:
    async with services.sessions() as session:
        count: int = (
            await session.execute(sa.select(sa.func.count()).select_from(SEEN))
        ).scalar_one()
    return count


async def test_database_first_sighting_then_repeats_refused(
    database_cache: DatabaseReplayCache, services: Services
) -> None:
    forget_after_s = time.time() + WINDOW_S
    assert await database_cache.first_sighting(b"sig-1", forget_after_s=forget_after_s)
    assert not await database_cache.first_sighting(b"sig-1", forget_after_s=forget_after_s)
    assert await database_cache.first_sighting(b"sig-2", forget_after_s=forget_after_s)
    assert await seen_count(services) == 2


async def test_database_repeat_is_refused_by_another_cache_on_same_database(
    database_cache: DatabaseReplayCache, services: Services
) -> None:
    """What workers sharing PostgreSQL rely on: the table decides, not the process."""
    forget_after_s = time.time() + WINDOW_S
    assert await database_cache.first_sighting(b"sig", forget_after_s=forget_after_s)
    other_worker = DatabaseReplayCache(autocommit_engine(services.engine))
    assert not await other_worker.first_sighting(b"sig", forget_after_s=forget_after_s)


async def test_database_expired_row_is_taken_over(
    database_cache: DatabaseReplayCache, services: Services
) -> None:
    assert await database_cache.first_sighting(b"sig", forget_after_s=time.time() - 1)
    assert await database_cache.first_sighting(b"sig", forget_after_s=time.time() + WINDOW_S)
    assert not await database_cache.first_sighting(b"sig", forget_after_s=time.time() + WINDOW_S)
    assert await seen_count(services) == 1


async def test_database_expired_rows_are_purged_periodically(
    database_cache: DatabaseReplayCache, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(replay_module, "PURGE_EVERY_COUNT", 3)
    assert await database_cache.first_sighting(b"old-1", forget_after_s=time.time() - 1)
    assert await database_cache.first_sighting(b"old-2", forget_after_s=time.time() - 1)
    assert await seen_count(services) == 2
    assert await database_cache.first_sighting(b"live", forget_after_s=time.time() + WINDOW_S)
    async with services.sessions() as session:
        left = (await session.execute(sa.select(SEEN.c.signature_sha256))).scalars().all()
    assert left == [replay_module.signature_fingerprint(b"live")]


POSTGRES_ONLY: Final = pytest.mark.parametrize(
    "backend", [pytest.param("postgresql", marks=pytest.mark.postgres)]
)


async def concurrent_first_sightings(services: Services, signature: bytes) -> list[bool]:
    """CONCURRENT_COUNT workers, each its own cache and sessions, present one signature."""
    forget_after_s = time.time() + WINDOW_S
    caches = [
        DatabaseReplayCache(autocommit_engine(services.engine)) for _ in range(CONCURRENT_COUNT)
    ]
    return await asyncio.gather(
        *(cache.first_sighting(signature, forget_after_s=forget_after_s) for cache in caches)
    )


@POSTGRES_ONLY
async def test_postgres_concurrent_first_sightings_accept_exactly_one(
    services: Services,
) -> None:
    results = await concurrent_first_sightings(services, b"raced")
    assert results.count(True) == 1
    assert await seen_count(services) == 1


@POSTGRES_ONLY
async def test_postgres_concurrent_take_over_of_expired_row_accepts_exactly_one(
    database_cache: DatabaseReplayCache, services: Services
) -> None:
    assert await database_cache.first_sighting(b"raced", forget_after_s=time.time() - 1)
    results = await concurrent_first_sightings(services, b"raced")
    assert results.count(True) == 1
    assert await seen_count(services) == 1


# --- the claim and an operation's new rows as one statement (PostgreSQL) ----------------------


def event_rows(label: str) -> list[tuple[sa.Table, dict[str, object]]]:
    return [(OUTBOX, new_event_row("incoming_payment.created", {"label": label}))]


async def stored_labels(services: Services) -> list[str]:
    async with services.sessions() as session:
        data = (await session.execute(sa.select(OUTBOX.c.data))).scalars().all()
    return sorted(item["label"] for item in data)


@POSTGRES_ONLY
async def test_postgres_rows_go_in_with_the_first_sighting_only(
    database_cache: DatabaseReplayCache, services: Services
) -> None:
    forget_after_s = time.time() + WINDOW_S
    assert await database_cache.first_sighting_with(
        b"sig", forget_after_s=forget_after_s, rows=event_rows("first")
    )
    assert not await database_cache.first_sighting_with(
        b"sig", forget_after_s=forget_after_s, rows=event_rows("replay")
    )
    assert not await database_cache.first_sighting(b"sig", forget_after_s=forget_after_s)
    assert await stored_labels(services) == ["first"]
    assert await seen_count(services) == 1


@POSTGRES_ONLY
async def test_postgres_rows_go_in_when_an_expired_claim_is_taken_over(
    database_cache: DatabaseReplayCache, services: Services
) -> None:
    assert await database_cache.first_sighting(b"sig", forget_after_s=time.time() - 1)
    assert await database_cache.first_sighting_with(
        b"sig", forget_after_s=time.time() + WINDOW_S, rows=event_rows("after expiry")
    )
    assert await stored_labels(services) == ["after expiry"]


@POSTGRES_ONLY
async def test_postgres_a_row_that_fails_takes_the_claim_with_it(
    database_cache: DatabaseReplayCache, services: Services
) -> None:
    """One statement: the claim and the rows stand or fall together."""
    (table, row), *_ = event_rows("bad")
    row["status"] = "no such status"  # refused by the table's CHECK constraint
    with pytest.raises(sa.exc.IntegrityError):
        await database_cache.first_sighting_with(
            b"sig", forget_after_s=time.time() + WINDOW_S, rows=[(table, row)]
        )
    assert await seen_count(services) == 0
    assert await database_cache.first_sighting_with(
        b"sig", forget_after_s=time.time() + WINDOW_S, rows=event_rows("good")
    )
    assert await stored_labels(services) == ["good"]


@POSTGRES_ONLY
async def test_postgres_concurrent_sightings_with_rows_insert_one_set(services: Services) -> None:
    forget_after_s = time.time() + WINDOW_S
    caches = [
        DatabaseReplayCache(autocommit_engine(services.engine)) for _ in range(CONCURRENT_COUNT)
    ]
    results = await asyncio.gather(
        *(
            cache.first_sighting_with(
                b"raced", forget_after_s=forget_after_s, rows=event_rows(f"worker {index}")
            )
            for index, cache in enumerate(caches)
        )
    )
    assert results.count(True) == 1
    (winner,) = [index for index, taken in enumerate(results) if taken]
    assert await stored_labels(services) == [f"worker {winner}"]
