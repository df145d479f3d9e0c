"""Which client, and which of its keys, a request must come from.

A grant request names its client in the body; every later request under the grant presents
a token (`Authorization: GNAP <token>`): the continuation token for `/continue/{id}`, an
access token otherwise. The token leads to the grant, and the grant to the client and the
key that signed the grant request, which must sign this request too.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from opase.security.access_tokens import AccessTokens, token_sha256
from opase.storage.tables import Grant


@dataclass(frozen=True, slots=True)
class ClientBinding:
    """The client identity a request must prove: a wallet address (keys from its JWKS) or
    a JWK (directed identity), and, once a grant exists, the exact key."""

    wallet_address: str | None
    jwk: Mapping[str, Any] | None = None
    key_id: str | None = None
    """The `kid` the grant request was signed with; None before a grant exists."""
    key_thumbprint: str | None = None
    grant_id: uuid.UUID | None = None
    access_token_id: uuid.UUID | None = None

    def __post_init__(self) -> None:
        assert (self.wallet_address is None) != (self.jwk is None), "one client identity"
        assert (self.key_id is None) == (self.key_thumbprint is None)


def _binding(grant: Grant) -> ClientBinding:
    return ClientBinding(
        wallet_address=grant.client_wallet_address,
        jwk=grant.client_jwk,
        key_id=grant.client_key_id,
        key_thumbprint=grant.client_key_thumbprint,
        grant_id=grant.id,
    )


async def binding_of_continuation(
    sessions: async_sessionmaker[AsyncSession], continue_token: str
) -> ClientBinding | None:
    async with sessions() as session:
        grant = (
            await session.execute(
                sa.select(Grant).where(
                    col(Grant.continue_token_sha256) == token_sha256(continue_token),
                    col(Grant.state) != "revoked",
                )
            )
        ).scalar_one_or_none()
    return None if grant is None else _binding(grant)


async def binding_of_access_token(
    tokens: AccessTokens, access_token: str, *, allow_expired: bool = False
) -> ClientBinding | None:
    """The binding of a live token (not revoked, not expired, its grant not revoked). An
    expired token still manages itself (`allow_expired`): rotation is how a client replaces
    it (RFC 9635 6.1)."""
    live = await tokens.find(access_token)
    if live is None or live.grant_state == "revoked":
        return None
    if not allow_expired and live.expired(time.time()):
        return None
    return ClientBinding(
        wallet_address=live.client_wallet_address,
        jwk=live.client_jwk,
        key_id=live.client_key_id,
        key_thumbprint=live.client_key_thumbprint,
        grant_id=live.grant_id,
        access_token_id=live.token_id,
    )
