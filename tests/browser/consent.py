"""The owner's side of the consent flow in headless Chromium (Debian's, driven by Playwright):
log in on the sandbox's pages, read the consent page, approve or deny, land on the client's
finish URI. Screenshots go to test-artifacts/ (OPASE_TEST_ARTIFACTS)."""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
from pathlib import Path
from typing import Any

from playwright.async_api import Browser, Page, Route

from tests.repo import REPO

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


def make_artifacts_dir() -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)


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
    """RFC 9635 4.2.3 over CLIENT_NONCE, computed here independently of opase."""
    material = "\n".join((CLIENT_NONCE, grant["interact"]["finish"], interact_ref, auth_server))
    return base64.b64encode(hashlib.sha256(material.encode()).digest()).decode()
