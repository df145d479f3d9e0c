"""A bounded in-process cache with expiry, for public documents read far more than written.

Entries expire after `ttl_s` (the bound on how long a change made by another process can
go unseen); a change made in this process invalidates its entry at once.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class TtlCache(Generic[K, V]):
    def __init__(self, *, ttl_s: float, count_max: int) -> None:
        assert ttl_s >= 0 and count_max >= 0
        self.ttl_s = ttl_s
        self.count_max = count_max
        self._entries: dict[K, tuple[float, V]] = {}

    async def get_or_load(self, key: K, load: Callable[[K], Awaitable[V]]) -> V:
        entry = self._entries.get(key)
        now_s = time.monotonic()
        if entry is not None and entry[0] > now_s:
            return entry[1]
        value = await load(key)
        if self.ttl_s > 0 and self.count_max > 0:
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
        self._entries.pop(key, None)

    def clear(self) -> None:
        self._entries.clear()
