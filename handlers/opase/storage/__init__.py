"""Persistence: the engine, the tables and their migrations."""

from opase.storage.engine import (
    autocommit_engine,
    autocommit_session_factory,
    create_engine,
    session_factory,
)
from opase.storage.migrate import upgrade, upgrade_sync

__all__ = [
    "autocommit_engine",
    "autocommit_session_factory",
    "create_engine",
    "session_factory",
    "upgrade",
    "upgrade_sync",
]
