"""The webhook endpoint through the admin API: set and replaced as a whole, its secret
kept for signing but never shown, bad URLs and secrets refused with nothing changed."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.applications import Starlette

from opase.webhooks.endpoint import webhook_secret
from tests.client import CheckedClient
from tests.responses import error_code

SECRET = "whsec-0123456789abcdef0123456789"


async def test_the_webhook_is_set_replaced_and_never_shows_its_secret(
    admin: CheckedClient, apps: tuple[Starlette, Starlette]
) -> None:
    missing = await admin.get("/webhook")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    url = "https://hooks.example:8443/opase/events?tenant=a1"
    created = await admin.put("/webhook", json={"url": url, "secret": SECRET})
    assert created.status_code == 200, created.text
    assert (created.json()["url"], created.json()["secretSet"]) == (url, True)
    read = await admin.get("/webhook")
    assert read.json() == created.json()
    assert SECRET not in created.text and SECRET not in read.text
    async with apps[0].state.services.sessions() as session:
        assert await webhook_secret(session) == SECRET

    # A PUT replaces both: without a secret, there is none.
    replaced = await admin.put("/webhook", json={"url": "http://127.0.0.1:9000/hook"})
    assert replaced.status_code == 200, replaced.text
    assert replaced.json()["secretSet"] is False
    assert (await admin.get("/webhook")).json()["url"] == "http://127.0.0.1:9000/hook"
    async with apps[0].state.services.sessions() as session:
        assert await webhook_secret(session) is None


@pytest.mark.parametrize(
    "body",
    [
        {"url": "ftp://hooks.example/x"},
        {"url": "hooks.example/x"},
        {"url": "http://"},
        {"url": "https://user:password@hooks.example/x"},
        {"url": "https://hooks.example/x#fragment"},
        {"url": "https://hooks.example:70000/x"},
        {"url": "https://hooks.example:0/x"},
        {"url": "https://hooks example/x"},
        {"url": "https://[::1]/x"},
        {"url": "https://hooks.example/100%"},
        {"url": "https://hooks.example/x?q=%zz"},
        {"url": "javascript:alert(1)"},
        {"url": ""},
        {"url": "https://hooks.example/" + "x" * 2048},
        {"url": 42},
        {"url": "https://hooks.example/x", "secret": "too-short"},
        {"url": "https://hooks.example/x", "secret": "has a space in it, sadly"},
        {"url": "https://hooks.example/x", "secret": "x" * 201},
        {"url": "https://hooks.example/x", "secret": None},
        {"url": "https://hooks.example/x", "events": ["all"]},
        {"secret": SECRET},
    ],
)
async def test_bad_webhooks_are_refused_and_change_nothing(
    admin: CheckedClient, body: dict[str, Any]
) -> None:
    first = await admin.put("/webhook", json={"url": "https://hooks.example/a", "secret": SECRET})
    assert first.status_code == 200
    response = await admin.put("/webhook", json=body)
    assert error_code(response, 400) == "invalid_request"
    assert (await admin.get("/webhook")).json() == first.json()
