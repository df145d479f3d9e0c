"""Whatever arrives in Signature-Input, Signature, Content-Digest or Authorization, the answer
is a 401 (or the request verifies), never a 500: the structured-field parser's input is the
attacker's. Hypothesis drives both the parser directly (many cases, fast) and the whole app
(fewer cases, every layer)."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette

from opase.app import build_app
from opase.security.httpsig import (
    Message,
    SignatureRejected,
    check_components,
    check_content_digest,
    parse_signature,
)
from opase.settings import Settings
from opase.storage.migrate import upgrade
from tests.client import CheckedClient
from tests.signing import ClientIdentity, IssuedGrant, issue_grant, register_client
from tests.world import PUBLIC_URL

QUOTE = {
    "walletAddress": f"{PUBLIC_URL}/alice",
    "receiver": f"{PUBLIC_URL}/op/incoming-payments/8c1f2a53-0d6e-4b52-8a40-6f8a8f3e9b11",
    "method": "ilp",
}
VALID_INPUT = (
    'sig1=("@method" "@target-uri" "authorization");keyid="client-key-1";created=1732000000'
)
VALID_SIGNATURE = "sig1=:" + base64.b64encode(bytes(64)).decode() + ":"
VALID_DIGEST = "sha-512=:" + base64.b64encode(bytes(64)).decode() + ":"

# Field values as a client can send them: visible ASCII, space, tab, obs-text; no CR/LF/NUL.
FIELD_CHARACTERS = st.sampled_from(
    [chr(c) for c in range(0x20, 0x7F)] + ["\t"] + [chr(c) for c in range(0x80, 0x100, 7)]
)
STRUCTURED_PIECES = st.sampled_from(
    [
        "sig1", "sig2", "=", "(", ")", '"', "@method", "@target-uri", "@query", "@path",
        "@signature-params", "@status", "authorization", "content-digest", ";", "keyid",
        "created", "expires", "alg", "nonce", "tag", "ed25519", "rsa-pss-sha512", ":", ",",
        " ", "1732000000", "-1", "99999999999999999999", "?1", "?0", "1.5", "*", "%\"",
        "sha-512", "sha-256", "md5", "AAAA", "=:", "\\", ";sf", ";key=\"a\"", ";req", "@",
        "@Method", "Sig1", "\t", "é",
    ]
)  # fmt: skip


def mutations_of(valid: str) -> st.SearchStrategy[str]:
    """A valid header with a slice replaced: close to right is where parsers go wrong."""

    @st.composite
    def mutate(draw: st.DrawFn) -> str:
        start = draw(st.integers(0, len(valid)))
        end = draw(st.integers(start, len(valid)))
        middle = draw(st.text(FIELD_CHARACTERS, max_size=8) | STRUCTURED_PIECES)
        return valid[:start] + middle + valid[end:]

    return mutate()


def field_values(valid: str) -> st.SearchStrategy[str]:
    return st.one_of(
        st.text(FIELD_CHARACTERS, max_size=200),
        st.lists(STRUCTURED_PIECES, max_size=30).map("".join),
        mutations_of(valid),
        st.just(valid),
        st.text(FIELD_CHARACTERS, min_size=4000, max_size=5000),
    )


def message(signature_input: str, signature: str, digest: str | None, body: bytes) -> Message:
    headers = {"signature-input": [signature_input], "signature": [signature]}
    if digest is not None:
        headers["content-digest"] = [digest]
    return Message("POST", f"{PUBLIC_URL}/op/quotes", headers, body)


@settings(max_examples=1000, deadline=None)
@given(
    signature_input=field_values(VALID_INPUT),
    signature=field_values(VALID_SIGNATURE),
    digest=st.none() | field_values(VALID_DIGEST),
    body=st.binary(max_size=64),
)
def test_the_parser_refuses_cleanly_or_accepts(
    signature_input: str, signature: str, digest: str | None, body: bytes
) -> None:
    request = message(signature_input, signature, digest, body)
    try:
        parsed = parse_signature(request)
        check_components(parsed, request)
        check_content_digest(request)
    except SignatureRejected as refused:
        assert refused.reason and refused.reason.isidentifier()
        assert refused.status_code == 401
        return
    assert len(parsed.signature) == 64 and parsed.key_id


@pytest.fixture
async def sqlite_app(tmp_path: Path) -> AsyncIterator[Starlette]:
    settings = Settings(public_url=PUBLIC_URL, data_dir=tmp_path, database_url="")
    await upgrade(settings)
    app = build_app(settings)
    yield app
    await app.state.services.close()


@pytest.fixture
async def signed_in(sqlite_app: Starlette) -> tuple[ClientIdentity, IssuedGrant]:
    identity = await register_client(sqlite_app)
    return identity, await issue_grant(sqlite_app, identity)


def as_bytes(value: str) -> bytes:
    return value.encode("latin-1")


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    signature_input=field_values(VALID_INPUT),
    signature=field_values(VALID_SIGNATURE),
    digest=st.none() | field_values(VALID_DIGEST),
    authorization=st.sampled_from(["token", "GNAP ", "Bearer x", "GNAP a b", "gnap token"])
    | st.text(FIELD_CHARACTERS, max_size=40),
    with_body=st.booleans(),
)
async def test_the_app_answers_malformed_signature_headers_with_401(
    sqlite_app: Starlette,
    signed_in: tuple[ClientIdentity, IssuedGrant],
    signature_input: str,
    signature: str,
    digest: str | None,
    authorization: str,
    with_body: bool,
) -> None:
    _, grant = signed_in
    # Half the cases with the live token, so the verifier itself is reached.
    if authorization == "token":
        authorization = f"GNAP {grant.access_token}"
    headers = {
        "Authorization": as_bytes(authorization.strip() or "GNAP x"),
        "Signature-Input": as_bytes(signature_input.strip() or "x"),
        "Signature": as_bytes(signature.strip() or "x"),
    }
    if digest is not None:
        headers["Content-Digest"] = as_bytes(digest.strip() or "x")
    async with CheckedClient(sqlite_app, raise_app_exceptions=False) as client:
        if with_body:
            response = await client.post(f"{PUBLIC_URL}/op/quotes", json=QUOTE, headers=headers)
        else:
            response = await client.get(f"{PUBLIC_URL}/op/quotes/abc", headers=headers)
    assert response.status_code == 401, response.text
    assert response.json()["error"]["code"] in ("invalid_client", "unauthorized")
