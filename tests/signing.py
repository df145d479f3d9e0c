"""Signed requests in tests: a client identity, an httpx auth that signs with opase's own
signer (`opase.security.httpsig.sign_request`), and grants issued straight into the tables
(the authorization server's handlers are not what these tests are about)."""

from __future__ import annotations

import base64
import secrets
import uuid
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

import httpx
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sqlmodel import col
from starlette.applications import Starlette

from opase.security.access_tokens import token_sha256
from opase.security.client_keys import jwk_thumbprint
from opase.security.httpsig import sign_request
from opase.storage.tables import AccessToken, Asset, Grant
from opase.wallets.directory import add_key, create_asset, create_wallet_address


def public_x(private_key: Ed25519PrivateKey) -> str:
    raw = private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@dataclass(frozen=True)
class ClientIdentity:
    """A client app: its wallet address URL and one Ed25519 key published there."""

    wallet_address_url: str
    key_id: str
    private_key: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)

    @property
    def jwk(self) -> dict[str, str]:
        return {
            "kid": self.key_id, "alg": "EdDSA", "kty": "OKP", "crv": "Ed25519",
            "x": public_x(self.private_key),
        }  # fmt: skip

    @property
    def thumbprint(self) -> str:
        return jwk_thumbprint("Ed25519", "OKP", public_x(self.private_key))

    def sign(self, request: httpx.Request, token: str | None = None) -> None:
        """Add the signature headers (and `Authorization: GNAP <token>`) to `request`."""
        if token is not None:
            request.headers["Authorization"] = f"GNAP {token}"
        body = request.content
        if not body:
            # httpx sets Content-Length: 0 on bodiless POSTs; the verifier covers what is
            # there, and an empty body needs no digest.
            request.headers.pop("Content-Type", None)
        added = sign_request(
            method=request.method,
            url=str(request.url),
            headers=dict(request.headers),
            body=body,
            private_key=self.private_key,
            key_id=self.key_id,
        )
        request.headers.update(added)


class GnapAuth(httpx.Auth):
    """`client.get(url, auth=GnapAuth(identity, token))`: a signed request."""

    requires_request_body = True

    def __init__(self, identity: ClientIdentity, token: str | None = None) -> None:
        self.identity = identity
        self.token = token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        self.identity.sign(request, self.token)
        yield request


async def register_client(
    app: Starlette, path: str = "/client-app", key_id: str = "client-key-1"
) -> ClientIdentity:
    """A client wallet address served by this same opase (its keys come from the database)."""
    identity = ClientIdentity(app.state.settings.public_url + path, key_id)
    async with app.state.services.sessions() as session:
        existing = await session.execute(sa.select(Asset).where(col(Asset.code) == "XCL"))
        asset = existing.scalar_one_or_none() or await create_asset(session, "XCL", 2)
        wallet = await create_wallet_address(session, path, asset.id, "Client App")
        await add_key(session, wallet.id, key_id, public_x(identity.private_key))
        await session.commit()
    return identity


@dataclass(frozen=True)
class IssuedGrant:
    grant_id: uuid.UUID
    continue_token: str
    access_token: str
    access_token_id: uuid.UUID


async def issue_grant(
    app: Starlette, identity: ClientIdentity, *, by_jwk: bool = False, **token_fields: Any
) -> IssuedGrant:
    """A finalized grant (its token issued) with one access token, bound to `identity`'s
    key, as the authorization server stores it."""
    continue_token, access_token = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    grant = Grant(
        state="finalized",
        finalization_reason="issued",
        access=[{"type": "incoming-payment", "actions": ["create", "read", "list", "complete"]}],
        client_wallet_address=None if by_jwk else identity.wallet_address_url,
        client_jwk=identity.jwk if by_jwk else None,
        client_key_id=identity.key_id,
        client_key_thumbprint=identity.thumbprint,
        continue_token_sha256=token_sha256(continue_token),
    )
    token = AccessToken(grant_id=grant.id, value_sha256=token_sha256(access_token), **token_fields)
    async with app.state.services.sessions() as session:
        session.add(grant)
        await session.flush()
        session.add(token)
        await session.commit()
    return IssuedGrant(grant.id, continue_token, access_token, token.id)


def signed(
    client: httpx.AsyncClient,
    identity: ClientIdentity,
    method: str,
    url: str,
    *,
    body: Any = None,
    token: str | None = None,
) -> httpx.Request:
    """A request signed by opase's signer, not yet sent (tests tamper with it first)."""
    request = client.build_request(method, url, json=body)
    identity.sign(request, token)
    return request
