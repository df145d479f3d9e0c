"""The official client (`@interledger/open-payments`, pinned, validateResponses on) against a
running sandbox: what a client developer's code meets."""

from __future__ import annotations

from typing import Any

import pytest

from tests.node_oracle import ClientCallFailed, official_client
from tests.servers import RunningSandbox

pytestmark = pytest.mark.slow


def incoming_access(actions: list[str]) -> dict[str, Any]:
    return {"access_token": {"access": [{"type": "incoming-payment", "actions": actions}]}}


def test_non_interactive_grant_rotate_revoke_and_cancel(running: RunningSandbox) -> None:
    ase_a, ase_b = running.manifest["ases"]
    # A client of ASE A asks ASE B: B fetches the client's keys from A.
    with official_client(ase_a) as op:
        receiver = op.call("walletAddress.get", {"url": ase_b["walletAddresses"][0]["url"]})
        auth = {"url": receiver["authServer"]}
        grant = op.call("grant.request", auth, incoming_access(["create", "read", "list"]))
        token = grant["access_token"]
        assert [item["type"] for item in token["access"]] == ["incoming-payment"]
        assert token["value"] not in token["manage"]

        managed = {"url": token["manage"], "accessToken": token["value"]}
        rotated = op.call("token.rotate", managed)["access_token"]
        assert rotated["value"] != token["value"] and rotated["manage"] != token["manage"]
        with pytest.raises(ClientCallFailed) as old:
            op.call("token.rotate", {"url": token["manage"], "accessToken": token["value"]})
        assert (old.value.status, old.value.code) == (401, "invalid_client")

        managed = {"url": rotated["manage"], "accessToken": rotated["value"]}
        assert op.call("token.revoke", managed) is None
        with pytest.raises(ClientCallFailed) as revoked:
            op.call("token.rotate", managed)
        assert revoked.value.status == 401

        second = op.call("grant.request", auth, incoming_access(["read"]))
        continuation = {
            "url": second["continue"]["uri"],
            "accessToken": second["continue"]["access_token"]["value"],
        }
        assert op.call("grant.cancel", continuation) is None
        with pytest.raises(ClientCallFailed) as cancelled:
            op.call(
                "token.rotate",
                {"url": second["access_token"]["manage"],
                 "accessToken": second["access_token"]["value"]},
            )  # fmt: skip
        assert cancelled.value.status == 401


def test_interactive_grant_returns_a_redirect_and_polling_early_is_too_fast(
    running: RunningSandbox,
) -> None:
    ase = running.manifest["ases"][0]
    sender = ase["walletAddresses"][0]
    with official_client(ase) as op:
        wallet = op.call("walletAddress.get", {"url": sender["url"]})
        limits = {
            "debitAmount": {
                "value": "2500", "assetCode": wallet["assetCode"],
                "assetScale": wallet["assetScale"],
            },
            "interval": "R/2026-01-01T00:00:00Z/P1M",
        }  # fmt: skip
        body = {
            "access_token": {
                "access": [
                    {"type": "outgoing-payment", "actions": ["create", "read"],
                     "identifier": wallet["id"], "limits": limits}
                ]
            },
            "interact": {"start": ["redirect"]},
        }  # fmt: skip
        grant = op.call("grant.request", {"url": wallet["authServer"]}, body)
        assert grant["interact"]["redirect"].startswith(wallet["authServer"] + "/interact/")
        assert grant["continue"]["wait"] >= 1
        continuation = {
            "url": grant["continue"]["uri"],
            "accessToken": grant["continue"]["access_token"]["value"],
        }
        with pytest.raises(ClientCallFailed) as early:
            op.call("grant.continue", continuation)
        assert (early.value.status, early.value.code) == (400, "too_fast")


def test_an_outgoing_payment_grant_without_interaction_is_refused(
    running: RunningSandbox,
) -> None:
    ase = running.manifest["ases"][0]
    sender = ase["walletAddresses"][0]
    with official_client(ase) as op:
        body = {
            "access_token": {
                "access": [
                    {"type": "outgoing-payment", "actions": ["create"], "identifier": sender["url"]}
                ]
            }
        }
        with pytest.raises(ClientCallFailed) as refused:
            op.call("grant.request", {"url": ase["authServer"]}, body)
        assert (refused.value.status, refused.value.code) == (400, "invalid_request")
