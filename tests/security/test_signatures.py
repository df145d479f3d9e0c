"""Signed requests end to end through the app: the RFC 9421 test vector, requests signed by
the official Open Payments library, and one test per attack the verifier must refuse.

A request that passes authentication reaches its handler (404 for an unknown payment, 403
where the grant refuses); one that fails gets 401 with a short reason code.
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from starlette.applications import Starlette

from opase.security.httpsig import (
    Message,
    SignatureRejected,
    check_components,
    check_content_digest,
    content_digest,
    parse_signature,
    signature_base,
    verify_signature,
)
from opase.wallets.directory import add_key, revoke_key, wallet_address_id_by_path
from opase.web.authentication import TOKEN_OPTIONAL
from tests.client import CheckedClient
from tests.node_oracle import sign_with_official_library
from tests.repo import REPO
from tests.responses import reason_of
from tests.signing import (
    ClientIdentity,
    IssuedGrant,
    issue_grant,
    public_x,
    register_client,
    signed,
)
from tests.world import (
    ALICE,
    AUTH,
    AUTHENTICATED,
    INCOMING_PAYMENTS,
    OUTGOING_PAYMENTS,
    PUBLIC_URL,
    Seeded,
)

AUTHENTICATED_POST = 403
"""A signed outgoing payment under an incoming-payment grant once authenticated: the grant
refuses it."""
"""What a resource-server request that passed authentication gets from the handlers still
to come (outgoing payments): the probes below use them."""
GRANTED = 200
"""What a valid grant request that passed authentication gets."""


def outgoing_payment_request() -> dict[str, Any]:
    return {
        "walletAddress": f"{PUBLIC_URL}/alice",
        "quoteId": f"{PUBLIC_URL}/op/quotes/8c1f2a53-0d6e-4b52-8a40-6f8a8f3e9b11",
    }


def grant_request(identity: ClientIdentity) -> dict[str, Any]:
    return {
        "access_token": {"access": [{"type": "incoming-payment", "actions": ["create", "read"]}]},
        "client": {"walletAddress": identity.wallet_address_url},
    }


def covering(
    components: tuple[str, ...],
    request: httpx.Request,
    private_key: Ed25519PrivateKey,
    key_id: str,
    created_s: int,
) -> None:
    """Re-sign `request` over exactly `components`, as a client with other ideas would."""
    message = Message(
        request.method,
        str(request.url),
        {name.decode().lower(): [value.decode()] for name, value in request.headers.raw},
        request.content,
    )
    names = " ".join(f'"{name}"' for name in components)
    params = f'({names});keyid="{key_id}";created={created_s}'
    signature = private_key.sign(signature_base(components, params, message))
    request.headers["Signature-Input"] = f"sig1={params}"
    request.headers["Signature"] = f"sig1=:{base64.b64encode(signature).decode()}:"


# --- RFC 9421 Appendix B.2.6 ---------------------------------------------------------------

B26_PUBLIC_X = "JrQLj5P_89iXES9-vFgrIy29clF9CC_oPPsw3c5D0bs"
B26_SIGNATURE = (
    "wqcAqbmYJ2ji2glfAMaRy4gruYYnx2nEFN2HN6jrnDnQCK1u02Gb04v9EDgwUPiu4A0w6vuQv5lIp5WPpBKRCw=="
)
B26_HEADERS = {
    "host": ["example.com"],
    "date": ["Tue, 20 Apr 2021 02:07:55 GMT"],
    "content-type": ["application/json"],
    "content-digest": [
        "sha-512=:WZDPaVn/7XgHaAy8pmojAkGWoRx2UFChF41A2svX+TaPm+AbwAgBWnrIiYllu7BNNyealdVLvRwEmTHWXvJwew==:"
    ],
    "content-length": ["18"],
    "signature-input": [
        'sig-b26=("date" "@method" "@path" "@authority" "content-type" "content-length")'
        ';created=1618884473;keyid="test-key-ed25519"'
    ],
    "signature": [f"sig-b26=:{B26_SIGNATURE}:"],
}


def b26_message(**changes: Any) -> Message:
    fields: dict[str, Any] = {
        "method": "POST",
        "target_uri": "https://example.com/foo?param=Value&Pet=dog",
        "headers": B26_HEADERS,
        "body": b'{"hello": "world"}',
    }
    return Message(**{**fields, **changes})


def b26_key() -> Ed25519PublicKey:
    raw = base64.urlsafe_b64decode(B26_PUBLIC_X + "=")
    return Ed25519PublicKey.from_public_bytes(raw)


def test_the_rfc9421_b26_ed25519_vector_verifies() -> None:
    message = b26_message()
    parsed = parse_signature(message)
    assert parsed.key_id == "test-key-ed25519" and parsed.created_s == 1618884473
    check_content_digest(message)
    verify_signature(parsed, message, b26_key())  # no age check: the vector is from 2021


@pytest.mark.parametrize(
    "changes",
    [
        {"method": "PUT"},
        {"target_uri": "https://example.com/bar?param=Value&Pet=dog"},
        {"target_uri": "https://example.org/foo?param=Value&Pet=dog"},
        {"headers": {**B26_HEADERS, "content-length": ["19"]}},
    ],
    ids=["method", "path", "authority", "covered-header"],
)
def test_the_b26_signature_fails_on_any_covered_change(changes: dict[str, Any]) -> None:
    message = b26_message(**changes)
    with pytest.raises(SignatureRejected) as refused:
        verify_signature(parse_signature(message), message, b26_key())
    assert refused.value.reason == "bad_signature"


def test_the_b26_request_lacks_the_open_payments_components() -> None:
    # A valid RFC 9421 signature is not enough: Open Payments needs @target-uri covered.
    message = b26_message()
    with pytest.raises(SignatureRejected) as refused:
        check_components(parse_signature(message), message)
    assert refused.value.reason == "uncovered_target_uri"


# --- requests signed by the official library ----------------------------------------------


async def send_node_signed(
    client: CheckedClient, identity: ClientIdentity, request: dict[str, Any]
) -> httpx.Response:
    (produced,) = sign_with_official_library(identity.private_key, identity.key_id, [request])
    body = produced["body"]
    return await client.request(
        request["method"],
        request["url"],
        headers=produced["headers"],
        content=None if body is None else body.encode(),
    )


async def test_official_library_signed_grant_request_verifies(
    client: CheckedClient, identity: ClientIdentity
) -> None:
    request = {"method": "POST", "url": AUTH, "body": grant_request(identity)}
    assert (await send_node_signed(client, identity, request)).status_code == GRANTED


async def test_official_library_signed_request_with_body_and_token_verifies(
    client: CheckedClient, identity: ClientIdentity, grant: IssuedGrant
) -> None:
    request = {
        "method": "POST", "url": OUTGOING_PAYMENTS, "body": outgoing_payment_request(),
        "headers": {"Authorization": f"GNAP {grant.access_token}"},
    }  # fmt: skip
    assert (await send_node_signed(client, identity, request)).status_code == AUTHENTICATED_POST


async def test_official_library_signed_request_without_body_verifies(
    client: CheckedClient, identity: ClientIdentity, grant: IssuedGrant, seeded: Seeded
) -> None:
    request = {
        "method": "GET",
        "url": f"{INCOMING_PAYMENTS}?wallet-address={ALICE}&first=5",
        "headers": {"Authorization": f"GNAP {grant.access_token}"},
    }
    # Authenticated: the handler answered with Alice's (empty) list, not 401.
    response = await send_node_signed(client, identity, request)
    assert response.status_code == 200, response.text
    assert response.json()["result"] == []


async def test_official_library_signature_by_another_key_is_refused(
    client: CheckedClient, identity: ClientIdentity, grant: IssuedGrant
) -> None:
    impostor = ClientIdentity(identity.wallet_address_url, identity.key_id)
    request = {
        "method": "POST", "url": OUTGOING_PAYMENTS, "body": outgoing_payment_request(),
        "headers": {"Authorization": f"GNAP {grant.access_token}"},
    }  # fmt: skip
    assert reason_of(await send_node_signed(client, impostor, request)) == "bad_signature"


# --- our own signer round trip --------------------------------------------------------------


async def test_requests_signed_by_our_signer_verify(
    client: CheckedClient, identity: ClientIdentity, grant: IssuedGrant
) -> None:
    manage = f"{AUTH}/token/{grant.access_token_id}"
    requests = [
        (signed(client, identity, "POST", AUTH, body=grant_request(identity)), GRANTED),
        (signed(client, identity, "POST", OUTGOING_PAYMENTS, body=outgoing_payment_request(), token=grant.access_token),
         AUTHENTICATED_POST),
        (signed(client, identity, "GET", f"{OUTGOING_PAYMENTS}/abc", token=grant.access_token), AUTHENTICATED),
        # Authenticated, then refused by the grant's state (issued already): 401 request_denied.
        (signed(client, identity, "POST", f"{AUTH}/continue/{grant.grant_id}",
                token=grant.continue_token), 401),
        (signed(client, identity, "POST", manage, token=grant.access_token), 200),
    ]  # fmt: skip
    for request, status in requests:
        response = await client.send(request)
        assert response.status_code == status, (request.url, response.text)
        if status == 401:
            assert response.json()["error"]["code"] == "request_denied"


# --- one test per attack --------------------------------------------------------------------


async def test_a_replayed_signature_is_refused(
    client: CheckedClient, identity: ClientIdentity, grant: IssuedGrant
) -> None:
    request = signed(
        client,
        identity,
        "POST",
        OUTGOING_PAYMENTS,
        body=outgoing_payment_request(),
        token=grant.access_token,
    )
    assert (await client.send(request)).status_code == AUTHENTICATED_POST
    replay = client.build_request(
        "POST", OUTGOING_PAYMENTS, content=request.content, headers=request.headers
    )
    assert reason_of(await client.send(replay)) == "replayed_signature"


async def test_an_identical_get_signed_without_nonce_may_repeat(
    client: CheckedClient, identity: ClientIdentity, grant: IssuedGrant
) -> None:
    # The official library signs without a nonce: the same GET twice in one second carries
    # the same signature. A replayed GET changes nothing, so it is not refused.
    request = client.build_request("GET", f"{OUTGOING_PAYMENTS}/abc")
    request.headers["Authorization"] = f"GNAP {grant.access_token}"
    components = ("@method", "@target-uri", "authorization")
    covering(components, request, identity.private_key, identity.key_id, int(time.time()))
    for _ in range(2):
        again = client.build_request("GET", f"{OUTGOING_PAYMENTS}/abc", headers=request.headers)
        assert (await client.send(again)).status_code == AUTHENTICATED


async def test_official_library_signed_directed_identity_grant_request_verifies(
    client: CheckedClient,
) -> None:
    anonymous = ClientIdentity("https://nowhere.example/never-fetched", "jwk-official")
    body = {**grant_request(anonymous), "client": {"jwk": anonymous.jwk}}
    request = {"method": "POST", "url": AUTH, "body": body}
    response = await send_node_signed(client, anonymous, request)
    assert response.status_code == GRANTED, response.text
    token = response.json()["access_token"]["value"]
    probe = await send_node_signed(
        client, anonymous,
        {"method": "GET", "url": f"{OUTGOING_PAYMENTS}/abc", "headers": {"Authorization": f"GNAP {token}"}},
    )  # fmt: skip
    assert probe.status_code == AUTHENTICATED


async def test_a_stale_created_is_refused(
    client: CheckedClient, identity: ClientIdentity, grant: IssuedGrant, app: Starlette
) -> None:
    settings = app.state.settings
    request = client.build_request("GET", f"{OUTGOING_PAYMENTS}/abc")
    request.headers["Authorization"] = f"GNAP {grant.access_token}"
    too_old_s = int(time.time()) - settings.signature_age_s_max - settings.signature_clock_skew_s
    components = ("@method", "@target-uri", "authorization")
    covering(components, request, identity.private_key, identity.key_id, too_old_s - 5)
    assert reason_of(await client.send(request)) == "stale_signature"


async def test_a_created_in_the_future_is_refused(
    client: CheckedClient, identity: ClientIdentity, grant: IssuedGrant, app: Starlette
) -> None:
    request = client.build_request("GET", f"{OUTGOING_PAYMENTS}/abc")
    request.headers["Authorization"] = f"GNAP {grant.access_token}"
    ahead_s = int(time.time()) + app.state.settings.signature_clock_skew_s + 30
    components = ("@method", "@target-uri", "authorization")
    covering(components, request, identity.private_key, identity.key_id, ahead_s)
    assert reason_of(await client.send(request)) == "created_in_future"


async def test_a_signature_by_the_wrong_key_is_refused(
    client: CheckedClient, identity: ClientIdentity, grant: IssuedGrant
) -> None:
    # Same kid, another private key: what a client whose key was stolen-and-replaced sends.
    impostor = ClientIdentity(identity.wallet_address_url, identity.key_id)
    request = signed(client, impostor, "GET", f"{OUTGOING_PAYMENTS}/abc", token=grant.access_token)
    assert reason_of(await client.send(request)) == "bad_signature"


async def test_an_unknown_kid_is_refused(client: CheckedClient, identity: ClientIdentity) -> None:
    stranger = ClientIdentity(identity.wallet_address_url, "no-such-key")
    request = signed(client, stranger, "POST", AUTH, body=grant_request(identity))
    assert reason_of(await client.send(request)) == "unknown_key"


async def test_a_revoked_kid_is_refused_at_once(
    client: CheckedClient, identity: ClientIdentity, app: Starlette
) -> None:
    first = signed(client, identity, "POST", AUTH, body=grant_request(identity))
    assert (await client.send(first)).status_code == GRANTED  # the key is now cached
    services = app.state.services
    async with services.sessions() as session:
        wallet_id = await wallet_address_id_by_path(session, "/client-app")
        await revoke_key(session, wallet_id, identity.key_id)
        await session.commit()
    services.forget_wallet_address("/client-app")  # what the admin API does after a change
    again = signed(client, identity, "POST", AUTH, body=grant_request(identity))
    assert reason_of(await client.send(again)) == "unknown_key"


@pytest.mark.parametrize(
    ("components", "reason"),
    [
        (("@target-uri", "authorization"), "uncovered_method"),
        (("@method", "authorization"), "uncovered_target_uri"),
        (("@method", "@target-uri"), "uncovered_authorization"),
    ],
)
async def test_a_missing_required_component_is_refused(
    client: CheckedClient,
    identity: ClientIdentity,
    grant: IssuedGrant,
    components: tuple[str, ...],
    reason: str,
) -> None:
    request = client.build_request("GET", f"{OUTGOING_PAYMENTS}/abc")
    request.headers["Authorization"] = f"GNAP {grant.access_token}"
    covering(components, request, identity.private_key, identity.key_id, int(time.time()))
    assert reason_of(await client.send(request)) == reason


@pytest.mark.parametrize("component", ["content-digest", "content-length", "content-type"])
async def test_a_body_component_left_uncovered_is_refused(
    client: CheckedClient, identity: ClientIdentity, grant: IssuedGrant, component: str
) -> None:
    request = signed(
        client,
        identity,
        "POST",
        OUTGOING_PAYMENTS,
        body=outgoing_payment_request(),
        token=grant.access_token,
    )
    every = (
        "@method",
        "@target-uri",
        "authorization",
        *("content-digest", "content-length", "content-type"),
    )
    fewer = tuple(name for name in every if name != component)
    covering(fewer, request, identity.private_key, identity.key_id, int(time.time()))
    assert reason_of(await client.send(request)) == f"uncovered_{component.replace('-', '_')}"


async def test_a_tampered_body_with_the_old_digest_is_refused(
    client: CheckedClient, identity: ClientIdentity, grant: IssuedGrant
) -> None:
    request = signed(
        client,
        identity,
        "POST",
        OUTGOING_PAYMENTS,
        body=outgoing_payment_request(),
        token=grant.access_token,
    )
    tampered = request.content.replace(b"8c1f2a53", b"9d2f2a53")  # same length
    assert len(tampered) == len(request.content) and tampered != request.content
    forged = client.build_request(
        "POST", OUTGOING_PAYMENTS, content=tampered, headers=request.headers
    )
    assert reason_of(await client.send(forged)) == "content_digest_mismatch"


async def test_a_digest_over_different_bytes_is_refused(
    client: CheckedClient, identity: ClientIdentity, grant: IssuedGrant
) -> None:
    # The digest of a re-serialisation of the same JSON, signed correctly: the reference
    # implementation accepts this (it digests what it re-serialises); the bytes differ.
    request = signed(
        client,
        identity,
        "POST",
        OUTGOING_PAYMENTS,
        body=outgoing_payment_request(),
        token=grant.access_token,
    )
    sent = json.dumps(outgoing_payment_request(), indent=1).encode()
    request = client.build_request("POST", OUTGOING_PAYMENTS, content=sent, headers=request.headers)
    request.headers["Content-Length"] = str(len(sent))
    compact = json.dumps(outgoing_payment_request(), separators=(",", ":")).encode()
    request.headers["Content-Digest"] = content_digest(compact)
    every = (
        "@method",
        "@target-uri",
        "authorization",
        "content-digest",
        "content-length",
        "content-type",
    )
    covering(every, request, identity.private_key, identity.key_id, int(time.time()))
    assert reason_of(await client.send(request)) == "content_digest_mismatch"


@pytest.mark.parametrize("algorithm", ["sha-512", "sha-256"])
async def test_both_digest_algorithms_are_checked_over_the_raw_bytes(
    client: CheckedClient, identity: ClientIdentity, grant: IssuedGrant, algorithm: str
) -> None:
    request = signed(
        client,
        identity,
        "POST",
        OUTGOING_PAYMENTS,
        body=outgoing_payment_request(),
        token=grant.access_token,
    )
    request.headers["Content-Digest"] = content_digest(request.content, algorithm)
    every = (
        "@method",
        "@target-uri",
        "authorization",
        "content-digest",
        "content-length",
        "content-type",
    )
    covering(every, request, identity.private_key, identity.key_id, int(time.time()))
    assert (await client.send(request)).status_code == AUTHENTICATED_POST


@pytest.mark.parametrize(
    ("signed_as", "sent_as"),
    [
        (("GET", f"{OUTGOING_PAYMENTS}/abc"), ("GET", f"{OUTGOING_PAYMENTS}/abd")),
        (("GET", f"{PUBLIC_URL}/op/incoming-payments?wallet-address={PUBLIC_URL}/alice&first=5"),
         ("GET", f"{PUBLIC_URL}/op/incoming-payments?wallet-address={PUBLIC_URL}/alice&first=6")),
        (("POST", f"{AUTH}/token/abc"), ("DELETE", f"{AUTH}/token/abc")),
    ],
    ids=["path", "query", "method"],
)  # fmt: skip
async def test_a_signature_for_another_target_or_method_is_refused(
    client: CheckedClient,
    identity: ClientIdentity,
    grant: IssuedGrant,
    signed_as: tuple[str, str],
    sent_as: tuple[str, str],
) -> None:
    original = signed(client, identity, *signed_as, token=grant.access_token)
    moved = client.build_request(*sent_as, headers=original.headers)
    assert reason_of(await client.send(moved)) == "bad_signature"


async def test_a_signature_for_the_proxy_facing_url_is_refused(
    client: CheckedClient, identity: ClientIdentity, grant: IssuedGrant
) -> None:
    # Behind a TLS-terminating proxy the app sees http; the client signed the public https
    # URL, and that is the only one that verifies.
    internal = f"{OUTGOING_PAYMENTS}/abc".replace("https://", "http://")
    request = client.build_request("GET", f"{OUTGOING_PAYMENTS}/abc")
    request.headers["Authorization"] = f"GNAP {grant.access_token}"
    signed_internal = client.build_request("GET", internal, headers=request.headers)
    identity.sign(signed_internal)
    request.headers.update(
        {name: signed_internal.headers[name] for name in ("Signature", "Signature-Input")}
    )
    assert reason_of(await client.send(request)) == "bad_signature"


async def test_a_request_without_signature_is_refused(
    client: CheckedClient, identity: ClientIdentity, grant: IssuedGrant
) -> None:
    request = signed(client, identity, "GET", f"{OUTGOING_PAYMENTS}/abc", token=grant.access_token)
    del request.headers["Signature"]
    assert reason_of(await client.send(request)) == "missing_signature"
    unsigned = client.build_request("POST", AUTH, json=grant_request(identity))
    assert reason_of(await client.send(unsigned)) == "missing_signature_input"


async def test_a_token_used_by_another_client_is_refused(
    client: CheckedClient, identity: ClientIdentity, grant: IssuedGrant, app: Starlette
) -> None:
    other = await register_client(app, "/other-app", key_id=identity.key_id)
    request = signed(client, other, "GET", f"{OUTGOING_PAYMENTS}/abc", token=grant.access_token)
    # The token leads to `identity`'s grant; `other`'s key is not one `identity` publishes.
    assert reason_of(await client.send(request)) == "bad_signature"


async def test_a_token_signed_by_another_key_of_the_same_client_is_refused(
    client: CheckedClient, identity: ClientIdentity, grant: IssuedGrant, app: Starlette
) -> None:
    # The client publishes a second key, valid for new grants, but this grant is bound to
    # the key that asked for it.
    second = ClientIdentity(identity.wallet_address_url, "client-key-2")
    async with app.state.services.sessions() as session:
        wallet_id = await wallet_address_id_by_path(session, "/client-app")
        await add_key(session, wallet_id, second.key_id, public_x(second.private_key))
        await session.commit()
    app.state.services.forget_wallet_address("/client-app")
    request = signed(client, second, "GET", f"{OUTGOING_PAYMENTS}/abc", token=grant.access_token)
    assert reason_of(await client.send(request)) == "key_not_bound"
    new_grant = signed(client, second, "POST", AUTH, body=grant_request(identity))
    assert (await client.send(new_grant)).status_code == GRANTED


# --- tokens and directed identity -----------------------------------------------------------


async def test_an_unknown_revoked_or_expired_token_is_refused(
    client: CheckedClient, identity: ClientIdentity, app: Starlette
) -> None:
    from datetime import UTC, datetime, timedelta

    past = datetime.now(UTC) - timedelta(seconds=1)
    expired = await issue_grant(app, identity, expires_at=past)
    revoked = await issue_grant(app, identity, revoked_at=past)
    for token in ("never-issued", expired.access_token, revoked.access_token):
        request = signed(client, identity, "GET", f"{OUTGOING_PAYMENTS}/abc", token=token)
        response = await client.send(request)
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "unauthorized"
    request = signed(client, identity, "POST", f"{AUTH}/continue/abc", token="never-issued")
    response = await client.send(request)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_continuation"


async def test_a_directed_identity_grant_is_bound_to_its_jwk(
    client: CheckedClient, app: Starlette
) -> None:
    # No wallet address at all: the key comes from the grant request's `jwk`.
    anonymous = ClientIdentity("https://nowhere.example/never-fetched", "jwk-1")
    body = {**grant_request(anonymous), "client": {"jwk": anonymous.jwk}}
    request = signed(client, anonymous, "POST", AUTH, body=body)
    assert (await client.send(request)).status_code == GRANTED
    grant = await issue_grant(app, anonymous, by_jwk=True)
    request = signed(client, anonymous, "GET", f"{OUTGOING_PAYMENTS}/abc", token=grant.access_token)
    assert (await client.send(request)).status_code == AUTHENTICATED
    impostor = ClientIdentity(anonymous.wallet_address_url, "jwk-1")
    request = signed(client, impostor, "GET", f"{OUTGOING_PAYMENTS}/abc", token=grant.access_token)
    assert reason_of(await client.send(request)) == "bad_signature"
    forged = {**grant_request(anonymous), "client": {"jwk": anonymous.jwk}}
    request = signed(client, impostor, "POST", AUTH, body=forged)
    assert reason_of(await client.send(request)) == "bad_signature"


async def test_an_incoming_payment_without_token_is_public_and_with_one_is_verified(
    client: CheckedClient, identity: ClientIdentity
) -> None:
    url = f"{PUBLIC_URL}/op/incoming-payments/abc"
    assert (await client.get(url)).status_code == 404  # the public view: no such payment
    response = await client.get(url, headers={"Authorization": "GNAP not-a-token"})
    assert response.status_code == 401


def test_token_optional_operations_are_those_whose_spec_signature_is_optional() -> None:
    import yaml

    spec = yaml.safe_load((REPO / "specs" / "resource-server.yaml").read_text())
    optional = set()
    for item in spec["paths"].values():
        for operation in item.values():
            if not isinstance(operation, dict):
                continue  # path-level `parameters`
            refs = [
                p.get("$ref", "") for p in operation.get("parameters", []) if isinstance(p, dict)
            ]
            if any(ref.endswith("/optional-signature") for ref in refs):
                optional.add(operation["operationId"])
    assert optional == TOKEN_OPTIONAL
