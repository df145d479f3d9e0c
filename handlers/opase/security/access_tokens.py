"""Access tokens as every signed request needs them: the token, its grant and the client
bound to it, read in one query and kept in a bounded in-process cache.

Both questions a resource server request asks about its token (which client must have
signed it, `opase.security.bindings`; what it allows, `opase.authorization.introspectors`)
are answered from one `LiveToken`. Only tokens not revoked are found; the grant's state and
the token's expiry are checked where the answer is used, against the clock of that moment.

The cache keeps a found token for `request_cache_s`: a revocation, rotation or grant
cancellation made in this process drops it at once (`forget_grant`, called after the
change commits); one made in another process is seen within `request_cache_s`. Unknown
tokens are never kept, so guessing cannot fill the cache.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from opase.cache import TtlCache
from opase.storage.tables import AccessToken, Grant, sa_table

_TOKENS: Final = sa_table(AccessToken)
_GRANTS: Final = sa_table(Grant)

_LIVE_TOKEN_QUERY: Final = (
    sa.select(
        _TOKENS.c.id,
        _TOKENS.c.expires_at,
        _GRANTS.c.id,
        _GRANTS.c.state,
        _GRANTS.c.access,
        _GRANTS.c.client_wallet_address,
        _GRANTS.c.client_jwk,
        _GRANTS.c.client_key_id,
        _GRANTS.c.client_key_thumbprint,
    )
    .join(_GRANTS, _GRANTS.c.id == _TOKENS.c.grant_id)
    .where(_TOKENS.c.value_sha256 == sa.bindparam("value_sha256"), _TOKENS.c.revoked_at.is_(None))
)


def token_sha256(token: str) -> str:
    """Tokens are stored hashed: a database leak yields no usable token."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class LiveToken:
    """An access token that is not revoked, with its grant as it was read."""

    token_id: uuid.UUID
    expires_at_s: float | None
    """Unix time; None: the token does not expire."""
    grant_id: uuid.UUID
    grant_state: str
    access: tuple[Mapping[str, Any], ...]
    client_wallet_address: str | None
    client_jwk: Mapping[str, Any] | None
    client_key_id: str | None
    client_key_thumbprint: str | None

    def expired(self, now_s: float) -> bool:
        return self.expires_at_s is not None and self.expires_at_s <= now_s


async def load_live_token(
    sessions: async_sessionmaker[AsyncSession], token: str
) -> LiveToken | None:
    """The token as the database holds it now (no cache)."""
    return await _load_by_hash(sessions, token_sha256(token))


async def _load_by_hash(
    sessions: async_sessionmaker[AsyncSession], value_sha256: str
) -> LiveToken | None:
    async with sessions() as session:
        row = (
            await session.execute(_LIVE_TOKEN_QUERY, {"value_sha256": value_sha256})
        ).one_or_none()
    if row is None:
        return None
    expires_at = row[1]
    return LiveToken(
        token_id=row[0],
        expires_at_s=None if expires_at is None else expires_at.timestamp(),
        grant_id=row[2],
        grant_state=row[3],
        access=tuple(row[4]),
        client_wallet_address=row[5],
        client_jwk=row[6],
        client_key_id=row[7],
        client_key_thumbprint=row[8],
    )


class AccessTokens:
    """The cache of live tokens, by the SHA-256 of their value (no token value is kept)."""

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], *, ttl_s: float, count_max: int
    ) -> None:
        self.sessions = sessions
        self._cache: TtlCache[str, LiveToken | None] = TtlCache(
            ttl_s=ttl_s, count_max=count_max, keeps_none=False
        )

    async def find(self, token: str) -> LiveToken | None:
        """The token unless revoked (as of at most `ttl_s` ago in another process)."""
        return await self._cache.get_or_load(token_sha256(token), self._load)

    async def _load(self, value_sha256: str) -> LiveToken | None:
        return await _load_by_hash(self.sessions, value_sha256)

    def forget_grant(self, grant_id: uuid.UUID) -> None:
        """Call after a token of this grant, or the grant, changed in this process."""
        self._cache.invalidate_where(lambda live: live is not None and live.grant_id == grant_id)

    def clear(self) -> None:
        self._cache.clear()
