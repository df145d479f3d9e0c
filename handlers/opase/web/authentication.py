"""Who may call an operation: the security step of the request path, decided in one place.

    admin API            Authorization: Bearer <admin API key>, compared in constant time
    introspection API    Authorization: Bearer <introspection API key>, when one is set
    identity provider    x-idp-secret: <idp secret>, constant time; none set: every call refused
    interaction pages    anonymous: the owner's browser (id, nonce and session cookie checked
                         by the interaction service)
    wallet address       anonymous
    grant request        signed by a key of the client the body names (wallet address or JWK)
    everything else      Authorization: GNAP <token>, signed by the key bound to its grant

A signed request is checked by `httpsig` (components, Content-Digest over the bytes received,
Ed25519, age), with the key from `client_keys` (or the grant's JWK for directed identity),
then, for a method that changes state, claims its place in the replay cache. The resource
server's writes (`CLAIM_IN_TRANSACTION`) leave the claim to their own transaction on the
shared cache: one round trip and one commit fewer, and the claim stands or falls with the
payment it let through. Every refusal is a 401 that names a short reason code; the reason
is logged.
"""

from __future__ import annotations

import dataclasses
import hmac
import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.datastructures import Headers

from opase.errors import InvalidClient, InvalidContinuation, Unauthorized
from opase.security.access_tokens import AccessTokens
from opase.security.bindings import (
    ClientBinding,
    binding_of_access_token,
    binding_of_continuation,
)
from opase.security.client_keys import ClientKey, ClientKeys, client_key_from_jwk
from opase.security.httpsig import (
    Message,
    SignatureRejected,
    check_age,
    check_components,
    check_content_digest,
    parse_signature,
    verify_signature,
)
from opase.security.replay import DatabaseReplayCache, ReplayCache, ReplayClaim
from opase.settings import Settings
from opase_generated.routes import Operation

if TYPE_CHECKING:
    from opase.web.context import RequestContext

log = logging.getLogger("opase.web.authentication")

ADMIN_API_KEY: Final = "adminApiKey"
ADMIN_CHALLENGE: Final = 'Bearer realm="opase-admin"'
INTROSPECTION_API_KEY: Final = "introspectionApiKey"
INTROSPECTION_CHALLENGE: Final = 'Bearer realm="opase-introspection"'
IDP_API_KEY: Final = "idpSecret"
IDP_API_KEY_HEADER: Final = "x-idp-secret"
IDP_CHALLENGE: Final = 'x-idp-secret realm="opase-idp"'
BEARER_SCHEMES: Final = frozenset({ADMIN_API_KEY, INTROSPECTION_API_KEY, IDP_API_KEY})
BROWSER_OPERATIONS: Final = frozenset({"start-interaction", "finish-interaction"})
"""The owner's browser, which has no key: the interaction service checks the interaction's
id, nonce and session cookie instead."""
GRANT_REQUEST: Final = "post-request"
CONTINUATION_OPERATIONS: Final = frozenset({"post-continue", "delete-continue"})
TOKEN_MANAGEMENT_OPERATIONS: Final = frozenset({"post-token", "delete-token"})
TOKEN_OPTIONAL: Final = frozenset({"get-incoming-payment"})
"""Operations a client may call without a token (the spec's optional signature headers):
they answer a public view."""
TOKEN_LENGTH_MAX: Final = 512
CLAIM_IN_TRANSACTION: Final = frozenset(
    {
        "create-incoming-payment",
        "complete-incoming-payment",
        "create-quote",
        "create-outgoing-payment",
    }
)
"""Operations that do all their writing in `RequestContext.transaction`, which records the
request's replay claim first (an operation that fails before opening it gets the claim
recorded by the router)."""
SAFE_METHODS: Final = frozenset({"GET", "HEAD"})
"""Methods whose signatures the replay cache does not track."""


@dataclasses.dataclass(frozen=True, slots=True)
class Authentication:
    client: ClientBinding | None
    """The client the request is proven to come from; None for anonymous requests."""
    replay_claim: ReplayClaim | None
    """The request's signature, to record as seen in the operation's transaction."""


ANONYMOUS: Final = Authentication(None, None)


class Authenticator:
    def __init__(
        self,
        settings: Settings,
        client_keys: ClientKeys | None,
        replay_cache: ReplayCache | None,
        access_tokens: AccessTokens | None = None,
    ) -> None:
        """`client_keys`, `replay_cache` and `access_tokens` may be None for a router that
        serves no GNAP operation (the admin listener)."""
        self.settings = settings
        self.sessions: async_sessionmaker[AsyncSession] | None = (
            client_keys.sessions if client_keys is not None else None
        )
        self.client_keys = client_keys
        self.access_tokens: AccessTokens | None = access_tokens
        self.replay_cache = replay_cache
        self.admin_keys = tuple(key.get_secret_value().encode() for key in settings.admin_api_keys)
        introspection_key = settings.introspection_api_key
        # Unset: the introspection listener's loopback address is what keeps others out.
        self.introspection_keys = (
            () if introspection_key is None else (introspection_key.get_secret_value().encode(),)
        )
        idp_secret = settings.idp_secret.get_secret_value() if settings.idp_secret else ""
        self.idp_secrets = (idp_secret.encode(),) if idp_secret else ()

    def check_bearer(self, operation: Operation, headers: Headers) -> None:
        """The admin or introspection API key, or the identity provider's secret, checked
        before the body is even read."""
        if ADMIN_API_KEY in operation.security:
            _bearer(headers, self.admin_keys, "admin API key", ADMIN_CHALLENGE)
        elif INTROSPECTION_API_KEY in operation.security and self.introspection_keys:
            _bearer(
                headers, self.introspection_keys, "introspection API key", INTROSPECTION_CHALLENGE
            )
        elif IDP_API_KEY in operation.security:
            _header_key(headers, IDP_API_KEY_HEADER, self.idp_secrets, IDP_CHALLENGE)

    async def authenticate(self, operation: Operation, context: RequestContext) -> Authentication:
        """The client the request proved to come from (None for anonymous requests and the
        bearer-key APIs, `check_bearer` having passed), and the replay claim left to record."""
        if (
            BEARER_SCHEMES & set(operation.security)
            or operation.server == "wallet_address"
            or operation.operation_id in BROWSER_OPERATIONS
        ):
            return ANONYMOUS
        binding = await self._claimed_binding(operation.operation_id, context)
        if binding is None:
            return ANONYMOUS
        query = context.query_string
        message = Message(
            method=operation.method,
            target_uri=context.request_url + (f"?{query}" if query else ""),
            headers=_header_lists(context.headers),
            body=context.raw_body,
        )
        defer_claim = operation.operation_id in CLAIM_IN_TRANSACTION
        try:
            bound, claim = await self._verify(binding, message, defer_replay_claim=defer_claim)
            return Authentication(bound, claim)
        except SignatureRejected as exc:
            log.info(
                "refused %s %s: %s (client %s)",
                operation.method, message.target_uri, exc.reason,
                binding.wallet_address or "by JWK",
            )  # fmt: skip
            raise

    async def _claimed_binding(
        self, operation_id: str, context: RequestContext
    ) -> ClientBinding | None:
        if operation_id == GRANT_REQUEST:
            return _binding_from_grant_request(context.document)
        token = gnap_token(context.headers)
        if operation_id in CONTINUATION_OPERATIONS:
            assert self.sessions is not None, "a continuation reaches only the auth server"
            found = None if token is None else await binding_of_continuation(self.sessions, token)
            if found is None:
                raise InvalidContinuation("this needs Authorization: GNAP <continue token>")
            return found
        if token is None and operation_id in TOKEN_OPTIONAL:
            return None
        manages_token = operation_id in TOKEN_MANAGEMENT_OPERATIONS
        found = None
        if token is not None:
            assert self.access_tokens is not None
            found = await binding_of_access_token(
                self.access_tokens, token, allow_expired=manages_token
            )
        if found is None:
            if manages_token:
                raise InvalidClient("this needs Authorization: GNAP <access token> it manages")
            raise Unauthorized("this needs Authorization: GNAP <access token> of a live grant")
        return found

    async def _verify(
        self, binding: ClientBinding, message: Message, *, defer_replay_claim: bool = False
    ) -> tuple[ClientBinding, ReplayClaim | None]:
        """The binding with its key, and the replay claim left for the operation's
        transaction (`defer_replay_claim`, on the shared cache), if any."""
        assert self.replay_cache is not None
        parsed = parse_signature(message)
        check_components(parsed, message)
        check_content_digest(message)
        key = await self._key(binding, parsed.key_id)
        verify_signature(parsed, message, key.public_key)
        settings = self.settings
        age_s_max, skew_s = settings.signature_age_s_max, settings.signature_clock_skew_s
        check_age(parsed, now_s=time.time(), age_s_max=age_s_max, skew_s=skew_s)
        assert parsed.created_s is not None  # check_age requires it
        if message.method in SAFE_METHODS:
            # A replayed GET changes nothing (RFC 9110 9.2.1), while clients that sign
            # without a nonce produce the same signature for the same GET within a second.
            return self._bound(binding, key), None
        forget_after_s = parsed.created_s + age_s_max + skew_s
        if defer_replay_claim and isinstance(self.replay_cache, DatabaseReplayCache):
            return self._bound(binding, key), ReplayClaim(
                self.replay_cache, parsed.signature, forget_after_s
            )
        if not await self.replay_cache.first_sighting(
            parsed.signature, forget_after_s=forget_after_s
        ):
            raise SignatureRejected("replayed_signature")
        return self._bound(binding, key), None

    @staticmethod
    def _bound(binding: ClientBinding, key: ClientKey) -> ClientBinding:
        if binding.key_id is None:
            return dataclasses.replace(binding, key_id=key.key_id, key_thumbprint=key.thumbprint)
        return binding

    async def _key(self, binding: ClientBinding, key_id: str) -> ClientKey:
        if binding.jwk is not None:
            try:
                key = client_key_from_jwk(binding.jwk)
            except ValueError as exc:
                log.info("client JWK refused: %s", exc)
                raise SignatureRejected("unusable_jwk") from None
            if key.key_id != key_id:
                raise SignatureRejected("unknown_key")
        else:
            assert binding.wallet_address is not None and self.client_keys is not None
            key = await self.client_keys.key(binding.wallet_address, key_id)
        # Later requests under a grant must be signed by the key that asked for it.
        if binding.key_id is not None and (
            key.key_id != binding.key_id or key.thumbprint != binding.key_thumbprint
        ):
            raise SignatureRejected("key_not_bound")
        return key


def _bearer(headers: Headers, keys: tuple[bytes, ...], what: str, challenge: str) -> None:
    scheme, _, presented = headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not presented:
        raise Unauthorized(
            f"this operation needs Authorization: Bearer <{what}>",
            headers={"WWW-Authenticate": challenge},
        )
    _check_key(presented.strip(), keys, what, challenge)


def _header_key(headers: Headers, name: str, keys: tuple[bytes, ...], challenge: str) -> None:
    presented = headers.get(name, "")
    if not presented:
        raise Unauthorized(
            f"this operation needs the {name} header", headers={"WWW-Authenticate": challenge}
        )
    _check_key(presented, keys, f"{name} header", challenge)


def _check_key(presented: str, keys: tuple[bytes, ...], what: str, challenge: str) -> None:
    candidate = presented.encode()
    # Compare with every key, always: the time taken says nothing about which matched.
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(candidate, key)
    if not matched:
        raise Unauthorized(f"the {what} is not valid", headers={"WWW-Authenticate": challenge})


def _binding_from_grant_request(document: Any) -> ClientBinding:
    """The client a grant request names (validated against the spec already): a wallet
    address string (the deprecated form), `{walletAddress}`, or `{jwk}`."""
    client = document["client"] if isinstance(document, Mapping) else None
    if isinstance(client, str):
        return ClientBinding(wallet_address=client)
    if isinstance(client, Mapping) and isinstance(client.get("walletAddress"), str):
        return ClientBinding(wallet_address=client["walletAddress"])
    if isinstance(client, Mapping) and isinstance(client.get("jwk"), Mapping):
        return ClientBinding(wallet_address=None, jwk=dict(client["jwk"]))
    raise SignatureRejected("unknown_client")


def gnap_token(headers: Headers) -> str | None:
    """The token of `Authorization: GNAP <token>` (RFC 9635 7.2), or None."""
    value = headers.get("authorization")
    if value is None:
        return None
    scheme, _, token = value.partition(" ")
    token = token.strip()
    if scheme.lower() != "gnap" or not token or len(token) > TOKEN_LENGTH_MAX:
        return None
    return token


def _header_lists(headers: Headers) -> dict[str, list[str]]:
    lists: dict[str, list[str]] = {}
    for name, value in headers.raw:
        lists.setdefault(name.decode("latin-1"), []).append(value.decode("latin-1"))
    return lists
