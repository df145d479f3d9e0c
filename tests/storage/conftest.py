"""Storage fixtures: every test runs once on SQLite and once on PostgreSQL, each on a new
database: `settings`, `engine`, `sessions` and `session` (the top-level conftest) at the
newest schema, `empty_settings` with no schema.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from opase.settings import Settings


@pytest.fixture
def empty_settings(tmp_path: Path, empty_database_url: str) -> Settings:
    """Settings of a new, empty database (no migrations run)."""
    return Settings(data_dir=tmp_path / "data", database_url=empty_database_url)
