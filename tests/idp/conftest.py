"""The identity provider's pages hash and check owners' passwords many times per test (two
owners per world, a login or more, the failure limits): with argon2's default cost, 0.2 s
of CPU each, that was most of these tests' time. Here the hasher is argon2id at its
cheapest, the same code path; the production parameters stay tested where they are stored
(tests/wallets/test_directory.py) and wherever the sandbox runs as a process."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from argon2 import PasswordHasher

from opase.idp import pages
from opase.wallets import directory

CHEAP_HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


@pytest.fixture(autouse=True)
def cheap_password_hashes(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(pages, "_password_hasher", CHEAP_HASHER)
    monkeypatch.setattr(directory, "_password_hasher", CHEAP_HASHER)
    # The unknown-username hash is made once per process: not with this hasher for others.
    pages._unknown_owner_hash.cache_clear()
    yield
    pages._unknown_owner_hash.cache_clear()
