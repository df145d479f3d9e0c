"""Client keys: the public key a request must be signed with, by wallet address and `kid`.

A client's keys are published at `{client wallet address}/jwks.json`. Wallet addresses of
this ASE are read from its own database (a key revoked here stops working at once in this
process); others are fetched over https and kept for the answer's Cache-Control max-age,
bounded by `client_keys_cache_s_max`. A failed fetch is remembered for
`client_keys_negative_cache_s`, so a client with a broken key server costs one fetch per
that period, not one per request; an unknown `kid` triggers at most one refetch per period
(a key just added by the client's ASE is found without waiting for the TTL).
"""

from __future__ import annotations

import asyncio
import binascii
import hashlib
import ipaddress
import logging
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

import httpx
import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from opase import base64url
from opase.bounded_read import read_ok_answer
from opase.security.httpsig import SignatureRejected
from opase.settings import Settings
from opase.wallets.directory import find_active_wallet_address, list_active_keys

log = logging.getLogger("opase.web.authentication")

CACHE_COUNT_MAX: Final = 10_000
JWKS_KEY_COUNT_MAX: Final = 100
ED25519_PUBLIC_KEY_BYTES: Final = 32
_MAX_AGE = re.compile(r"(?:^|,)\s*max-age\s*=\s*\"?(\d{1,10})\"?\s*(?:,|$)", re.IGNORECASE)
_NO_CACHE = re.compile(r"(?:^|,)\s*(?:no-store|no-cache)\s*(?:,|$|=)", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class ClientKey:
    key_id: str
    public_key: Ed25519PublicKey
    thumbprint: str
    """RFC 7638 SHA-256 thumbprint: the same key under the same `kid` has the same one."""
    jwk: Mapping[str, str]


def jwk_thumbprint(crv: str, kty: str, x: str) -> str:
    # RFC 7638 3.2: the required members only, in lexicographic order, no whitespace.
    canonical = orjson.dumps({"crv": crv, "kty": kty, "x": x})
    return base64url.encode(hashlib.sha256(canonical).digest())


def client_key_from_jwk(jwk: Any) -> ClientKey:
    """An Ed25519 verification key from a JWK (RFC 8037), or ValueError saying what is wrong."""
    if not isinstance(jwk, Mapping):
        raise ValueError("a JWK is a JSON object")
    key_id = jwk.get("kid")
    if not isinstance(key_id, str) or not key_id:
        raise ValueError("the JWK has no kid")
    if jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519":
        raise ValueError("only Ed25519 keys (kty OKP, crv Ed25519) sign Open Payments requests")
    if jwk.get("alg") != "EdDSA":
        raise ValueError("the JWK's alg must be EdDSA")
    if jwk.get("use", "sig") != "sig":
        raise ValueError("the JWK is not a signing key")
    x = jwk.get("x")
    if not isinstance(x, str) or not x or "=" in x:
        raise ValueError("the JWK's x is not base64url")
    try:
        raw = base64url.decode(x)
    except (binascii.Error, ValueError):
        raise ValueError("the JWK's x is not base64url") from None
    if len(raw) != ED25519_PUBLIC_KEY_BYTES:
        raise ValueError("the JWK's x is not a 32-byte Ed25519 public key")
    return ClientKey(
        key_id=key_id,
        public_key=Ed25519PublicKey.from_public_bytes(raw),
        thumbprint=jwk_thumbprint("Ed25519", "OKP", x),
        jwk={"kid": key_id, "alg": "EdDSA", "kty": "OKP", "crv": "Ed25519", "x": x},
    )


def cache_lifetime_s(cache_control: str | None, *, default_s: int, max_s: int) -> int:
    """How long an answer may be reused: its max-age (no-store/no-cache: not at all), or
    `default_s` without a Cache-Control, never more than `max_s`."""
    if cache_control is None:
        return min(default_s, max_s)
    if _NO_CACHE.search(cache_control):
        return 0
    found = _MAX_AGE.search(cache_control)
    if found is None:
        return min(default_s, max_s)
    return min(int(found.group(1)), max_s)


def is_loopback_host(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(slots=True)
class _KeySet:
    keys: dict[str, ClientKey] | None
    """None: the keys could not be had; `failure` says why."""
    failure: str
    loaded_at_s: float
    expires_at_s: float


class ClientKeys:
    def __init__(
        self,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self._transport = transport
        self._http: httpx.AsyncClient | None = None
        self._key_sets: dict[str, _KeySet] = {}
        self._loading: dict[str, asyncio.Future[_KeySet]] = {}
        self._local_prefix = settings.public_url + "/"

    async def key(self, wallet_address_url: str, key_id: str) -> ClientKey:
        """The client's key `key_id`, or SignatureRejected."""
        key_set = await self._key_set(wallet_address_url, refresh_older_than_s=None)
        if key_set.keys is not None and key_id not in key_set.keys:
            # Maybe a key added since we looked: look again, at most once per period.
            key_set = await self._key_set(
                wallet_address_url,
                refresh_older_than_s=self.settings.client_keys_negative_cache_s,
            )
        if key_set.keys is None:
            raise SignatureRejected(key_set.failure)
        found = key_set.keys.get(key_id)
        if found is None:
            raise SignatureRejected("unknown_key")
        return found

    def forget(self, wallet_address_url: str) -> None:
        """Call after this process changed the wallet address's keys."""
        self._key_sets.pop(wallet_address_url, None)

    async def close(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    async def _key_set(self, url: str, *, refresh_older_than_s: int | None) -> _KeySet:
        now_s = time.monotonic()
        cached = self._key_sets.get(url)
        if cached is not None and cached.expires_at_s > now_s:
            if refresh_older_than_s is None or now_s - cached.loaded_at_s < refresh_older_than_s:
                return cached
        # One load per wallet address at a time; concurrent requests share its result.
        pending = self._loading.get(url)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[_KeySet] = asyncio.get_running_loop().create_future()
        self._loading[url] = future
        try:
            key_set = self._kept_on_failure(url, await self._load(url))
            future.set_result(key_set)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: no "never retrieved" warning when nobody waits
            raise
        finally:
            del self._loading[url]
        self._remember(url, key_set)
        return key_set

    def _kept_on_failure(self, url: str, loaded: _KeySet) -> _KeySet:
        """A failed refetch (for an unknown `kid`, which anyone can send) keeps the keys still
        within their lifetime: it must not turn a passing outage into refusing known keys."""
        cached = self._key_sets.get(url)
        if loaded.keys is not None or cached is None or cached.keys is None:
            return loaded
        if cached.expires_at_s <= loaded.loaded_at_s:
            return loaded
        # Loaded now, as far as the refetch rate limit goes.
        return _KeySet(cached.keys, "", loaded.loaded_at_s, cached.expires_at_s)

    def _remember(self, url: str, key_set: _KeySet) -> None:
        self._key_sets.pop(url, None)
        if key_set.expires_at_s <= key_set.loaded_at_s:
            return
        if len(self._key_sets) >= CACHE_COUNT_MAX:
            del self._key_sets[next(iter(self._key_sets))]  # the oldest
        self._key_sets[url] = key_set
        assert len(self._key_sets) <= CACHE_COUNT_MAX

    async def _load(self, url: str) -> _KeySet:
        if url.startswith(self._local_prefix):
            return await self._load_local(url[len(self.settings.public_url) :])
        return await self._fetch(url)

    def _key_set_of(self, jwks: Any, lifetime_s: float, failure: str = "") -> _KeySet:
        now_s = time.monotonic()
        if failure:
            lifetime_s = self.settings.client_keys_negative_cache_s
            return _KeySet(None, failure, now_s, now_s + lifetime_s)
        keys: dict[str, ClientKey] = {}
        for jwk in jwks[:JWKS_KEY_COUNT_MAX]:
            try:
                key = client_key_from_jwk(jwk)
            except ValueError as exc:
                log.info("client key skipped: %s", exc)
                continue
            keys.setdefault(key.key_id, key)
        return _KeySet(keys, "", now_s, now_s + lifetime_s)

    async def _load_local(self, path: str) -> _KeySet:
        async with self.sessions() as session:
            record = await find_active_wallet_address(session, path)
            if record is None:
                return self._key_set_of(None, 0, failure="unknown_client")
            jwks = await list_active_keys(session, record.id)
        return self._key_set_of(jwks, self.settings.client_keys_cache_s)

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(
                transport=self._transport,
                timeout=httpx.Timeout(self.settings.client_keys_fetch_timeout_s),
                follow_redirects=False,
                # Where keys come from is the client's claim, not the environment's.
                trust_env=False,
                headers={"Accept": "application/json"},
            )
        return self._http

    def fetchable(self, url: str) -> bool:
        """https, or http to a loopback address when the settings allow it (sandbox)."""
        try:
            parts = urlsplit(url)
        except ValueError:  # e.g. an unclosed IPv6 bracket
            return False
        # An empty query or fragment counts too: "/alice?" + "/jwks.json" would fetch /alice.
        if "?" in url or "#" in url or "@" in parts.netloc:
            return False
        if not parts.hostname:
            return False
        if parts.scheme == "https":
            return True
        return (
            parts.scheme == "http"
            and self.settings.client_keys_allow_loopback_http
            and is_loopback_host(parts.hostname)
        )

    async def _fetch(self, url: str) -> _KeySet:
        if not self.fetchable(url):
            return self._key_set_of(None, 0, failure="client_not_https")
        settings = self.settings
        jwks_url = url.rstrip("/") + "/jwks.json"
        try:
            async with self._client().stream("GET", jwks_url) as response:
                body = await read_ok_answer(
                    response, size_bytes_max=settings.client_keys_bytes_max, what="client JWKS"
                )
                lifetime_s = cache_lifetime_s(
                    response.headers.get("cache-control"),
                    default_s=settings.client_keys_cache_s,
                    max_s=settings.client_keys_cache_s_max,
                )
            document = orjson.loads(body)
            jwks = document.get("keys") if isinstance(document, dict) else None
            if not isinstance(jwks, list):
                raise ValueError("the client's JWKS has no keys array")
        except (httpx.HTTPError, httpx.InvalidURL, ValueError) as exc:
            # orjson.JSONDecodeError is a ValueError; httpx.InvalidURL (e.g. a bad port) is not
            # an httpx.HTTPError.
            log.info("client keys %s: %s", jwks_url, exc)
            return self._key_set_of(None, 0, failure="client_keys_unavailable")
        return self._key_set_of(jwks, lifetime_s)
