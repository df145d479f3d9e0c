"""Token introspection: what an access token grants, as the resource server needs to know.

`introspect` is the one place that decides, and its answer is the document of
specs/introspection.yaml (the shape of the reference implementation's token introspection):
`{"active": False}`, or `{"active": True, "grant", "access", "client"}`. The resource server
asks through an `Introspector`: `InProcessIntrospector` when the authorization server runs in
the same process (same database), `HttpIntrospector` when `opase serve --role` splits them
and the answer comes from the introspection listener of `--role auth`; there
`CachedIntrospector` keeps active answers for `request_cache_s` (the bound on how long
a token revoked in the other process still works here; inactive answers are never kept).

The HTTP introspector fails closed: any doubt about the answer (unreachable, slow, too large,
not 200, not an introspection document) raises `IntrospectionUnavailable`, a 503; never an
answer that would let a request through.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any, Final, Protocol

import httpx
import orjson
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from opase.bounded_read import read_ok_answer
from opase.cache import TtlCache
from opase.errors import OpaseError
from opase.security.access_tokens import AccessTokens, LiveToken, load_live_token, token_sha256

log = logging.getLogger("opase.api.introspection.introspection")

AccessItem = Mapping[str, Any]
INACTIVE: Final = {"active": False}
IMPLIED_BY: Final = {"read": "read-all", "list": "list-all"}
"""A granted `read-all` allows `read` (of anyone's resources); `list-all` allows `list`."""
LIVE_GRANT_STATE: Final = "finalized"
"""Tokens are issued when a grant is finalized; any other state (revoked) ends them."""
HTTP_TIMEOUT_S: Final = 5.0
HTTP_RESPONSE_BYTES_MAX: Final = 64 * 1024
"""An answer holds at most three access items and a JWK: far below this."""


class IntrospectionUnavailable(OpaseError):
    """The authorization server could not say whether the token is good: refuse (503)."""

    status_code = 503
    code = "service_unavailable"


def covers(granted: AccessItem, requested: AccessItem) -> bool:
    """Whether one granted access item allows everything one requested item asks for."""
    if granted.get("type") != requested.get("type"):
        return False
    actions = set(granted.get("actions", ()))
    for action in requested.get("actions", ()):
        if action not in actions and IMPLIED_BY.get(action) not in actions:
            return False
    # A granted item without identifier allows any wallet address; one with an identifier
    # allows only that one (a request naming none asks for more).
    identifier = granted.get("identifier")
    if identifier is not None and requested.get("identifier") != identifier:
        return False
    # As the reference: limits, when the request names them, are the granted limits.
    limits = requested.get("limits")
    return limits is None or limits == granted.get("limits")


async def introspect(
    sessions: async_sessionmaker[AsyncSession],
    token: str,
    access: Sequence[AccessItem] | None,
) -> dict[str, Any]:
    """The introspection document for `token`, from the database as it is now; with
    `access`, active only when the grant covers every requested item (each by one granted
    item), and `access` in the answer is then the granted items that do. Without `access`,
    every granted item."""
    return answer(await load_live_token(sessions, token), access)


def answer(live: LiveToken | None, access: Sequence[AccessItem] | None) -> dict[str, Any]:
    """The introspection document for a token found as `live` (None: not found)."""
    if live is None or live.grant_state != LIVE_GRANT_STATE or live.expired(time.time()):
        return dict(INACTIVE)
    granted = live.access
    if access is None:
        chosen = list(granted)
    else:
        indexes: set[int] = set()
        for item in access:
            index = next((i for i, g in enumerate(granted) if covers(g, item)), None)
            if index is None:
                return dict(INACTIVE)
            indexes.add(index)
        chosen = [granted[i] for i in sorted(indexes)]
    return {
        "active": True,
        "grant": str(live.grant_id),
        "access": [dict(item) for item in chosen],
        "client": _client(live),
    }


def _client(live: LiveToken) -> dict[str, Any]:
    if live.client_wallet_address is not None:
        return {"walletAddress": live.client_wallet_address}
    assert live.client_jwk is not None  # the table holds exactly one identity
    return {"jwk": dict(live.client_jwk)}


class Introspector(Protocol):
    """How the resource server asks about a token; answers the introspection document."""

    async def introspect(
        self, token: str, access: Sequence[AccessItem] | None = None
    ) -> dict[str, Any]: ...

    async def aclose(self) -> None: ...


class InProcessIntrospector:
    """The authorization server's own answer, from the shared database through this
    process's token cache (`opase.security.access_tokens`)."""

    def __init__(self, tokens: AccessTokens) -> None:
        self.tokens = tokens

    async def introspect(
        self, token: str, access: Sequence[AccessItem] | None = None
    ) -> dict[str, Any]:
        return answer(await self.tokens.find(token), access)

    async def aclose(self) -> None:
        return None


class HttpIntrospector:
    """The answer of the introspection listener of `opase serve --role auth`."""

    def __init__(
        self,
        url: str,
        timeout_s: float = HTTP_TIMEOUT_S,
        *,
        api_key: str | None = None,
        response_bytes_max: int = HTTP_RESPONSE_BYTES_MAX,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"introspection URL {url!r} is not an http(s) URL")
        self.url = url
        self.response_bytes_max = response_bytes_max
        headers = {"Accept": "application/json"}
        if api_key is not None:
            headers["Authorization"] = f"Bearer {api_key}"
        self._http = httpx.AsyncClient(
            transport=transport,
            timeout=httpx.Timeout(timeout_s),
            follow_redirects=False,
            # The listener is a fixed internal address: no proxy from the environment.
            trust_env=False,
            headers=headers,
        )

    async def introspect(
        self, token: str, access: Sequence[AccessItem] | None = None
    ) -> dict[str, Any]:
        request: dict[str, Any] = {"access_token": token}
        if access is not None:
            request["access"] = [dict(item) for item in access]
        try:
            async with self._http.stream(
                "POST",
                self.url,
                content=orjson.dumps(request),
                headers={"Content-Type": "application/json"},
            ) as response:
                body = await read_ok_answer(
                    response, size_bytes_max=self.response_bytes_max, what="introspection"
                )
            document = orjson.loads(body)
            _check_document(document)
        except (httpx.HTTPError, httpx.InvalidURL, ValueError) as exc:
            # Never the token in the log: it is a bearer credential.
            log.warning("token introspection at %s failed: %s", self.url, exc)
            raise IntrospectionUnavailable(
                "the authorization server could not be asked about this token; try again later"
            ) from exc
        result: dict[str, Any] = document
        return result

    async def aclose(self) -> None:
        await self._http.aclose()


class CachedIntrospector:
    """Another introspector's active answers, kept for `ttl_s` by token and question."""

    def __init__(self, inner: Introspector, *, ttl_s: float, count_max: int) -> None:
        self.inner = inner
        self._answers: TtlCache[tuple[str, bytes], dict[str, Any] | None] = TtlCache(
            ttl_s=ttl_s, count_max=count_max, keeps_none=False
        )

    async def introspect(
        self, token: str, access: Sequence[AccessItem] | None = None
    ) -> dict[str, Any]:
        async def ask(key: tuple[str, bytes]) -> dict[str, Any] | None:
            document = await self.inner.introspect(token, access)
            return document if document.get("active") else None

        question = b"" if access is None else orjson.dumps(list(access))
        # The token's hash, not the token: the cache holds no credential.
        found = await self._answers.get_or_load((token_sha256(token), question), ask)
        return dict(INACTIVE) if found is None else found

    async def aclose(self) -> None:
        await self.inner.aclose()


def _check_document(document: Any) -> None:
    """ValueError unless `document` is an introspection answer: a wrong listener (another
    service at that address) must not read as a grant."""
    if not isinstance(document, dict) or not isinstance(document.get("active"), bool):
        raise ValueError("not an introspection answer")
    if document["active"] and not (
        isinstance(document.get("grant"), str)
        and isinstance(document.get("access"), list)
        and all(isinstance(item, dict) for item in document["access"])
        and isinstance(document.get("client"), dict)
    ):
        raise ValueError("an active answer without grant, access and client")
