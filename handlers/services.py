"""The long-lived objects one opase process shares across requests."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from opase.cache import TtlCache

if TYPE_CHECKING:
    from opase.wallet_addresses import PublicDocument
from opase.settings import Settings
from opase.storage import create_engine, session_factory


@dataclass
class Services:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    wallet_address_documents: TtlCache[str, PublicDocument | None]
    """Wallet address documents, ready to send, by path; None remembers a 404 briefly."""
    wallet_address_keys: TtlCache[str, PublicDocument | None]
    """JWKS documents, ready to send, by wallet address path."""

    @classmethod
    def create(cls, settings: Settings) -> Services:
        engine = create_engine(settings)

        def cache() -> TtlCache[str, PublicDocument | None]:
            return TtlCache(
                ttl_s=settings.wallet_address_cache_s,
                count_max=settings.wallet_address_cache_count_max,
            )

        return cls(
            settings=settings,
            engine=engine,
            sessions=session_factory(engine),
            wallet_address_documents=cache(),
            wallet_address_keys=cache(),
        )

    def forget_wallet_address(self, path: str) -> None:
        """Call after changing a wallet address or its keys in this process."""
        self.wallet_address_documents.invalidate(path)
        self.wallet_address_keys.invalidate(path)

    async def close(self) -> None:
        await self.engine.dispose()
