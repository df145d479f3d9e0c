"""The consent flow in a real browser: the official client asks for an outgoing-payment grant,
headless Chromium (Debian's, driven by Playwright) follows `interact.redirect`, logs in as
the sandbox's demo owner, reads the consent page and approves or denies, and lands on the
client's finish URI; the client then continues the grant.

The consent page's screenshot is kept in test-artifacts/ (OPASE_TEST_ARTIFACTS) for people
to look at."""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from playwright.async_api import Browser, Page, Route, async_playwright

from tests.node_oracle import ClientCallFailed, OfficialClient
from tests.servers import RunningSandbox, sandbox

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent.parent
ARTIFACTS = Path(os.environ.get("OPASE_TEST_ARTIFACTS", REPO / "test-artifacts"))
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# As root in a container, with a closed network: no sandbox, no background connections.
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
FINISH_URI = "https://client-app.example/grant/finished"
CLIENT_NONCE = "a-client-nonce-of-the-test"
PAGE_TIMEOUT_MS = 15_000


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSandbox]:
    with sandbox(tmp_path_factory.mktemp("sandbox")) as started:
        yield started


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    make_artifacts_dir()
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            await launched.close()


def make_artifacts_dir() -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)


def official_client(ase: dict[str, Any]) -> OfficialClient:
    [client] = ase["clients"]
    key = serialization.load_pem_private_key(client["privateKey"].encode(), password=None)
    assert isinstance(key, Ed25519PrivateKey)
    return OfficialClient(client["walletAddress"], key, client["keyId"])


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


async def through_consent(
    browser: Browser, grant: dict[str, Any], owner: dict[str, str], decision: str, shot: str
) -> tuple[str, str]:
    """Log in and decide in a fresh browser; the finish URL the browser landed on, and the
    consent page's text."""
    context = await browser.new_context()
    landed: list[str] = []

    async def client_app(route: Route) -> None:
        # The client's own page: only the URL it was reached with matters.
        landed.append(route.request.url)
        await route.fulfill(status=200, content_type="text/html", body="<p>back in the app</p>")

    await context.route(f"{FINISH_URI}**", client_app)
    page: Page = await context.new_page()
    page.set_default_timeout(PAGE_TIMEOUT_MS)
    try:
        await page.goto(grant["interact"]["redirect"])
        await page.get_by_label("Username").fill(owner["username"])
        await page.get_by_label("Password").fill(owner["password"])
        await page.get_by_role("button", name="Log in").click()
        await page.get_by_role("button", name=decision).wait_for()
        consent_text = await page.inner_text("body")
        await page.screenshot(path=str(ARTIFACTS / shot), full_page=True)
        await page.get_by_role("button", name=decision).click()
        await page.wait_for_url(f"{FINISH_URI}**")
    finally:
        await context.close()
    assert len(landed) == 1, landed
    return landed[0], consent_text


def expected_hash(grant: dict[str, Any], interact_ref: str, auth_server: str) -> str:
    material = "\n".join((CLIENT_NONCE, grant["interact"]["finish"], interact_ref, auth_server))
    return base64.b64encode(hashlib.sha256(material.encode()).digest()).decode()


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
