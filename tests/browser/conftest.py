"""Headless Chromium for the browser tests; the sandbox they drive is the top-level
`running` fixture (one per module)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Browser, async_playwright

from tests.browser.consent import CHROMIUM, CHROMIUM_ARGS, make_artifacts_dir


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
