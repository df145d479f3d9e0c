"""The resource server's steps before the domain: whether the token of a request allows what
it does, and which wallet address of this ASE it names.

Every decision goes through the authorization server's token introspection
(`services.introspector`), in process or over HTTP, so a revoked or expired token stops
working at once wherever the resource server runs. The request asks for one access item,
`{type, actions: [action], identifier: <wallet address>}`; the introspection answers active
only when one granted item covers it (a granted item without identifier covers every wallet
address of this ASE, and `read-all`/`list-all` cover `read`/`list`).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from opase.errors import Forbidden, InvalidRequest, Unauthorized
from opase.security.client_keys import jwk_thumbprint
from opase.services import Services
from opase.wallets.directory import WalletAddressRecord, find_wallet_address_by_url
from opase.web.authentication import gnap_token
from opase.web.context import RequestContext

ALL_ACTIONS: Final = {"read": "read-all", "list": "list-all"}
"""The actions that show every client's resources instead of only the caller's own."""


@dataclass(frozen=True, slots=True)
class Authorized:
    """Who the client is (exactly one of the two), whether it may see what others made,
    and the grant with the access items that allow the request (their `limits` bind an
    outgoing payment)."""

    client_wallet_address: str | None
    client_key_thumbprint: str | None
    """RFC 7638 thumbprint of a directed-identity (JWK) client."""
    sees_all: bool
    grant_id: uuid.UUID | None = None
    access: tuple[dict[str, Any], ...] = field(default=())

    def own_only(
        self, statement: sa.Select[Any], wallet_address: Any, key_thumbprint: Any
    ) -> sa.Select[Any]:
        """`statement` narrowed to what this client created, unless it sees all; the two
        columns hold a resource's creator."""
        if self.sees_all:
            return statement
        if self.client_wallet_address is not None:
            return statement.where(wallet_address == self.client_wallet_address)
        return statement.where(key_thumbprint == self.client_key_thumbprint)

    def check_own(
        self, client_wallet_address: str | None, client_key_thumbprint: str | None, what: str
    ) -> None:
        """403 unless this client created the resource (or sees all): `what` names the
        refused act, "read of another client's quote"."""
        if not self.sees_all and not self.owns(client_wallet_address, client_key_thumbprint):
            raise Forbidden(f"the access token does not allow {what}")

    def owns(self, client_wallet_address: str | None, client_key_thumbprint: str | None) -> bool:
        """Whether a resource with this creator was created by this client."""
        if self.client_wallet_address is not None:
            return client_wallet_address == self.client_wallet_address
        return client_key_thumbprint == self.client_key_thumbprint


def access_token(ctx: RequestContext) -> str:
    """The request's GNAP access token; 401 without one. (A token the router let through is
    proven: the request is signed with the key bound to its grant.)"""
    token = gnap_token(ctx.headers)
    if token is None:
        raise Unauthorized("this operation needs an access token: Authorization: GNAP <token>")
    return token


async def authorize(
    ctx: RequestContext, type_: str, action: str, wallet_address_url: str
) -> Authorized:
    """The client and its reach, or 401 (no token, or not active) or 403 (the grant does
    not cover `action` on `type_` for this wallet address)."""
    token = access_token(ctx)
    introspector = ctx.services.introspector
    requested = {"type": type_, "actions": [action], "identifier": wallet_address_url}
    answer: dict[str, Any] = await introspector.introspect(token, [requested])
    if not answer.get("active"):
        # Tell an ended token (ask for a new grant) from one that lacks this access.
        if not (await introspector.introspect(token)).get("active"):
            raise Unauthorized("the access token is not active")
        raise Forbidden(
            f"the access token does not allow {type_} {action} for {wallet_address_url}"
        )
    all_action = ALL_ACTIONS.get(action)
    sees_all = all_action is not None and any(
        all_action in item.get("actions", ()) for item in answer.get("access", ())
    )
    return _authorized(answer, sees_all)


async def authorize_grant(ctx: RequestContext, type_: str) -> tuple[Authorized, dict[str, Any]]:
    """The client and the first access item of `type_` its active token's grant holds, for
    an operation about the grant itself (no wallet address in the request); 401 or 403."""
    answer: dict[str, Any] = await ctx.services.introspector.introspect(access_token(ctx))
    if not answer.get("active"):
        raise Unauthorized("the access token is not active")
    items = [item for item in answer.get("access", ()) if item.get("type") == type_]
    if not items:
        raise Forbidden(f"the access token's grant allows no {type_.replace('-', ' ')}s")
    return _authorized(answer, sees_all=False), items[0]


def _authorized(answer: dict[str, Any], sees_all: bool) -> Authorized:
    """Who an active introspection answer names as the client."""
    grant_id = uuid.UUID(answer["grant"]) if isinstance(answer.get("grant"), str) else None
    access = tuple(answer.get("access", ()))
    client = answer.get("client", {})
    wallet_address = client.get("walletAddress")
    if isinstance(wallet_address, str):
        return Authorized(wallet_address, None, sees_all, grant_id, access)
    jwk = client.get("jwk")
    if not isinstance(jwk, dict) or not isinstance(jwk.get("x"), str):
        raise Unauthorized("the access token's grant names no client")
    thumbprint = jwk_thumbprint(str(jwk.get("crv")), str(jwk.get("kty")), jwk["x"])
    return Authorized(None, thumbprint, sees_all, grant_id, access)


async def local_wallet_address(
    services: Services, url: str, *, session: AsyncSession | None = None
) -> WalletAddressRecord:
    """The active wallet address of this ASE a request names; 400 for any other URL.

    Kept by `services.local_wallet_addresses` for `request_cache_s` (a deactivation in
    this process drops it at once): a wallet address's id and asset never change. A miss
    reads through `session` when the caller holds one (a second connection per request
    could exhaust the pool under load), else on its own."""

    public_url = services.settings.public_url

    async def load(wallet_url: str) -> WalletAddressRecord | None:
        if session is not None:
            return await find_wallet_address_by_url(session, public_url, wallet_url)
        async with services.autocommit() as own_session:
            return await find_wallet_address_by_url(own_session, public_url, wallet_url)

    record = await services.local_wallet_addresses.get_or_load(url, load)
    if record is None:
        raise InvalidRequest(f"{url} is not an active wallet address of this ASE")
    return record
