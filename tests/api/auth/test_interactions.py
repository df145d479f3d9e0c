"""Interactive grants end to end over HTTP: the client asks (signed), the owner's browser
starts and finishes the interaction (specs/interaction.yaml), the identity provider reads
and decides through its API (specs/idp.yaml), the client continues. Every response is
checked against its spec by the client; every refusal is checked to change nothing."""

from __future__ import annotations

import base64
import hashlib
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from starlette.applications import Starlette

from opase.api.auth.interaction import html_page
from opase.app import build_app
from opase.settings import Settings
from opase.storage.migrate import upgrade
from opase.storage.tables import Grant, utc_now
from tests.actors import FINISH, ClientApp, grant_id_of, incoming_access, outgoing_access
from tests.client import CheckedClient
from tests.responses import error_code
from tests.rows import set_grant
from tests.signing import register_client
from tests.world import ALICE, AUTH, AUTHENTICATED, PUBLIC_URL

IDP_SECRET = "idp-shared-secret-for-tests"
IDP_CONSENT_URL = "https://idp.example/consent?tenant=t1"
COOKIE = "opase_interaction"
LIMITS = {
    "debitAmount": {"value": "2500", "assetCode": "USD", "assetScale": 2},
    "interval": "R/2026-01-01T00:00:00Z/P1M",
}


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    """The conftest settings plus an identity provider, and no poll delay."""
    return Settings(
        public_url=PUBLIC_URL, data_dir=tmp_path, database_url=database_url,
        idp_consent_url=IDP_CONSENT_URL, idp_secret=IDP_SECRET, grant_wait_s=0,
    )  # fmt: skip


@pytest.fixture
async def browser(app: Starlette) -> AsyncIterator[CheckedClient]:
    """The owner's browser: its own cookie jar, apart from the client app's."""
    async with CheckedClient(app) as checked:
        yield checked


class Interaction:
    """One interactive grant as the client app got it, and its URLs."""

    def __init__(self, grant: dict[str, Any]) -> None:
        self.grant = grant
        self.start_url: str = grant["interact"]["redirect"]
        self.finish_url = f"{self.start_url}/finish"
        interact_id, self.nonce = self.start_url.removeprefix(f"{AUTH}/interact/").split("/")
        self.interact_id = uuid.UUID(interact_id)
        self.idp_url = f"{AUTH}/grant/{self.interact_id}/{self.nonce}"


async def interactive(client_app: ClientApp, *, finish: bool = True) -> Interaction:
    interact: dict[str, Any] = {"start": ["redirect"]}
    if finish:
        interact["finish"] = FINISH
    return Interaction(await client_app.grant(outgoing_access(ALICE, **LIMITS), interact=interact))


async def idp(
    client: httpx.AsyncClient, method: str, url: str, secret: str | None = IDP_SECRET, **kw: Any
) -> httpx.Response:
    headers = {} if secret is None else {"x-idp-secret": secret}
    return await client.request(method, url, headers=headers, **kw)


async def accept(client: httpx.AsyncClient, interaction: Interaction) -> httpx.Response:
    return await idp(client, "POST", f"{interaction.idp_url}/accept")


async def reject(client: httpx.AsyncClient, interaction: Interaction) -> httpx.Response:
    return await idp(client, "POST", f"{interaction.idp_url}/reject")


async def stored(app: Starlette, interaction: Interaction) -> tuple[Any, ...]:
    """Everything a refusal must leave as it was."""
    async with app.state.services.sessions() as session:
        grant = await session.get(Grant, grant_id_of(interaction.grant))
        assert grant is not None
        return (
            grant.state, grant.finalization_reason, grant.interact_ref,
            grant.interaction_session_sha256, grant.interaction_expires_at, grant.updated_at,
        )  # fmt: skip


def refused_page(response: httpx.Response, status: int) -> str:
    """A refusal for a browser: the status, a small HTML page, never JSON, never cached."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["cache-control"] == "no-store"
    assert "set-cookie" not in response.headers
    assert response.text.startswith("<!doctype html>")
    return response.text


def cookie_attributes(response: httpx.Response) -> dict[str, str]:
    first, *attributes = response.headers["set-cookie"].split(";")
    name, _, value = first.partition("=")
    found = {"name": name.strip(), "value": value}
    for attribute in attributes:
        key, _, attribute_value = attribute.strip().partition("=")
        found[key.lower()] = attribute_value
    return found


def expected_hash(interaction: Interaction, interact_ref: str) -> str:
    """RFC 9635 4.2.3, computed here independently of opase."""
    material = f"{FINISH['nonce']}\n{interaction.grant['interact']['finish']}\n{interact_ref}\n"
    digest = hashlib.sha256((material + AUTH).encode()).digest()
    return base64.b64encode(digest).decode()


def query_of(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query)


# --- starting -------------------------------------------------------------------------------


async def test_start_sets_the_session_and_sends_the_owner_to_the_identity_provider(
    client_app: ClientApp, browser: CheckedClient, app: Starlette
) -> None:
    interaction = await interactive(client_app)
    response = await browser.get(interaction.start_url)
    assert response.status_code == 302, response.text
    assert response.headers["cache-control"] == "no-store"
    location = response.headers["location"]
    assert location.startswith("https://idp.example/consent?")
    assert query_of(location) == {
        "tenant": ["t1"],  # the configured URL's own query is kept
        "interactId": [str(interaction.interact_id)],
        "nonce": [interaction.nonce],
        "clientUri": [client_app.identity.wallet_address_url],
    }
    cookie = cookie_attributes(response)
    assert cookie["name"] == COOKIE and cookie["value"]
    # Only this interaction's URLs see it: several interactions may run in one browser.
    assert cookie["path"] == f"/auth/interact/{interaction.interact_id}/{interaction.nonce}"
    assert cookie["max-age"] == str(app.state.settings.interaction_lifetime_s)
    assert cookie["samesite"].lower() == "lax"
    assert "httponly" in cookie and "secure" in cookie
    # The grant keeps only the session's hash.
    session_sha256 = (await stored(app, interaction))[3]
    assert session_sha256 == hashlib.sha256(cookie["value"].encode()).hexdigest()
    assert browser.cookies[COOKIE] == cookie["value"]


async def test_over_plain_http_the_cookie_is_not_secure_and_the_built_in_pages_are_the_default(
    tmp_path: Path, database_url: str
) -> None:
    public_url = "http://127.0.0.1:4000"
    settings = Settings(public_url=public_url, data_dir=tmp_path, database_url=database_url)
    await upgrade(settings)
    app = build_app(settings)
    try:
        async with CheckedClient(app) as client:
            client_app = ClientApp(client, await register_client(app), app)
            asked = await client_app.ask(
                client_app.grant_request(
                    incoming_access(["list-all"]), interact={"start": ["redirect"]}
                )
            )
            assert asked.status_code == 200, asked.text
            response = await client.get(asked.json()["interact"]["redirect"])
        assert response.status_code == 302, response.text
        assert response.headers["location"].startswith(f"{public_url}/idp/consent?interactId=")
        cookie = cookie_attributes(response)
        assert "secure" not in cookie and "httponly" in cookie
        assert cookie["path"].startswith("/auth/interact/")
    finally:
        await app.state.services.close()


@pytest.mark.parametrize("what", ["nonce", "id", "not-a-uuid"])
async def test_a_wrong_nonce_or_id_is_an_unknown_interaction_page(
    client_app: ClientApp, browser: CheckedClient, app: Starlette, what: str
) -> None:
    interaction = await interactive(client_app)
    before = await stored(app, interaction)
    wrong = {
        "nonce": f"{AUTH}/interact/{interaction.interact_id}/{'0' * len(interaction.nonce)}",
        "id": f"{AUTH}/interact/{uuid.uuid4()}/{interaction.nonce}",
        "not-a-uuid": f"{AUTH}/interact/not-a-uuid/{interaction.nonce}",
    }[what]
    assert "Unknown request" in refused_page(await browser.get(wrong), 404)
    refused_page(await browser.get(f"{wrong}/finish"), 404)
    assert await stored(app, interaction) == before
    assert not browser.cookies


async def test_an_expired_interaction_cannot_start(
    client_app: ClientApp, browser: CheckedClient, app: Starlette
) -> None:
    interaction = await interactive(client_app)
    await set_grant(app, grant_id_of(interaction.grant),
                    interaction_expires_at=utc_now() - timedelta(seconds=1))  # fmt: skip
    before = await stored(app, interaction)
    page = refused_page(await browser.get(interaction.start_url), 400)
    assert "expired" in page
    assert await stored(app, interaction) == before
    assert not browser.cookies


async def test_starting_again_moves_the_interaction_to_the_last_browser(
    client_app: ClientApp, browser: CheckedClient, app: Starlette
) -> None:
    interaction = await interactive(client_app)
    assert (await browser.get(interaction.start_url)).status_code == 302
    async with CheckedClient(app) as other:
        assert (await other.get(interaction.start_url)).status_code == 302
        assert (await accept(client_app.http, interaction)).status_code == 202
        refused_page(await browser.get(interaction.finish_url), 400)
        assert (await other.get(interaction.finish_url)).status_code == 302


# --- the identity provider API --------------------------------------------------------------


async def test_the_identity_provider_reads_what_the_grant_asks_for(
    client_app: ClientApp, app: Starlette
) -> None:
    interaction = await interactive(client_app)
    response = await idp(client_app.http, "GET", interaction.idp_url)
    assert response.status_code == 200, response.text
    details = response.json()
    assert details["grantId"] == str(grant_id_of(interaction.grant))
    assert details["state"] == "pending"
    assert details["client"] == {"walletAddress": client_app.identity.wallet_address_url}
    assert details["access"] == [
        {"type": "outgoing-payment", "actions": ["create", "read"], "identifier": ALICE,
         "limits": LIMITS},
    ]  # fmt: skip
    assert details["finishUrl"] == interaction.finish_url
    expires_at = datetime.fromisoformat(details["interactionExpiresAt"])
    assert expires_at == (await stored(app, interaction))[4]
    assert "subject" not in details


async def test_accept_then_finish_redirects_with_hash_and_the_client_gets_its_token(
    client_app: ClientApp, browser: CheckedClient, app: Starlette
) -> None:
    interaction = await interactive(client_app)
    assert (await browser.get(interaction.start_url)).status_code == 302
    accepted = await accept(client_app.http, interaction)
    assert accepted.status_code == 202, accepted.text
    assert accepted.json() == {
        "grantId": str(grant_id_of(interaction.grant)),
        "state": "approved",
        "finishUrl": interaction.finish_url,
    }
    finished = await browser.get(interaction.finish_url)
    assert finished.status_code == 302, finished.text
    assert finished.headers["cache-control"] == "no-store"
    location = finished.headers["location"]
    assert location.startswith(f"{FINISH['uri']}?")
    query = query_of(location)
    assert set(query) == {"hash", "interact_ref"}
    interact_ref = query["interact_ref"][0]
    assert query["hash"] == [expected_hash(interaction, interact_ref)]
    assert COOKIE not in browser.cookies  # the finish expires the session cookie
    issued = await client_app.continue_(interaction.grant, interact_ref)
    assert issued.status_code == 200, issued.text
    token = issued.json()["access_token"]
    assert token["access"][0]["limits"] == LIMITS
    assert await client_app.use(token["value"]) == AUTHENTICATED
    # Every step happens once.
    after = await stored(app, interaction)
    refused_page(await browser.get(interaction.finish_url), 400)
    refused_page(await browser.get(interaction.start_url), 400)
    assert error_code(await accept(client_app.http, interaction), 400) == "invalid_interaction"
    assert await stored(app, interaction) == after
    assert (await idp(client_app.http, "GET", interaction.idp_url)).json()["state"] == "finalized"


async def test_reject_then_finish_redirects_with_the_gnap_error_and_continuation_fails(
    client_app: ClientApp, browser: CheckedClient, app: Starlette
) -> None:
    interaction = await interactive(client_app)
    assert (await browser.get(interaction.start_url)).status_code == 302
    rejected = await reject(client_app.http, interaction)
    assert rejected.status_code == 202, rejected.text
    assert rejected.json()["state"] == "denied"
    finished = await browser.get(interaction.finish_url)
    assert finished.status_code == 302, finished.text
    location = finished.headers["location"]
    assert location.startswith(f"{FINISH['uri']}?")
    assert query_of(location) == {"result": ["grant_rejected"], "error": ["user_denied"]}
    assert error_code(await client_app.continue_(interaction.grant, "any"), 401) == "request_denied"
    state, reason, *_ = await stored(app, interaction)
    assert (state, reason) == ("denied", "rejected")
    # Terminal: no second decision, no second finish.
    assert error_code(await accept(client_app.http, interaction), 400) == "invalid_interaction"
    assert error_code(await reject(client_app.http, interaction), 400) == "invalid_interaction"
    refused_page(await browser.get(interaction.finish_url), 400)


async def test_a_decision_is_made_once_and_never_after_expiry(
    client_app: ClientApp, app: Starlette
) -> None:
    twice = await interactive(client_app)
    assert (await accept(client_app.http, twice)).status_code == 202
    after = await stored(app, twice)
    assert error_code(await accept(client_app.http, twice), 400) == "invalid_interaction"
    assert error_code(await reject(client_app.http, twice), 400) == "invalid_interaction"
    assert await stored(app, twice) == after

    expired = await interactive(client_app)
    await set_grant(app, grant_id_of(expired.grant),
                    interaction_expires_at=utc_now() - timedelta(seconds=1))  # fmt: skip
    before = await stored(app, expired)
    for decide in (accept, reject):
        response = await decide(client_app.http, expired)
        assert error_code(response, 400) == "invalid_interaction"
        assert "expired" in response.json()["error"]["description"]
    assert await stored(app, expired) == before


async def test_the_identity_provider_api_needs_the_secret(
    client_app: ClientApp, app: Starlette
) -> None:
    interaction = await interactive(client_app)
    before = await stored(app, interaction)
    for secret in (None, "", "wrong-secret", IDP_SECRET + "x", IDP_SECRET[:-1]):
        for method, url in (
            ("GET", interaction.idp_url),
            ("POST", f"{interaction.idp_url}/accept"),
            ("POST", f"{interaction.idp_url}/reject"),
        ):
            response = await idp(client_app.http, method, url, secret)
            assert error_code(response, 401) == "unauthorized", (secret, url)
            assert "x-idp-secret" in response.headers["www-authenticate"]
    # Not the GNAP token nor the admin scheme either.
    response = await client_app.http.get(
        interaction.idp_url, headers={"Authorization": f"Bearer {IDP_SECRET}"}
    )
    assert error_code(response, 401) == "unauthorized"
    assert await stored(app, interaction) == before


async def test_without_a_configured_secret_the_api_refuses_everything(
    tmp_path: Path, database_url: str
) -> None:
    settings = Settings(public_url=PUBLIC_URL, data_dir=tmp_path, database_url=database_url)
    await upgrade(settings)
    app = build_app(settings)
    try:
        async with CheckedClient(app) as client:
            url = f"{AUTH}/grant/{uuid.uuid4()}/nonce"
            for secret in ("", "anything", IDP_SECRET):
                assert error_code(await idp(client, "GET", url, secret), 401) == "unauthorized"
                response = await idp(client, "POST", f"{url}/accept", secret)
                assert error_code(response, 401) == "unauthorized"
    finally:
        await app.state.services.close()


async def test_the_identity_provider_api_on_an_unknown_interaction_is_404(
    client_app: ClientApp,
) -> None:
    interaction = await interactive(client_app)
    wrong_nonce = f"{AUTH}/grant/{interaction.interact_id}/{'0' * len(interaction.nonce)}"
    for method, url in (
        ("GET", wrong_nonce),
        ("POST", f"{wrong_nonce}/accept"),
        ("POST", f"{AUTH}/grant/{uuid.uuid4()}/{interaction.nonce}/reject"),
        ("GET", f"{AUTH}/grant/not-a-uuid/{interaction.nonce}"),
    ):
        response = await idp(client_app.http, method, url)
        assert error_code(response, 404) == "unknown_interaction", url


async def test_a_decision_takes_no_body_or_the_empty_object_reference_integrations_send(
    client_app: ClientApp,
) -> None:
    interaction = await interactive(client_app)
    response = await idp(client_app.http, "POST", f"{interaction.idp_url}/accept", json={"x": 1})
    assert error_code(response, 400) == "invalid_request"
    response = await idp(client_app.http, "POST", f"{interaction.idp_url}/accept", json={})
    assert response.status_code == 202, response.text


# --- finishing ------------------------------------------------------------------------------


async def test_only_the_browser_that_started_can_finish(
    client_app: ClientApp, browser: CheckedClient, app: Starlette
) -> None:
    interaction = await interactive(client_app)
    assert (await browser.get(interaction.start_url)).status_code == 302
    # Before the decision, even the right browser is turned away, and keeps its session.
    before = await stored(app, interaction)
    assert "not decided" in refused_page(await browser.get(interaction.finish_url), 400)
    assert await stored(app, interaction) == before
    assert (await accept(client_app.http, interaction)).status_code == 202
    decided = await stored(app, interaction)
    async with CheckedClient(app) as stranger:
        refused_page(await stranger.get(interaction.finish_url), 400)  # no cookie
        # A session of its own, from another interaction, is no key to this one.
        other = await interactive(client_app)
        assert (await stranger.get(other.start_url)).status_code == 302
        refused_page(await stranger.get(interaction.finish_url), 400)
        # Nor a forged one.
        stranger.cookies.set(COOKIE, "forged-session", domain="wallet.example", path="/auth/")
        refused_page(await stranger.get(interaction.finish_url), 400)
    assert await stored(app, interaction) == decided
    finished = await browser.get(interaction.finish_url)
    assert finished.status_code == 302
    assert finished.headers["location"].startswith(f"{FINISH['uri']}?hash=")


async def test_the_finish_redirect_goes_only_to_the_registered_finish_uri(
    client_app: ClientApp, browser: CheckedClient
) -> None:
    interaction = await interactive(client_app)
    assert (await browser.get(interaction.start_url)).status_code == 302
    assert (await accept(client_app.http, interaction)).status_code == 202
    evil = "https://evil.example/steal"
    finished = await browser.get(
        interaction.finish_url,
        params={"redirect": evil, "finish": evil, "redirect_uri": evil, "uri": evil},
        headers={"Referer": evil},
    )
    assert finished.status_code == 302, finished.text
    location = finished.headers["location"]
    assert urlsplit(location)._replace(query="").geturl() == FINISH["uri"]
    assert "evil" not in location


async def test_without_a_finish_uri_the_owner_sees_a_page_and_the_client_polls(
    client_app: ClientApp, browser: CheckedClient
) -> None:
    interaction = await interactive(client_app, finish=False)
    assert (await browser.get(interaction.start_url)).status_code == 302
    pending = await client_app.continue_(interaction.grant)
    assert pending.status_code == 200 and "access_token" not in pending.json()
    assert (await accept(client_app.http, interaction)).status_code == 202
    page = await browser.get(interaction.finish_url)
    assert page.status_code == 200, page.text
    assert page.headers["content-type"].startswith("text/html")
    assert "You approved the request" in page.text and "return to the app" in page.text
    assert COOKIE not in browser.cookies
    issued = await client_app.continue_(interaction.grant)
    assert issued.status_code == 200, issued.text
    assert await client_app.use(issued.json()["access_token"]["value"]) == AUTHENTICATED
    refused_page(await browser.get(interaction.finish_url), 400)

    denied = await interactive(client_app, finish=False)
    assert (await browser.get(denied.start_url)).status_code == 302
    assert (await reject(client_app.http, denied)).status_code == 202
    page = await browser.get(denied.finish_url)
    assert page.status_code == 200 and "You denied the request" in page.text
    assert error_code(await client_app.continue_(denied.grant), 401) == "request_denied"


async def test_a_cancelled_grant_cannot_be_decided_or_started(
    client_app: ClientApp, browser: CheckedClient, app: Starlette
) -> None:
    interaction = await interactive(client_app)
    assert (await client_app.cancel(interaction.grant)).status_code == 204
    before = await stored(app, interaction)
    assert error_code(await accept(client_app.http, interaction), 400) == "invalid_interaction"
    refused_page(await browser.get(interaction.start_url), 400)
    assert await stored(app, interaction) == before


def test_pages_escape_their_text() -> None:
    page = html_page("<b>title</b>", 'a "quote" & <script>alert(1)</script>', 400)
    body = bytes(page.body).decode()
    assert page.status_code == 400
    assert "<script>" not in body and "<b>" not in body
    assert "&lt;script&gt;" in body and "&amp;" in body and "&quot;quote&quot;" in body
    assert page.headers["content-security-policy"].startswith("default-src 'none'")
