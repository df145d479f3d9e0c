"""A bounded in-process cache with expiry, for public documents read far more than written.

Entries expire after `ttl_s` (the bound on how long a change made by another process can
go unseen); a change made in this process invalidates its entry at once. A load that was
under way when an invalidation came is returned to its caller but not kept: it may have read
the state from before the change.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class TtlCache(Generic[K, V]):
    def __init__(self, *, ttl_s: float, count_max: int, keeps_none: bool = True) -> None:
        """`keeps_none=False`: a load that found nothing (None) is not kept, so keys that
        do not exist (a guessed token) never fill the cache."""
        assert ttl_s >= 0 and count_max >= 0
        self.ttl_s = ttl_s
        self.count_max = count_max
        self.keeps_none = keeps_none
        self._entries: dict[K, tuple[float, V]] = {}
        self._generation = 0
        """Bumped by every invalidation: a load that straddles one is not kept."""

    async def get_or_load(self, key: K, load: Callable[[K], Awaitable[V]]) -> V:
        entry = self._entries.get(key)
        now_s = time.monotonic()
        if entry is not None and entry[0] > now_s:
            return entry[1]
        generation = self._generation
        value = await load(key)
        if value is None and not self.keeps_none:
            return value
        if self.ttl_s > 0 and self.count_max > 0 and generation == self._generation:
            self._entries.pop(key, None)
            if len(self._entries) >= self.count_max:
                # dicts keep insertion order: the first key is the oldest entry.
                del self._entries[next(iter(self._entries))]
            self._entries[key] = (now_s + self.ttl_s, value)
        assert len(self._entries) <= self.count_max
        return value

    def peek(self, key: K) -> tuple[bool, V | None]:
        """(True, value) for an entry that has not expired; (False, None) otherwise."""
        entry = self._entries.get(key)
        if entry is not None and entry[0] > time.monotonic():
            return True, entry[1]
        return False, None

    def invalidate(self, key: K) -> None:
        self._generation += 1
        self._entries.pop(key, None)

    def invalidate_where(self, stale: Callable[[V], bool]) -> None:
        """Drops every entry whose value `stale` picks (a scan: for rare changes only)."""
        self._generation += 1
        for key in [k for k, (_, value) in self._entries.items() if stale(value)]:
            del self._entries[key]

    def clear(self) -> None:
        self._generation += 1
        self._entries.clear()
