"""The consent flow in a real browser: the official client asks for an outgoing-payment grant,
headless Chromium (Debian's, driven by Playwright) follows `interact.redirect`, logs in as
the sandbox's demo owner, reads the consent page and approves or denies, and lands on the
client's finish URI; the client then continues the grant.

The consent page's screenshot is kept in test-artifacts/ (OPASE_TEST_ARTIFACTS) for people
to look at."""

from __future__ import annotations

from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.async_api import Browser

from tests.browser.consent import (
    ARTIFACTS,
    CLIENT_NONCE,
    FINISH_URI,
    expected_hash,
    through_consent,
)
from tests.node_oracle import ClientCallFailed, OfficialClient, official_client
from tests.servers import RunningSandbox

pytestmark = pytest.mark.slow


def request_outgoing_grant(op: OfficialClient, wallet_url: str) -> tuple[dict[str, Any], Any]:
    wallet = op.call("walletAddress.get", {"url": wallet_url})
    body = {
        "access_token": {
            "access": [
                {
                    "type": "outgoing-payment", "actions": ["create", "read"],
                    "identifier": wallet["id"],
                    "limits": {
                        "debitAmount": {"value": "2500", "assetCode": wallet["assetCode"],
                                        "assetScale": wallet["assetScale"]},
                        "interval": "R/2026-12-01T00:00:00Z/P1M",
                    },
                }
            ]
        },
        "interact": {
            "start": ["redirect"],
            "finish": {"method": "redirect", "uri": FINISH_URI, "nonce": CLIENT_NONCE},
        },
    }  # fmt: skip
    return wallet, op.call("grant.request", {"url": wallet["authServer"]}, body)


async def test_the_owner_approves_in_a_browser_and_the_client_gets_its_token(
    running: RunningSandbox, browser: Browser
) -> None:
    ase = running.manifest["ases"][0]
    account = ase["walletAddresses"][0]
    with official_client(ase) as op:
        wallet, grant = request_outgoing_grant(op, account["url"])
        finish, consent_text = await through_consent(
            browser, grant, account["owner"], "Approve", "consent-page.png"
        )
        query = parse_qs(urlsplit(finish).query)
        interact_ref = query["interact_ref"][0]
        assert query["hash"] == [expected_hash(grant, interact_ref, wallet["authServer"])]
        continued = op.call(
            "grant.continue",
            {"url": grant["continue"]["uri"],
             "accessToken": grant["continue"]["access_token"]["value"]},
            {"interact_ref": interact_ref},
        )  # fmt: skip
    token = continued["access_token"]
    assert token["value"] and token["access"][0]["type"] == "outgoing-payment"
    # What the owner read is what the grant holds.
    shown = Decimal(2500).scaleb(-wallet["assetScale"])  # exact: 2500 minor units at scale
    assert f"{wallet['assetCode']} {shown}" in consent_text
    assert token["access"][0]["limits"]["debitAmount"]["value"] == "2500"
    assert (ARTIFACTS / "consent-page.png").stat().st_size > 0


async def test_the_owner_denies_in_a_browser_and_the_continuation_fails(
    running: RunningSandbox, browser: Browser
) -> None:
    ase = running.manifest["ases"][0]
    account = ase["walletAddresses"][0]
    with official_client(ase) as op:
        _, grant = request_outgoing_grant(op, account["url"])
        finish, _ = await through_consent(
            browser, grant, account["owner"], "Deny", "consent-page-denied.png"
        )
        query = parse_qs(urlsplit(finish).query)
        assert "hash" not in query and query["result"] == ["grant_rejected"]
        with pytest.raises(ClientCallFailed) as refused:
            op.call(
                "grant.continue",
                {"url": grant["continue"]["uri"],
                 "accessToken": grant["continue"]["access_token"]["value"]},
                {"interact_ref": "none-was-given"},
            )  # fmt: skip
    assert (refused.value.status, refused.value.code) == (401, "request_denied")
