"""The admin API: bearer keys on every operation, the back office's operations seen from the
public wallet address server, and bad input refused with no change of state."""

from __future__ import annotations

import base64
import re
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from opase_generated.routes import OPERATIONS
from tests.api.admin.back_office import SOME_ID, create_wallet
from tests.client import CheckedClient
from tests.operations import IMPLEMENTED_OPERATIONS
from tests.responses import error_code
from tests.world import KEY_X, PUBLIC_URL

ADMIN_OPERATIONS = [op for op in OPERATIONS if op.server == "admin"]


def concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", lambda m: "key-1" if m.group(0) == "{keyId}" else SOME_ID, path)


@pytest.mark.parametrize("operation", ADMIN_OPERATIONS, ids=lambda op: op.operation_id)
@pytest.mark.parametrize("authorization", [None, "Bearer wrong-key", "Basic abc", "Bearer "])
async def test_every_admin_operation_needs_a_valid_key(
    admin: CheckedClient, operation: Any, authorization: str | None
) -> None:
    headers = {"Idempotency-Key": "k1"}
    if authorization is None:
        admin.headers.pop("Authorization")
    else:
        admin.headers["Authorization"] = authorization
    response = await admin.request(operation.method, concrete(operation.path), headers=headers)
    assert error_code(response, 401) == "unauthorized"
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.json()["error"]["code"] == "unauthorized"


def test_the_admin_spec_is_fully_routed() -> None:
    assert {op.operation_id for op in ADMIN_OPERATIONS} == IMPLEMENTED_OPERATIONS["admin"]
    assert len(ADMIN_OPERATIONS) == len(IMPLEMENTED_OPERATIONS["admin"])
    assert all(op.security == ("adminApiKey",) for op in ADMIN_OPERATIONS)


async def test_a_created_wallet_address_is_served_publicly_and_deactivation_404s(
    admin: CheckedClient, public: CheckedClient
) -> None:
    assert error_code(await public.get("/alice"), 404) == "not_found"  # caches the 404 first
    wallet = await create_wallet(admin, owner={"username": "alice", "password": "s3cret-pass"})
    assert wallet["url"] == f"{PUBLIC_URL}/alice" and wallet["owner"] == "alice"
    document = (await public.get("/alice")).json()
    assert document["publicName"] == "Alice" and document["assetCode"] == "USD"
    renamed = await admin.patch(f"/wallet-addresses/{wallet['id']}", json={"publicName": "Al"})
    assert renamed.json()["publicName"] == "Al"
    assert (await public.get("/alice")).json()["publicName"] == "Al"
    gone = await admin.post(f"/wallet-addresses/{wallet['id']}/deactivate")
    assert gone.json()["status"] == "inactive"
    assert error_code(await public.get("/alice"), 404) == "not_found"
    assert (await admin.get(f"/wallet-addresses/{wallet['id']}")).json()["status"] == "inactive"


async def test_keys_registered_generated_and_revoked(
    admin: CheckedClient, public: CheckedClient
) -> None:
    wallet = await create_wallet(admin)
    keys_url = f"/wallet-addresses/{wallet['id']}/keys"
    jwk = {"kid": "client-1", "alg": "EdDSA", "kty": "OKP", "crv": "Ed25519", "x": KEY_X}
    assert (await admin.post(keys_url, json={"jwk": jwk})).status_code == 201
    generated = await admin.post(keys_url, json={"generate": True, "keyId": "made-here"})
    assert generated.status_code == 201
    private_key = serialization.load_pem_private_key(
        generated.json()["privateKeyPem"].encode(), password=None
    )
    assert isinstance(private_key, Ed25519PrivateKey)
    raw = private_key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    assert base64.urlsafe_b64encode(raw).rstrip(b"=").decode() == generated.json()["jwk"]["x"]
    published = (await public.get("/alice/jwks.json")).json()["keys"]
    assert sorted(k["kid"] for k in published) == ["client-1", "made-here"]
    assert (await admin.delete(f"{keys_url}/client-1")).status_code == 204
    published = (await public.get("/alice/jwks.json")).json()["keys"]
    assert [k["kid"] for k in published] == ["made-here"]
    assert error_code(await admin.delete(f"{keys_url}/nope"), 404) == "not_found"


async def test_a_repeated_deposit_moves_money_once(admin: CheckedClient) -> None:
    wallet = await create_wallet(admin)
    url = f"/wallet-addresses/{wallet['id']}/deposits"
    first = await admin.post(url, json={"amount": "2500"}, headers={"Idempotency-Key": "dep-1"})
    again = await admin.post(url, json={"amount": "2500"}, headers={"Idempotency-Key": "dep-1"})
    assert first.status_code == again.status_code == 201
    assert first.json()["id"] == again.json()["id"]
    other = await admin.post(url, json={"amount": "100"}, headers={"Idempotency-Key": "dep-2"})
    assert other.json()["balance"] == "2600"
    reused = await admin.post(url, json={"amount": "7"}, headers={"Idempotency-Key": "dep-1"})
    assert error_code(reused, 409) == "conflict"
    balance = (await admin.get(f"/wallet-addresses/{wallet['id']}/balance")).json()
    assert (balance["balance"], balance["assetCode"], balance["assetScale"]) == ("2600", "USD", 2)


async def balance_of(admin: CheckedClient, wallet_id: str) -> str:
    return (await admin.get(f"/wallet-addresses/{wallet_id}/balance")).json()["balance"]  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("amount", "status"),
    [
        ("-1", 400),
        ("0", 400),
        ("1.5", 400),
        ("1e3", 400),
        (" 5", 400),
        ("18446744073709551616", 400),
        ("9223372036854775808", 400),
        (5, 400),
    ],
)
async def test_bad_amounts_are_refused_and_change_nothing(
    admin: CheckedClient, amount: object, status: int
) -> None:
    wallet = await create_wallet(admin)
    url = f"/wallet-addresses/{wallet['id']}/deposits"
    response = await admin.post(url, json={"amount": amount}, headers={"Idempotency-Key": "x"})
    assert response.status_code == status, response.text
    assert await balance_of(admin, wallet["id"]) == "0"


async def test_a_deposit_needs_an_idempotency_key(admin: CheckedClient) -> None:
    wallet = await create_wallet(admin)
    response = await admin.post(f"/wallet-addresses/{wallet['id']}/deposits", json={"amount": "5"})
    assert response.status_code == 400 and "idempotency-key" in response.text
    assert await balance_of(admin, wallet["id"]) == "0"


async def test_bad_wallet_addresses_are_refused(admin: CheckedClient) -> None:
    await create_wallet(admin)
    asset_id = (await admin.get("/assets")).json()["result"][0]["id"]
    cases = [
        ({"path": "/alice", "assetId": asset_id}, 409),  # duplicate path
        ({"path": "/bob", "assetId": SOME_ID}, 404),  # unknown asset
        ({"path": "bob", "assetId": asset_id}, 400),
        ({"path": "/bob/", "assetId": asset_id}, 400),
        ({"path": "/bob/jwks.json", "assetId": asset_id}, 400),
        ({"path": "/b%20b", "assetId": asset_id}, 400),
        ({"path": "/bob", "assetId": "not-a-uuid"}, 400),
        ({"path": "/bob", "assetId": asset_id, "extra": 1}, 400),
    ]
    for body, status in cases:
        response = await admin.post("/wallet-addresses", json=body)
        assert response.status_code == status, (body, response.text)
    again = await admin.post("/assets", json={"code": "USD", "scale": 2})
    assert error_code(again, 409) == "conflict"
    for bad in ({"code": "usd", "scale": 2}, {"code": "EUR", "scale": 256}):
        assert error_code(await admin.post("/assets", json=bad), 400) == "invalid_request"
    assert len((await admin.get("/assets")).json()["result"]) == 1


@pytest.mark.parametrize(
    "jwk",
    [
        {"kid": "k", "alg": "RS256", "kty": "OKP", "crv": "Ed25519", "x": KEY_X},
        {"kid": "k", "alg": "EdDSA", "kty": "OKP", "crv": "X25519", "x": KEY_X},
        {"kid": "k", "alg": "EdDSA", "kty": "OKP", "crv": "Ed25519", "x": KEY_X[:-2]},
        {"kid": "k", "alg": "EdDSA", "kty": "OKP", "crv": "Ed25519", "x": KEY_X[:-1] + "="},
        {"kid": "k", "alg": "EdDSA", "kty": "OKP", "crv": "Ed25519", "x": KEY_X, "d": KEY_X},
        {"kid": "", "alg": "EdDSA", "kty": "OKP", "crv": "Ed25519", "x": KEY_X},
    ],
)
async def test_bad_keys_are_refused(
    admin: CheckedClient, public: CheckedClient, jwk: dict[str, str]
) -> None:
    wallet = await create_wallet(admin)
    response = await admin.post(f"/wallet-addresses/{wallet['id']}/keys", json={"jwk": jwk})
    assert error_code(response, 400) == "invalid_request"
    assert (await public.get("/alice/jwks.json")).json() == {"keys": []}


async def test_a_repeated_post_gets_the_first_answer_and_changes_nothing(
    admin: CheckedClient,
) -> None:
    headers = {"Idempotency-Key": "asset-usd"}
    first = await admin.post("/assets", json={"code": "USD", "scale": 2}, headers=headers)
    again = await admin.post("/assets", json={"code": "USD", "scale": 2}, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    other = await admin.post("/assets", json={"code": "EUR", "scale": 2}, headers=headers)
    assert other.status_code == 409 and "different request" in other.text
    assert [a["code"] for a in (await admin.get("/assets")).json()["result"]] == ["USD"]
    # A refusal is not stored: the same key may carry the corrected request.
    bad = await admin.post(
        "/assets", json={"code": "x", "scale": 2}, headers={"Idempotency-Key": "k2"}
    )
    fixed = await admin.post(
        "/assets", json={"code": "GBP", "scale": 2}, headers={"Idempotency-Key": "k2"}
    )
    assert (bad.status_code, fixed.status_code) == (400, 201)


async def test_a_repeated_key_generation_returns_the_same_key_once(
    admin: CheckedClient, public: CheckedClient
) -> None:
    wallet = await create_wallet(admin)
    url = f"/wallet-addresses/{wallet['id']}/keys"
    headers = {"Idempotency-Key": "gen-1"}
    first = await admin.post(url, json={"generate": True}, headers=headers)
    again = await admin.post(url, json={"generate": True}, headers=headers)
    assert first.json() == again.json()
    assert len((await public.get("/alice/jwks.json")).json()["keys"]) == 1


def test_every_operation_taking_an_idempotency_key_declares_the_409_of_a_reused_key() -> None:
    from opase.web.validation import load_validators

    validators = load_validators(tuple(ADMIN_OPERATIONS))
    keyed = [
        op
        for op in ADMIN_OPERATIONS
        if "idempotency-key" in validators[op.operation_id].header_names
    ]
    assert len(keyed) >= 6
    assert [op.operation_id for op in keyed if 409 not in op.response_statuses] == []


async def test_no_wallet_address_where_the_other_servers_answer(
    admin: CheckedClient, public: CheckedClient
) -> None:
    asset = (await admin.post("/assets", json={"code": "USD", "scale": 2})).json()
    for path in ("/auth", "/op", "/op/incoming-payments", "/auth/continue/x"):
        response = await admin.post(
            "/wallet-addresses", json={"path": path, "assetId": asset["id"]}
        )
        assert error_code(response, 400) == "invalid_request", path
        assert "another server answers" in response.json()["error"]["description"]
    # Paths that only start with the same letters are fine.
    for path in ("/authority", "/opal"):
        created = await admin.post("/wallet-addresses", json={"path": path, "assetId": asset["id"]})
        assert created.status_code == 201, path
        assert (await public.get(path)).status_code == 200
