"""ClientKeys: a client's keys fetched from `{wallet address}/jwks.json` (an httpx
MockTransport stands in for the client's ASE) or read from this ASE's own database.

A fake monotonic clock stands in for time, so lifetimes are tested without sleeping.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any, Final

import httpx
import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.rsa import generate_private_key
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sqlalchemy.ext.asyncio import async_sessionmaker
from starlette.applications import Starlette

import opase.security.client_keys as client_keys_module
from opase.security.client_keys import (
    JWKS_KEY_COUNT_MAX,
    ClientKey,
    ClientKeys,
    cache_lifetime_s,
    client_key_from_jwk,
    is_loopback_host,
    jwk_thumbprint,
)
from opase.security.httpsig import SignatureRejected
from opase.settings import Settings
from opase.wallets.directory import find_active_wallet_address, revoke_key
from tests.signing import ClientIdentity, register_client
from tests.world import PUBLIC_URL

CLIENT_URL: Final = "https://client.example/alice"
JWKS_URL: Final = CLIENT_URL + "/jwks.json"
CACHE_S: Final = 60
CACHE_S_MAX: Final = 300
NEGATIVE_CACHE_S: Final = 5
BYTES_MAX: Final = 4096
# RFC 8037 Appendix A.2's public key and, A.3, its RFC 7638 thumbprint.
RFC8037_X: Final = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
RFC8037_THUMBPRINT: Final = "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"


class FakeClock:
    """Stands in for the `time` module inside opase.security.client_keys."""

    def __init__(self) -> None:
        self.now_s = 1000.0

    def monotonic(self) -> float:
        return self.now_s

    def advance(self, seconds: float) -> None:
        self.now_s += seconds


Responder = Callable[[httpx.Request], httpx.Response | Awaitable[httpx.Response]]


class KeyServer:
    """The client's ASE: serves `keys` as a JWKS with `headers`, unless `respond` is set;
    records every request it gets."""

    def __init__(self) -> None:
        self.keys: list[Any] = []
        self.headers: dict[str, str] = {}
        self.respond: Responder | None = None
        self.requests: list[httpx.Request] = []

    async def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.respond is not None:
            response = self.respond(request)
            return await response if isinstance(response, Awaitable) else response
        return httpx.Response(200, json={"keys": self.keys}, headers=self.headers)

    @property
    def request_count(self) -> int:
        return len(self.requests)


MakeKeys = Callable[..., ClientKeys]


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(client_keys_module, "time", fake)
    return fake


@pytest.fixture
def server() -> KeyServer:
    return KeyServer()


@pytest.fixture
async def make_keys(tmp_path: Path, server: KeyServer, clock: FakeClock) -> AsyncIterator[MakeKeys]:
    """ClientKeys on `server`, with settings overridable; closed after the test."""
    async with AsyncExitStack() as stack:

        def make(**overrides: Any) -> ClientKeys:
            fields: dict[str, Any] = {
                "public_url": PUBLIC_URL,
                "data_dir": tmp_path,
                "client_keys_cache_s": CACHE_S,
                "client_keys_cache_s_max": CACHE_S_MAX,
                "client_keys_negative_cache_s": NEGATIVE_CACHE_S,
                "client_keys_bytes_max": BYTES_MAX,
            }
            settings = Settings(**(fields | overrides))
            # Remote wallet addresses never touch the database.
            keys = ClientKeys(
                settings, async_sessionmaker(), transport=httpx.MockTransport(server.handle)
            )
            stack.push_async_callback(keys.close)
            return keys

        yield make


@pytest.fixture
def keys(make_keys: MakeKeys) -> ClientKeys:
    return make_keys()


@pytest.fixture
def alice() -> ClientIdentity:
    return ClientIdentity(CLIENT_URL, "key-a")


async def rejection(keys: ClientKeys, url: str, key_id: str) -> str:
    with pytest.raises(SignatureRejected) as raised:
        await keys.key(url, key_id)
    return raised.value.reason


def raw_public(key: ClientKey | ClientIdentity) -> bytes:
    public = key.public_key if isinstance(key, ClientKey) else key.private_key.public_key()
    return public.public_bytes(Encoding.Raw, PublicFormat.Raw)


# --- the thumbprint and the JWK ---------------------------------------------------------------


def test_jwk_thumbprint_matches_rfc8037_appendix_a3() -> None:
    assert jwk_thumbprint("Ed25519", "OKP", RFC8037_X) == RFC8037_THUMBPRINT


def test_client_key_from_jwk_carries_the_rfc7638_thumbprint() -> None:
    jwk = {"kid": "k", "alg": "EdDSA", "kty": "OKP", "crv": "Ed25519", "x": RFC8037_X}
    key = client_key_from_jwk(jwk | {"use": "sig", "extra": "ignored"})
    assert key.key_id == "k"
    assert key.thumbprint == RFC8037_THUMBPRINT
    assert dict(key.jwk) == jwk


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({"kty": "RSA"}, id="kty-rsa"),
        pytest.param({"crv": "Ed448"}, id="crv-ed448"),
        pytest.param({"crv": "X25519"}, id="crv-x25519"),
        pytest.param({"alg": "ES256"}, id="alg-es256"),
        pytest.param({"alg": None}, id="no-alg"),
        pytest.param({"use": "enc"}, id="use-enc"),
        pytest.param({"kid": ""}, id="empty-kid"),
        pytest.param({"kid": 7}, id="kid-not-string"),
        pytest.param({"x": RFC8037_X[:-4]}, id="x-31-bytes"),
        pytest.param({"x": RFC8037_X + "AAAA"}, id="x-35-bytes"),
        pytest.param({"x": RFC8037_X + "="}, id="x-padded"),
        pytest.param({"x": "!!!!"}, id="x-not-base64url"),
        pytest.param({"x": ""}, id="x-empty"),
        pytest.param({"x": None}, id="no-x"),
    ],
)
def test_client_key_from_jwk_refuses_what_is_not_an_ed25519_signing_key(
    change: dict[str, Any],
) -> None:
    jwk: dict[str, Any] = {"kid": "k", "alg": "EdDSA", "kty": "OKP", "crv": "Ed25519"}
    jwk["x"] = RFC8037_X
    jwk = {name: value for name, value in (jwk | change).items() if value is not None}
    with pytest.raises(ValueError):
        client_key_from_jwk(jwk)


def test_client_key_from_jwk_refuses_what_is_not_an_object() -> None:
    with pytest.raises(ValueError):
        client_key_from_jwk(["kid", "k"])


# --- cache lifetimes --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cache_control", "default_s", "max_s", "expected_s"),
    [
        (None, 60, 300, 60),
        (None, 600, 300, 300),
        ("max-age=30", 60, 300, 30),
        ("public, max-age=30", 60, 300, 30),
        ("max-age=30, must-revalidate", 60, 300, 30),
        ("MAX-AGE=45", 60, 300, 45),
        ('max-age="45"', 60, 300, 45),
        ("max-age=0", 60, 300, 0),
        ("max-age=100000", 60, 300, 300),
        ("public", 60, 300, 60),
        ("max-age=abc", 60, 300, 60),
        ("s-maxage=10", 60, 300, 60),
        ("no-store", 60, 300, 0),
        ("no-cache", 60, 300, 0),
        ("max-age=30, no-store", 60, 300, 0),
        ('no-cache="Set-Cookie", max-age=30', 60, 300, 0),
        ("NO-STORE", 60, 300, 0),
    ],
)
def test_cache_lifetime_s(
    cache_control: str | None, default_s: int, max_s: int, expected_s: int
) -> None:
    assert cache_lifetime_s(cache_control, default_s=default_s, max_s=max_s) == expected_s


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("localhost", True),
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("::1", True),
        ("10.0.0.1", False),
        ("0.0.0.0", False),
        ("localhost.example", False),
        ("127.0.0.1.nip.io", False),
        ("client.example", False),
    ],
)
def test_is_loopback_host(host: str, loopback: bool) -> None:
    assert is_loopback_host(host) is loopback


# --- remote keys ------------------------------------------------------------------------------


async def test_remote_key_is_fetched_from_jwks_json_and_found_by_kid(
    keys: ClientKeys, server: KeyServer, alice: ClientIdentity
) -> None:
    other = ClientIdentity(CLIENT_URL, "key-b")
    server.keys = [other.jwk, alice.jwk]
    key = await keys.key(CLIENT_URL, "key-a")
    assert key.key_id == "key-a"
    assert raw_public(key) == raw_public(alice)
    assert key.thumbprint == alice.thumbprint
    assert [(r.method, str(r.url)) for r in server.requests] == [("GET", JWKS_URL)]
    assert server.requests[0].headers["accept"] == "application/json"


async def test_trailing_slash_of_wallet_address_is_not_doubled(
    keys: ClientKeys, server: KeyServer, alice: ClientIdentity
) -> None:
    server.keys = [alice.jwk]
    await keys.key(CLIENT_URL + "/", "key-a")
    assert str(server.requests[0].url) == JWKS_URL


async def test_second_lookup_within_ttl_makes_no_request(
    keys: ClientKeys, server: KeyServer, clock: FakeClock, alice: ClientIdentity
) -> None:
    server.keys = [alice.jwk, ClientIdentity(CLIENT_URL, "key-b").jwk]
    await keys.key(CLIENT_URL, "key-a")
    clock.advance(CACHE_S - 1)
    await keys.key(CLIENT_URL, "key-a")
    await keys.key(CLIENT_URL, "key-b")
    assert server.request_count == 1


@pytest.mark.parametrize(
    ("cache_control", "lifetime_s"),
    [
        pytest.param("max-age=30", 30, id="max-age"),
        pytest.param("max-age=100000", CACHE_S_MAX, id="max-age-clamped"),
        pytest.param(None, CACHE_S, id="no-cache-control"),
    ],
)
async def test_fetched_keys_are_kept_for_their_cache_lifetime(
    keys: ClientKeys,
    server: KeyServer,
    clock: FakeClock,
    alice: ClientIdentity,
    cache_control: str | None,
    lifetime_s: int,
) -> None:
    server.keys = [alice.jwk]
    if cache_control is not None:
        server.headers = {"Cache-Control": cache_control}
    await keys.key(CLIENT_URL, "key-a")
    clock.advance(lifetime_s - 1)
    await keys.key(CLIENT_URL, "key-a")
    assert server.request_count == 1
    clock.advance(2)
    await keys.key(CLIENT_URL, "key-a")
    assert server.request_count == 2


@pytest.mark.parametrize("cache_control", ["no-store", "no-cache", "max-age=0"])
async def test_uncacheable_keys_are_fetched_for_every_lookup(
    keys: ClientKeys, server: KeyServer, alice: ClientIdentity, cache_control: str
) -> None:
    server.keys = [alice.jwk]
    server.headers = {"Cache-Control": cache_control}
    await keys.key(CLIENT_URL, "key-a")
    await keys.key(CLIENT_URL, "key-a")
    assert server.request_count == 2


async def test_key_revoked_by_client_ase_stops_working_when_ttl_passes(
    keys: ClientKeys, server: KeyServer, clock: FakeClock, alice: ClientIdentity
) -> None:
    server.keys = [alice.jwk]
    server.headers = {"Cache-Control": "max-age=30"}
    await keys.key(CLIENT_URL, "key-a")
    server.keys = [ClientIdentity(CLIENT_URL, "key-b").jwk]
    clock.advance(31)
    assert await rejection(keys, CLIENT_URL, "key-a") == "unknown_key"


async def test_unknown_kid_refetches_at_most_once_per_negative_period(
    keys: ClientKeys, server: KeyServer, clock: FakeClock, alice: ClientIdentity
) -> None:
    server.keys = [alice.jwk]
    # Just fetched: a missing kid is not worth asking again at once.
    assert await rejection(keys, CLIENT_URL, "key-b") == "unknown_key"
    assert server.request_count == 1
    clock.advance(NEGATIVE_CACHE_S - 1)
    assert await rejection(keys, CLIENT_URL, "key-b") == "unknown_key"
    assert server.request_count == 1
    clock.advance(2)
    for _ in range(10):
        assert await rejection(keys, CLIENT_URL, "key-b") == "unknown_key"
    assert server.request_count == 2
    # The known key is still served from the cache meanwhile.
    await keys.key(CLIENT_URL, "key-a")
    assert server.request_count == 2


async def test_kid_added_remotely_is_found_by_the_unknown_kid_refetch(
    keys: ClientKeys, server: KeyServer, clock: FakeClock, alice: ClientIdentity
) -> None:
    server.keys = [alice.jwk]
    await keys.key(CLIENT_URL, "key-a")
    added = ClientIdentity(CLIENT_URL, "key-b")
    server.keys = [alice.jwk, added.jwk]
    clock.advance(NEGATIVE_CACHE_S + 1)  # well within the TTL
    key = await keys.key(CLIENT_URL, "key-b")
    assert raw_public(key) == raw_public(added)
    assert server.request_count == 2


async def test_failed_unknown_kid_refetch_keeps_known_keys_until_their_ttl(
    keys: ClientKeys, server: KeyServer, clock: FakeClock, alice: ClientIdentity
) -> None:
    """Anyone may send an unknown kid: a refetch that fails must not refuse known keys."""
    server.keys = [alice.jwk]
    await keys.key(CLIENT_URL, "key-a")
    server.respond = lambda _: httpx.Response(503)
    clock.advance(NEGATIVE_CACHE_S + 1)
    assert await rejection(keys, CLIENT_URL, "key-b") == "unknown_key"
    assert server.request_count == 2
    assert (await keys.key(CLIENT_URL, "key-a")).key_id == "key-a"
    # The failed refetch counts for the rate limit.
    assert await rejection(keys, CLIENT_URL, "key-b") == "unknown_key"
    assert server.request_count == 2
    clock.advance(CACHE_S)
    assert await rejection(keys, CLIENT_URL, "key-a") == "client_keys_unavailable"
    assert server.request_count == 3


def oversized(_: httpx.Request) -> httpx.Response:
    return httpx.Response(200, content=b'{"keys": []}' + b" " * BYTES_MAX)


def oversized_streamed(_: httpx.Request) -> httpx.Response:
    """No Content-Length: the limit holds on the bytes received."""

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"keys": ['
        for _ in range(BYTES_MAX // 100 + 1):
            yield b" " * 100
        yield b"]}"

    return httpx.Response(200, content=chunks())


def raising(exception: type[httpx.TransportError]) -> Responder:
    def respond(request: httpx.Request) -> httpx.Response:
        raise exception("the client's ASE is down", request=request)

    return respond


FAILURES: Final[list[Any]] = [
    pytest.param(lambda _: httpx.Response(500), id="500"),
    pytest.param(lambda _: httpx.Response(404), id="404"),
    pytest.param(lambda _: httpx.Response(204), id="204"),
    pytest.param(lambda _: httpx.Response(200, content=b"{not json"), id="invalid-json"),
    pytest.param(lambda _: httpx.Response(200, content=b"\xff\xfe"), id="not-utf8"),
    pytest.param(lambda _: httpx.Response(200, json={"key": []}), id="no-keys"),
    pytest.param(lambda _: httpx.Response(200, json={"keys": {}}), id="keys-not-array"),
    pytest.param(lambda _: httpx.Response(200, json=[]), id="not-an-object"),
    pytest.param(oversized, id="over-bytes-max"),
    pytest.param(oversized_streamed, id="over-bytes-max-streamed"),
    pytest.param(raising(httpx.ConnectError), id="connect-error"),
    pytest.param(raising(httpx.ReadTimeout), id="timeout"),
]


@pytest.mark.parametrize("respond", FAILURES)
async def test_fetch_failure_is_client_keys_unavailable_and_remembered(
    keys: ClientKeys, server: KeyServer, clock: FakeClock, respond: Responder
) -> None:
    server.respond = respond
    assert await rejection(keys, CLIENT_URL, "key-a") == "client_keys_unavailable"
    assert server.request_count == 1
    clock.advance(NEGATIVE_CACHE_S - 1)
    assert await rejection(keys, CLIENT_URL, "key-a") == "client_keys_unavailable"
    assert server.request_count == 1
    clock.advance(2)
    assert await rejection(keys, CLIENT_URL, "key-a") == "client_keys_unavailable"
    assert server.request_count == 2


async def test_keys_are_found_again_once_failure_is_forgotten(
    keys: ClientKeys, server: KeyServer, clock: FakeClock, alice: ClientIdentity
) -> None:
    server.respond = lambda _: httpx.Response(503)
    assert await rejection(keys, CLIENT_URL, "key-a") == "client_keys_unavailable"
    server.respond = None
    server.keys = [alice.jwk]
    clock.advance(NEGATIVE_CACHE_S + 1)
    assert (await keys.key(CLIENT_URL, "key-a")).key_id == "key-a"


async def test_body_of_exactly_bytes_max_is_accepted(
    keys: ClientKeys, server: KeyServer, alice: ClientIdentity
) -> None:
    body = orjson.dumps({"keys": [alice.jwk]})
    body += b" " * (BYTES_MAX - len(body))
    server.respond = lambda _: httpx.Response(200, content=body)
    assert (await keys.key(CLIENT_URL, "key-a")).key_id == "key-a"


async def test_redirect_is_not_followed(
    keys: ClientKeys, server: KeyServer, alice: ClientIdentity
) -> None:
    elsewhere = "https://attacker.example/jwks.json"

    def respond(request: httpx.Request) -> httpx.Response:
        if str(request.url) == elsewhere:
            return httpx.Response(200, json={"keys": [alice.jwk]})
        return httpx.Response(302, headers={"Location": elsewhere})

    server.respond = respond
    assert await rejection(keys, CLIENT_URL, "key-a") == "client_keys_unavailable"
    assert [str(r.url) for r in server.requests] == [JWKS_URL]


@pytest.mark.parametrize(
    "url",
    [
        "http://client.example/alice",
        "ftp://client.example/alice",
        "client.example/alice",
        "https:///alice",
        "https://client.example/alice?kid=1",
        "https://client.example/alice?",
        "https://client.example/alice#keys",
        "https://client.example/alice#",
        "https://@client.example/alice",
        "https://user@client.example/alice",
        "https://user:secret@client.example/alice",
        "https://:secret@client.example/alice",
        "https://[::1/alice",
    ],
)
@pytest.mark.parametrize("allow_loopback_http", [False, True])
async def test_url_that_is_not_plain_https_is_refused_without_a_request(
    make_keys: MakeKeys, server: KeyServer, alice: ClientIdentity, url: str,
    allow_loopback_http: bool,
) -> None:  # fmt: skip
    server.keys = [alice.jwk]
    keys = make_keys(client_keys_allow_loopback_http=allow_loopback_http)
    assert await rejection(keys, url, "key-a") == "client_not_https"
    assert server.request_count == 0


async def test_malformed_port_is_refused_not_raised(keys: ClientKeys, server: KeyServer) -> None:
    # httpx.InvalidURL is no httpx.HTTPError: it must not escape as a server error.
    reason = await rejection(keys, "https://client.example:port/alice", "key-a")
    assert reason == "client_keys_unavailable"
    assert server.request_count == 0


LOOPBACK_URLS: Final = [
    "http://127.0.0.1:8080/alice",
    "http://127.0.0.2/alice",
    "http://[::1]:8080/alice",
    "http://localhost:8080/alice",
]


@pytest.mark.parametrize("url", LOOPBACK_URLS)
async def test_loopback_http_is_refused_by_default(
    keys: ClientKeys, server: KeyServer, alice: ClientIdentity, url: str
) -> None:
    server.keys = [alice.jwk]
    assert await rejection(keys, url, "key-a") == "client_not_https"
    assert server.request_count == 0


@pytest.mark.parametrize("url", LOOPBACK_URLS)
async def test_loopback_http_is_fetched_when_settings_allow_it(
    make_keys: MakeKeys, server: KeyServer, alice: ClientIdentity, url: str
) -> None:
    server.keys = [alice.jwk]
    keys = make_keys(client_keys_allow_loopback_http=True)
    assert (await keys.key(url, "key-a")).key_id == "key-a"
    assert [str(r.url) for r in server.requests] == [url + "/jwks.json"]


@pytest.mark.parametrize(
    "url", ["http://localhost.client.example/alice", "http://127.0.0.1.nip.io/alice"]
)
async def test_loopback_lookalike_is_refused_even_when_loopback_http_is_allowed(
    make_keys: MakeKeys, server: KeyServer, url: str
) -> None:
    keys = make_keys(client_keys_allow_loopback_http=True)
    assert await rejection(keys, url, "key-a") == "client_not_https"
    assert server.request_count == 0


# --- which JWKs count -------------------------------------------------------------------------


def rsa_jwk(key_id: str) -> dict[str, Any]:
    public = generate_private_key(public_exponent=65537, key_size=2048).public_key()
    n = public.public_numbers().n.to_bytes(256, "big")
    return {
        "kid": key_id, "kty": "RSA", "alg": "RS256", "e": "AQAB",
        "n": base64.urlsafe_b64encode(n).rstrip(b"=").decode(),
    }  # fmt: skip


async def test_jwk_that_is_not_ed25519_does_not_hide_the_ed25519_key_of_same_kid(
    keys: ClientKeys, server: KeyServer, alice: ClientIdentity
) -> None:
    server.keys = [rsa_jwk("key-a"), alice.jwk | {"alg": "ES256", "x": "x"}, alice.jwk]
    key = await keys.key(CLIENT_URL, "key-a")
    assert raw_public(key) == raw_public(alice)


@pytest.mark.parametrize(
    "unusable",
    [
        pytest.param(lambda jwk: rsa_jwk(jwk["kid"]), id="rsa"),
        pytest.param(lambda jwk: jwk | {"crv": "X25519"}, id="x25519"),
        pytest.param(lambda jwk: jwk | {"alg": "ES256"}, id="alg-es256"),
        pytest.param(lambda jwk: jwk | {"x": jwk["x"][:-4]}, id="x-too-short"),
        pytest.param(lambda jwk: jwk | {"x": jwk["x"] + "AAAA"}, id="x-too-long"),
        pytest.param(lambda jwk: jwk | {"use": "enc"}, id="use-enc"),
        pytest.param(lambda jwk: "not an object", id="not-an-object"),
    ],
)
async def test_unusable_jwk_is_skipped(
    keys: ClientKeys,
    server: KeyServer,
    alice: ClientIdentity,
    unusable: Callable[[dict[str, str]], Any],
) -> None:
    other = ClientIdentity(CLIENT_URL, "key-b")
    server.keys = [unusable(alice.jwk), other.jwk]
    assert await rejection(keys, CLIENT_URL, "key-a") == "unknown_key"
    assert (await keys.key(CLIENT_URL, "key-b")).key_id == "key-b"


async def test_first_of_two_ed25519_keys_with_same_kid_wins(
    keys: ClientKeys, server: KeyServer, alice: ClientIdentity
) -> None:
    impostor = ClientIdentity(CLIENT_URL, "key-a")
    server.keys = [alice.jwk, impostor.jwk]
    assert raw_public(await keys.key(CLIENT_URL, "key-a")) == raw_public(alice)


async def test_keys_past_jwks_key_count_max_are_ignored(
    make_keys: MakeKeys, server: KeyServer
) -> None:
    keys = make_keys(client_keys_bytes_max=64 * 1024)
    server.keys = [ClientIdentity(CLIENT_URL, f"k{i}").jwk for i in range(JWKS_KEY_COUNT_MAX + 1)]
    await keys.key(CLIENT_URL, f"k{JWKS_KEY_COUNT_MAX - 1}")
    assert await rejection(keys, CLIENT_URL, f"k{JWKS_KEY_COUNT_MAX}") == "unknown_key"


# --- concurrency ------------------------------------------------------------------------------


async def test_concurrent_lookups_of_one_url_share_one_fetch(
    keys: ClientKeys, server: KeyServer, alice: ClientIdentity
) -> None:
    entered, release = asyncio.Event(), asyncio.Event()

    async def slow(_: httpx.Request) -> httpx.Response:
        entered.set()
        await release.wait()
        return httpx.Response(200, json={"keys": [alice.jwk]})

    server.respond = slow
    lookups = [asyncio.create_task(keys.key(CLIENT_URL, "key-a")) for _ in range(20)]
    # Every lookup started before the first fetch got its answer.
    await entered.wait()
    release.set()
    found = await asyncio.gather(*lookups)
    assert {key.thumbprint for key in found} == {alice.thumbprint}
    assert server.request_count == 1


async def test_concurrent_lookups_share_one_failure(keys: ClientKeys, server: KeyServer) -> None:
    entered, release = asyncio.Event(), asyncio.Event()

    async def slow_failure(_: httpx.Request) -> httpx.Response:
        entered.set()
        await release.wait()
        return httpx.Response(500)

    server.respond = slow_failure
    lookups = [asyncio.create_task(rejection(keys, CLIENT_URL, "key-a")) for _ in range(20)]
    await entered.wait()
    release.set()
    assert set(await asyncio.gather(*lookups)) == {"client_keys_unavailable"}
    assert server.request_count == 1


async def test_different_urls_are_fetched_and_cached_apart(
    keys: ClientKeys, server: KeyServer, alice: ClientIdentity
) -> None:
    bob = ClientIdentity("https://client.example/bob", "key-a")
    by_url = {JWKS_URL: alice.jwk, bob.wallet_address_url + "/jwks.json": bob.jwk}
    server.respond = lambda request: httpx.Response(200, json={"keys": [by_url[str(request.url)]]})
    assert raw_public(await keys.key(CLIENT_URL, "key-a")) == raw_public(alice)
    assert raw_public(await keys.key(bob.wallet_address_url, "key-a")) == raw_public(bob)
    assert raw_public(await keys.key(CLIENT_URL, "key-a")) == raw_public(alice)
    assert server.request_count == 2


# --- local wallet addresses -------------------------------------------------------------------


@pytest.fixture
async def local_keys(app: Starlette, server: KeyServer) -> AsyncIterator[ClientKeys]:
    """The app's settings and database, with `server` to show nothing goes over http."""
    services = app.state.services
    keys = ClientKeys(
        app.state.settings, services.sessions, transport=httpx.MockTransport(server.handle)
    )
    yield keys
    await keys.close()


async def test_local_wallet_address_key_is_read_from_the_database(
    local_keys: ClientKeys, server: KeyServer, app: Starlette
) -> None:
    identity = await register_client(app)
    assert identity.wallet_address_url.startswith(PUBLIC_URL + "/")
    key = await local_keys.key(identity.wallet_address_url, identity.key_id)
    assert key.thumbprint == identity.thumbprint
    assert raw_public(key) == raw_public(identity)
    assert server.request_count == 0


async def test_local_key_revoked_and_forgotten_stops_working_at_once(
    app: Starlette, server: KeyServer
) -> None:
    services = app.state.services
    identity = await register_client(app, "/client-app")
    await services.client_keys.key(identity.wallet_address_url, identity.key_id)
    async with services.sessions() as session:
        record = await find_active_wallet_address(session, "/client-app")
        assert record is not None
        await revoke_key(session, record.id, identity.key_id)
        await session.commit()
    services.forget_wallet_address("/client-app")
    with pytest.raises(SignatureRejected) as raised:
        await services.client_keys.key(identity.wallet_address_url, identity.key_id)
    assert raised.value.reason == "unknown_key"


@pytest.mark.parametrize("path", ["/nobody", "/client-app/more", "/"])
async def test_unknown_local_wallet_address_is_unknown_client(
    local_keys: ClientKeys, server: KeyServer, app: Starlette, path: str
) -> None:
    await register_client(app, "/client-app")
    assert await rejection(local_keys, PUBLIC_URL + path, "client-key-1") == "unknown_client"
    assert server.request_count == 0


async def test_local_unknown_kid_is_unknown_key(
    local_keys: ClientKeys, server: KeyServer, app: Starlette
) -> None:
    identity = await register_client(app)
    assert await rejection(local_keys, identity.wallet_address_url, "other-key") == "unknown_key"
    assert server.request_count == 0
