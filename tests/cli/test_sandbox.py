"""`opase sandbox`: two seeded ASEs answer on loopback, the manifest is the documented
contract, and Ctrl-C stops everything cleanly."""

from __future__ import annotations

import base64
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from opase.security.key_pairs import public_jwk
from tests.node_oracle import sign_with_official_library
from tests.servers import sandbox

pytestmark = pytest.mark.slow  # starts servers: one xdist worker runs these in turn


def test_sandbox_serves_what_its_manifest_says_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    with sandbox(tmp_path) as running:
        ases = running.manifest["ases"]
        assert len(ases) == 2
        assert [len(ase["walletAddresses"]) for ase in ases] >= [2, 1]
        ports = set()
        for ase in ases:
            assert {"name", "authServer", "resourceServer", "adminApi", "adminApiKey"} <= set(ase)
            for wallet in ase["walletAddresses"]:
                assert {"url", "assetCode", "assetScale", "balance", "owner"} <= set(wallet)
                assert wallet["owner"]["username"] and len(wallet["owner"]["password"]) >= 8
                assert wallet["balance"].isdigit() and int(wallet["balance"]) > 0
                response = httpx.get(wallet["url"], headers={"Accept": "application/json"})
                assert response.status_code == 200
                document = response.json()
                assert document["id"] == wallet["url"]
                assert (document["assetCode"], document["assetScale"]) == (
                    wallet["assetCode"], wallet["assetScale"],
                )  # fmt: skip
                assert document["authServer"] == ase["authServer"]
                assert document["resourceServer"] == ase["resourceServer"]
                ports.add(httpx.URL(wallet["url"]).port)
        assert len(ports) == 2, "each ASE listens on its own port"
        for ase in ases:
            admin = httpx.Client(
                base_url=ase["adminApi"], headers={"Authorization": f"Bearer {ase['adminApiKey']}"}
            )
            assert admin.get("/assets").status_code == 200
            assert httpx.get(f"{ase['adminApi']}/assets").status_code == 401
            [client] = ase["clients"]
            assert client["privateKeyFormat"] == "pkcs8-pem"
            key = serialization.load_pem_private_key(client["privateKey"].encode(), password=None)
            assert isinstance(key, Ed25519PrivateKey)
            jwks = httpx.get(f"{client['walletAddress']}/jwks.json").json()
            raw = key.public_key().public_bytes(
                serialization.Encoding.Raw, serialization.PublicFormat.Raw
            )
            x = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
            assert jwks["keys"] == [public_jwk(client["keyId"], x)]
        code, output = running.stop()
    assert code == 0, output
    assert "opase sandbox stopped" in output
    for ase in ases:
        for wallet in ase["walletAddresses"]:
            assert wallet["owner"]["password"] in output  # the demo logins are printed


def test_a_client_of_one_sandbox_ase_signs_grant_requests_to_the_other(tmp_path: Path) -> None:
    """ASE B fetches the client's keys from ASE A over loopback http (allowed in the sandbox
    only) and verifies the official library's signature with them."""
    with sandbox(tmp_path) as running:
        ase_a, ase_b = running.manifest["ases"]
        [client] = ase_a["clients"]
        key = serialization.load_pem_private_key(client["privateKey"].encode(), password=None)
        assert isinstance(key, Ed25519PrivateKey)
        grant_request = {
            "access_token": {"access": [{"type": "incoming-payment", "actions": ["read"]}]},
            "client": {"walletAddress": client["walletAddress"]},
        }
        # To ASE B (keys fetched from ASE A over http) and to ASE A (keys from its database).
        requests = [
            {"method": "POST", "url": ase["authServer"], "body": grant_request}
            for ase in (ase_b, ase_a)
        ]
        for request, signed in zip(
            requests, sign_with_official_library(key, client["keyId"], requests), strict=True
        ):
            response = httpx.post(
                request["url"], headers=signed["headers"], content=signed["body"].encode()
            )
            assert response.status_code == 200, response.text  # authenticated, granted
        [forged] = sign_with_official_library(
            Ed25519PrivateKey.generate(), client["keyId"], requests[:1]
        )
        response = httpx.post(
            requests[0]["url"], headers=forged["headers"], content=forged["body"].encode()
        )
        assert response.status_code == 401
        assert response.json()["error"]["details"]["reason"] == "bad_signature"
        running.stop()
