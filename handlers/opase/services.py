"""The long-lived objects one opase process shares across requests: the composition root
of the domain services, below the request path (which reaches them as `ctx.services`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from starlette.responses import Response

from opase.authorization.introspectors import (
    CachedIntrospector,
    HttpIntrospector,
    InProcessIntrospector,
    Introspector,
)
from opase.cache import TtlCache
from opase.payments.runner import PaymentRunner
from opase.security.access_tokens import AccessTokens
from opase.security.client_keys import ClientKeys
from opase.security.replay import DatabaseReplayCache, InProcessReplayCache, ReplayCache
from opase.settings import Settings
from opase.storage.engine import (
    autocommit_engine,
    autocommit_session_factory,
    create_engine,
    session_factory,
)
from opase.wallets.directory import WalletAddressRecord
from opase.webhooks.not_found import NotFoundReporter


@dataclass
class Services:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    autocommit: async_sessionmaker[AsyncSession]
    """Sessions whose every statement is its own transaction: for hot paths of single
    statements (a read, the replay cache's claim), without BEGIN and ROLLBACK round trips."""
    wallet_address_documents: TtlCache[str, Response | None]
    """Wallet address documents, ready to send, by path; None remembers a 404 briefly."""
    wallet_address_keys: TtlCache[str, Response | None]
    """JWKS documents, ready to send, by wallet address path."""
    client_keys: ClientKeys
    """The keys clients sign requests with, by client wallet address."""
    local_wallet_addresses: TtlCache[str, WalletAddressRecord | None]
    """Active wallet addresses of this ASE by URL, as resource server requests name them."""
    access_tokens: AccessTokens
    """Live access tokens with their grants, cached briefly; `forget_grant` after a change."""
    replay_cache: ReplayCache
    """Signatures already accepted: shared by every worker on PostgreSQL, in memory on
    SQLite (one process)."""
    introspector: Introspector
    """What the resource server asks about access tokens: the authorization server in this
    process, or, with `introspection_url` set, the introspection listener of another."""
    payments: PaymentRunner
    """Settles outgoing payments: new ones at once, and those a worker finds due."""
    wallet_address_not_found: NotFoundReporter = field(default_factory=NotFoundReporter)
    """Which unknown wallet address paths this process reported to the webhook lately."""

    @classmethod
    def create(cls, settings: Settings) -> Services:
        engine = create_engine(settings)

        def cache() -> TtlCache[str, Response | None]:
            return TtlCache(
                ttl_s=settings.wallet_address_cache_s,
                count_max=settings.wallet_address_cache_count_max,
            )

        sessions = session_factory(engine)
        autocommit = autocommit_session_factory(engine)
        replay_cache: ReplayCache = (
            DatabaseReplayCache(autocommit_engine(engine))
            if settings.is_postgres
            else InProcessReplayCache()
        )
        access_tokens = AccessTokens(
            autocommit,
            ttl_s=settings.request_cache_s,
            count_max=settings.request_cache_count_max,
        )
        introspector: Introspector
        if settings.introspection_url is None:
            introspector = InProcessIntrospector(access_tokens)
        else:
            api_key = settings.introspection_api_key
            introspector = CachedIntrospector(
                HttpIntrospector(
                    settings.introspection_url,
                    api_key=None if api_key is None else api_key.get_secret_value(),
                ),
                ttl_s=settings.request_cache_s,
                count_max=settings.request_cache_count_max,
            )
        return cls(
            settings=settings,
            engine=engine,
            sessions=sessions,
            autocommit=autocommit,
            wallet_address_documents=cache(),
            wallet_address_keys=cache(),
            client_keys=ClientKeys(settings, sessions),
            local_wallet_addresses=TtlCache(
                ttl_s=settings.request_cache_s,
                count_max=settings.request_cache_count_max,
                keeps_none=False,
            ),
            access_tokens=access_tokens,
            replay_cache=replay_cache,
            introspector=introspector,
            payments=PaymentRunner(sessions, settings),
        )

    def forget_wallet_address(self, path: str) -> None:
        """Call after changing a wallet address or its keys in this process."""
        self.wallet_address_documents.invalidate(path)
        self.wallet_address_keys.invalidate(path)
        self.local_wallet_addresses.invalidate(self.settings.public_url + path)
        self.client_keys.forget(self.settings.public_url + path)

    async def close(self) -> None:
        await self.payments.idle()
        await self.client_keys.close()
        await self.introspector.aclose()
        await self.engine.dispose()
