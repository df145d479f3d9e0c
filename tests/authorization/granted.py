"""Grants as the authorization server stores them once their token is issued, for the
introspection tests: a client, the access it was granted, and `finalized_grant`."""

from __future__ import annotations

import secrets
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from opase.security.access_tokens import token_sha256
from opase.services import Services
from opase.storage.tables import AccessToken, Grant
from tests.signing import ClientIdentity
from tests.world import PUBLIC_URL

ALICE = f"{PUBLIC_URL}/alice"
BOB = f"{PUBLIC_URL}/bob"
CLIENT = ClientIdentity("https://client.example/app", "client-key-1")
INCOMING = {
    "type": "incoming-payment",
    "actions": ["create", "read-all", "list"],
    "identifier": ALICE,
}
LIMITS = {
    "debitAmount": {"value": "500", "assetCode": "USD", "assetScale": 2},
    "interval": "R/2025-01-01T00:00:00Z/P1M",
}
OUTGOING = {
    "type": "outgoing-payment",
    "actions": ["create", "read"],
    "identifier": ALICE,
    "limits": LIMITS,
}
QUOTE = {"type": "quote", "actions": ["create", "read"]}
GRANTED: list[dict[str, Any]] = [INCOMING, OUTGOING, QUOTE]


async def finalized_grant(
    services: Services,
    *,
    access: list[dict[str, Any]] | None = None,
    by_jwk: bool = False,
    state: str = "finalized",
    expires_at: datetime | None = None,
    revoked_at: datetime | None = None,
) -> tuple[uuid.UUID, str]:
    """A grant as the authorization server stores it once its token is issued; (grant id,
    token value)."""
    token = secrets.token_urlsafe(24)
    grant = Grant(
        state=state,
        client_wallet_address=None if by_jwk else CLIENT.wallet_address_url,
        client_jwk=CLIENT.jwk if by_jwk else None,
        client_key_id=CLIENT.key_id,
        client_key_thumbprint=CLIENT.thumbprint,
        continue_token_sha256=token_sha256(secrets.token_urlsafe(24)),
        access=GRANTED if access is None else access,
    )
    async with services.sessions() as session:
        session.add(grant)
        await session.flush()
        session.add(
            AccessToken(
                grant_id=grant.id,
                value_sha256=token_sha256(token),
                expires_at=expires_at or datetime.now(UTC) + timedelta(minutes=10),
                revoked_at=revoked_at,
            )
        )
        await session.commit()
    return grant.id, token
