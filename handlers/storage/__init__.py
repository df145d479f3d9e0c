"""Persistence: the engine, the tables and their migrations."""

from opase.storage.engine import create_engine, session_factory
from opase.storage.migrate import upgrade, upgrade_sync

__all__ = ["create_engine", "session_factory", "upgrade", "upgrade_sync"]
