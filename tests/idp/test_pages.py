"""The built-in identity provider's pages through HTTP (httpx over ASGI against build_app):
login, consent, the decision, and every refusal, each with the grant's stored state checked
before and after."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import sqlalchemy as sa
from sqlmodel import col
from starlette.applications import Starlette

from opase.app import build_app
from opase.cli.sandbox import SEED, ase_settings, seed_ase
from opase.idp.sessions import (
    LOGIN_ATTEMPTS_PER_USERNAME_MAX,
    SESSION_COOKIE,
    count_login_attempt,
    purge_login_attempts,
)
from opase.settings import Settings
from opase.storage.migrate import upgrade
from opase.storage.tables import Grant, IdpLoginFailure, IdpSession, utc_now
from opase.wallets.directory import create_asset, create_owner, create_wallet_address
from tests.client import CheckedClient
from tests.money import usd
from tests.signing import ClientIdentity, GnapAuth, register_client
from tests.world import PUBLIC_URL

AUTH = f"{PUBLIC_URL}/auth"
ALICE = f"{PUBLIC_URL}/alice"
BOB = f"{PUBLIC_URL}/bob"
PASSWORDS = {"alice": "alice's long passphrase", "bob": "bob's other passphrase"}
RECEIVER = "https://bank.example/incoming-payments/8c0a4b1e-7c4e-4d1b-9b8f-000000000001"
INTERVAL = "R/2026-12-01T00:00:00Z/P1M"
FINISH = {"method": "redirect", "uri": "https://client.example/finish", "nonce": "client-nonce"}


# --- a small view of the HTML -------------------------------------------------------------


class Html(HTMLParser):
    """Inputs, labels, buttons and the visible text of a page."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.inputs: dict[str, dict[str, str | None]] = {}
        self.labels: dict[str, str] = {}
        self.buttons: list[str] = []
        self.text_parts: list[str] = []
        self._label_for: str | None = None
        self._in_button = False
        self._in_style = False
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "input" and attributes.get("name"):
            self.inputs[str(attributes["name"])] = attributes
        elif tag == "label":
            self._label_for = attributes.get("for")
        elif tag == "button":
            self._in_button = True
            self.buttons.append("")
        elif tag == "style":
            self._in_style = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "label":
            self._label_for = None
        elif tag == "button":
            self._in_button = False
        elif tag == "style":
            self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            return
        if self._label_for is not None:
            self.labels[self._label_for] = self.labels.get(self._label_for, "") + data.strip()
        if self._in_button:
            self.buttons[-1] += data.strip()
        self.text_parts.append(data)

    @property
    def text(self) -> str:
        return " ".join(" ".join(self.text_parts).split())

    def value(self, name: str) -> str:
        return str(self.inputs[name]["value"])


def page(response: httpx.Response) -> Html:
    assert response.headers["content-type"].startswith("text/html"), response.headers
    return Html(response.text)


# --- the world: two owners, their wallet addresses, a client app -------------------------


@dataclass
class World:
    app: Starlette
    identity: ClientIdentity


@pytest.fixture
async def world(app: Starlette) -> World:
    async with app.state.services.sessions() as session:
        usd = await create_asset(session, "USD", 2)
        for username, path in (("alice", "/alice"), ("bob", "/bob")):
            owner = await create_owner(session, username, PASSWORDS[username])
            await create_wallet_address(session, path, usd.id, username.title(), owner.id)
        await session.commit()
    return World(app, await register_client(app))


def browser_for(app: Starlette, base_url: str = PUBLIC_URL) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base_url)


@pytest.fixture
async def browser(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    async with browser_for(app) as client:
        yield client


def outgoing(**limits: Any) -> dict[str, Any]:
    item: dict[str, Any] = {
        "type": "outgoing-payment", "actions": ["create", "read", "list"], "identifier": ALICE,
    }  # fmt: skip
    if limits:
        item["limits"] = limits
    return item


@dataclass(frozen=True)
class Interaction:
    grant_id: uuid.UUID
    interact_id: str
    nonce: str

    @property
    def consent_path(self) -> str:
        return f"/idp/consent?interactId={self.interact_id}&nonce={self.nonce}"

    @property
    def finish_url(self) -> str:
        return f"{AUTH}/interact/{self.interact_id}/{self.nonce}/finish"


async def request_grant(world: World, *access: dict[str, Any], **extra: Any) -> Interaction:
    """An interactive grant, asked for over HTTP by the client app, as any client does."""
    body = {
        "access_token": {"access": list(access) or [outgoing(debitAmount=usd("2500"))]},
        "client": {"walletAddress": world.identity.wallet_address_url},
        "interact": {"start": ["redirect"], "finish": FINISH},
        **extra,
    }
    async with CheckedClient(world.app) as client:
        response = await client.post(AUTH, json=body, auth=GnapAuth(world.identity))
    assert response.status_code == 200, response.text
    granted = response.json()
    interact_id, nonce = urlsplit(granted["interact"]["redirect"]).path.split("/")[-2:]
    grant_id = uuid.UUID(granted["continue"]["uri"].rsplit("/", 1)[1])
    return Interaction(grant_id, interact_id, nonce)


async def stored(app: Starlette, grant_id: uuid.UUID) -> Grant:
    async with app.state.services.sessions() as session:
        grant = await session.get(Grant, grant_id)
    assert grant is not None
    return grant


async def assert_untouched(app: Starlette, interaction: Interaction) -> None:
    grant = await stored(app, interaction.grant_id)
    assert (grant.state, grant.interact_ref, grant.finalization_reason) == ("pending", None, None)


async def log_in(
    browser: httpx.AsyncClient, username: str, password: str | None = None, next_path: str = ""
) -> httpx.Response:
    form = page(await browser.get("/idp/login"))
    return await browser.post("/idp/login", data={
        "username": username, "password": PASSWORDS.get(username, "") if password is None else password,
        "csrf": form.value("csrf"), "next": next_path,
    })  # fmt: skip


async def consent(browser: httpx.AsyncClient, interaction: Interaction) -> httpx.Response:
    return await browser.get(interaction.consent_path)


async def decide(
    browser: httpx.AsyncClient, interaction: Interaction, decision: str, **overrides: str
) -> httpx.Response:
    shown = page(await consent(browser, interaction))
    form = {
        "csrf": shown.value("csrf"), "interactId": shown.value("interactId"),
        "nonce": shown.value("nonce"), "decision": decision,
    }  # fmt: skip
    form.update(overrides)
    return await browser.post("/idp/consent", data=form)


# --- login ------------------------------------------------------------------------------


async def test_the_consent_page_wants_a_login_first_and_comes_back_after(
    world: World, browser: httpx.AsyncClient
) -> None:
    interaction = await request_grant(world)
    response = await consent(browser, interaction)
    assert response.status_code == 303
    location = urlsplit(response.headers["location"])
    assert location.path == "/idp/login" and not location.netloc
    [next_path] = parse_qs(location.query)["next"]
    assert next_path == interaction.consent_path
    login = page(await browser.get(response.headers["location"]))
    # Accessible names: the labels name the inputs, the buttons say what they do.
    assert login.labels == {"username": "Username", "password": "Password"}
    assert login.inputs["username"]["id"] == "username"
    assert login.inputs["password"]["type"] == "password"
    assert login.buttons == ["Log in"]
    assert login.value("next") == next_path
    logged_in = await browser.post("/idp/login", data={
        "username": "alice", "password": PASSWORDS["alice"], "csrf": login.value("csrf"),
        "next": login.value("next"),
    })  # fmt: skip
    assert logged_in.status_code == 303
    assert logged_in.headers["location"] == interaction.consent_path
    assert (await consent(browser, interaction)).status_code == 200
    await assert_untouched(world.app, interaction)


async def test_a_wrong_password_gets_the_form_again_with_a_generic_error(
    world: World, browser: httpx.AsyncClient
) -> None:
    for username, password in (("alice", "not it"), ("nobody", "whatever"), ("alice", "")):
        response = await log_in(browser, username, password)
        assert response.status_code == 401
        shown = page(response)
        assert "Wrong username or password." in shown.text
        assert shown.value("username") == username
    interaction = await request_grant(world)
    assert (await consent(browser, interaction)).status_code == 303  # still not logged in


async def test_too_many_failures_lock_the_username_even_for_the_right_password(
    world: World, browser: httpx.AsyncClient
) -> None:
    for _ in range(LOGIN_ATTEMPTS_PER_USERNAME_MAX):
        assert (await log_in(browser, "alice", "guess")).status_code == 401
    locked = await log_in(browser, "alice", "guess")
    assert locked.status_code == 429
    assert "Too many failed attempts" in page(locked).text
    assert 0 < int(locked.headers["retry-after"]) <= 15 * 60
    right = await log_in(browser, "alice")
    assert right.status_code == 429
    async with world.app.state.services.sessions() as session:
        owners = (await session.execute(sa.select(col(IdpSession.owner_id)))).scalars().all()
    assert set(owners) == {None}  # no session was logged in
    # Another username from the same browser is not locked.
    assert (await log_in(browser, "bob")).status_code == 303
    # When the window has passed, the right password works again.
    async with world.app.state.services.sessions() as session:
        await session.execute(
            sa.update(IdpLoginFailure).values(window_started_at=utc_now() - timedelta(hours=1))
        )
        await session.commit()
    assert (await log_in(browser, "alice")).status_code == 303


async def test_unknown_usernames_lock_the_same_way(
    world: World, browser: httpx.AsyncClient
) -> None:
    statuses = [(await log_in(browser, "nobody", "x")).status_code for _ in range(7)]
    assert statuses == [401] * LOGIN_ATTEMPTS_PER_USERNAME_MAX + [429, 429]


async def test_a_success_clears_the_username_count(
    world: World, browser: httpx.AsyncClient
) -> None:
    for _ in range(LOGIN_ATTEMPTS_PER_USERNAME_MAX - 1):
        assert (await log_in(browser, "alice", "guess")).status_code == 401
    assert (await log_in(browser, "alice")).status_code == 303
    for _ in range(LOGIN_ATTEMPTS_PER_USERNAME_MAX):
        assert (await log_in(browser, "alice", "guess")).status_code == 401


async def test_parallel_attempts_are_each_counted(world: World) -> None:
    now = utc_now()
    services = world.app.state.services

    async def attempt() -> int | None:
        async with services.sessions() as session:
            retry_after_s = await count_login_attempt(session, "alice", "10.0.0.1", now)
            await session.commit()
        return retry_after_s

    # All at once: none may slip through between another's check and its count.
    results = await asyncio.gather(*(attempt() for _ in range(8)))
    assert results.count(None) == LOGIN_ATTEMPTS_PER_USERNAME_MAX
    assert all(r > 0 for r in results if r is not None)


async def test_counts_of_past_windows_are_forgotten(world: World) -> None:
    services = world.app.state.services
    long_ago = utc_now() - timedelta(hours=1)
    async with services.sessions() as session:
        for username in ("alice", "bob", "nobody"):
            await count_login_attempt(session, username, "10.0.0.1", long_ago)
        await session.commit()
    async with services.sessions() as session:
        await count_login_attempt(session, "alice", "10.0.0.2", utc_now())
        await purge_login_attempts(session, utc_now())
        await session.commit()
        rows = (await session.execute(sa.select(IdpLoginFailure))).scalars().all()
    assert [row.failure_count for row in rows] == [1, 1]  # alice (a new window), 10.0.0.2


async def test_the_login_form_needs_its_csrf_token(
    world: World, browser: httpx.AsyncClient
) -> None:
    page(await browser.get("/idp/login"))
    for csrf in ("forged", ""):
        response = await browser.post(
            "/idp/login", data={"username": "alice", "password": PASSWORDS["alice"], "csrf": csrf}
        )
        assert response.status_code == 403
        assert "did not come from this site" in page(response).text
    # Without the session cookie (another site's form), the same.
    async with browser_for(world.app) as stranger:
        response = await stranger.post(
            "/idp/login", data={"username": "alice", "password": PASSWORDS["alice"], "csrf": "x"}
        )
    assert response.status_code == 403


async def test_the_session_cookie_is_httponly_lax_secure_and_new_at_login(
    world: World, browser: httpx.AsyncClient
) -> None:
    form = await browser.get("/idp/login")
    anonymous = form.headers["set-cookie"]
    attributes = [part.strip().lower() for part in anonymous.split(";")]
    assert "httponly" in attributes and "samesite=lax" in attributes and "secure" in attributes
    assert "path=/idp" in attributes
    before = browser.cookies[SESSION_COOKIE]
    logged_in = await browser.post("/idp/login", data={
        "username": "alice", "password": PASSWORDS["alice"], "csrf": page(form).value("csrf"),
    })  # fmt: skip
    assert logged_in.status_code == 303
    cookie = logged_in.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie and "secure" in cookie
    after = browser.cookies[SESSION_COOKIE]
    assert after != before  # no session fixation: the value known before is worth nothing
    interaction = await request_grant(world)
    async with browser_for(world.app) as planted:
        planted.cookies.set(SESSION_COOKIE, before, domain="wallet.example", path="/idp")
        assert (await consent(planted, interaction)).status_code == 303
    assert (await consent(browser, interaction)).status_code == 200


async def test_the_cookie_is_not_secure_on_plain_http(tmp_path: Path, database_url: str) -> None:
    settings = Settings(
        public_url="http://127.0.0.1:4000", data_dir=tmp_path, database_url=database_url
    )
    await upgrade(settings)
    app = build_app(settings)
    try:
        async with browser_for(app, settings.public_url) as client:
            response = await client.get("/idp/login")
        attributes = [p.strip().lower() for p in response.headers["set-cookie"].split(";")]
        assert "httponly" in attributes and "samesite=lax" in attributes
        assert "secure" not in attributes
    finally:
        await app.state.services.close()


@pytest.mark.parametrize(
    "next_path",
    [
        "https://evil.example/idp/consent",
        "//evil.example/idp/consent",
        "/\\evil.example",
        "/auth/continue/x",
        "/idp/../alice",
        "/idpx/consent",
        "javascript:alert(1)",
    ],
)
async def test_next_never_leaves_the_pages(
    world: World, browser: httpx.AsyncClient, next_path: str
) -> None:
    response = await log_in(browser, "alice", next_path=next_path)
    assert response.status_code == 303
    assert response.headers["location"] == "/idp/login"
    shown = page(await browser.get("/idp/login", params={"next": next_path}))
    assert shown.value("next") == "/idp/login"


async def test_logging_out_ends_the_session(world: World, browser: httpx.AsyncClient) -> None:
    interaction = await request_grant(world)
    assert (await log_in(browser, "alice")).status_code == 303
    csrf = page(await consent(browser, interaction)).value("csrf")
    refused = await browser.post("/idp/logout", data={"csrf": "forged"})
    assert refused.status_code == 403
    assert (await consent(browser, interaction)).status_code == 200  # still logged in
    response = await browser.post("/idp/logout", data={"csrf": csrf})
    assert response.status_code == 303 and response.headers["location"] == "/idp/login"
    assert (await consent(browser, interaction)).status_code == 303
    async with world.app.state.services.sessions() as session:
        owners = (await session.execute(sa.select(col(IdpSession.owner_id)))).scalars().all()
    assert all(owner is None for owner in owners)


async def test_the_sandbox_owners_log_in_with_the_printed_credentials(tmp_path: Path) -> None:
    settings = ase_settings("127.0.0.1", 4000, tmp_path, SEED[0].name)
    manifest = await seed_ase(settings, SEED[0])
    app = build_app(settings)
    try:
        async with browser_for(app, settings.public_url) as client:
            for wallet in manifest["walletAddresses"]:
                owner = wallet["owner"]
                response = await log_in(client, owner["username"], owner["password"])
                assert response.status_code == 303, owner
    finally:
        await app.state.services.close()


# --- consent ------------------------------------------------------------------------------


async def test_the_consent_page_says_what_the_grant_holds(
    world: World, browser: httpx.AsyncClient
) -> None:
    limits = {"debitAmount": usd("2500"), "receiver": RECEIVER, "interval": INTERVAL}
    interaction = await request_grant(world, outgoing(**limits))
    await log_in(browser, "alice")
    response = await consent(browser, interaction)
    assert response.status_code == 200
    shown = page(response)
    text = shown.text
    assert "Client App" in text and world.identity.wallet_address_url in text
    assert f"Outgoing payments from {ALICE}" in text
    assert f"send payments from {ALICE}" in text
    assert "read and list its outgoing payments" in text
    assert "Debit your account up to USD 25.00 each month, from 1 Dec 2026" in text
    assert f"Pay only the receiver {RECEIVER}" in text
    assert "2500" not in text
    assert re.search(r"expires on \d+ \w{3} \d{4}, \d\d:\d\d UTC \(in 10 minutes\)", text)
    assert shown.buttons == ["Log out", "Approve", "Deny"]
    assert shown.value("interactId") == interaction.interact_id
    # The same data as the grant: what the tokens will carry.
    grant = await stored(world.app, interaction.grant_id)
    assert grant.access == [outgoing(**limits)]
    assert response.headers["cache-control"] == "no-store"
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert "access-control-allow-credentials" not in response.headers


async def test_the_consent_page_names_the_subject_and_other_access(
    world: World, browser: httpx.AsyncClient
) -> None:
    interaction = await request_grant(
        world,
        {"type": "incoming-payment", "actions": ["create", "read"], "identifier": ALICE},
        {"type": "quote", "actions": ["create", "read"]},
        subject={"sub_ids": [{"id": ALICE, "format": "uri"}]},
    )
    await log_in(browser, "alice")
    text = page(await consent(browser, interaction)).text
    assert f"create incoming payments into {ALICE}" in text
    assert "create quotes" in text and "read its quotes" in text
    assert f"Confirm that you own {ALICE}" in text


async def test_approving_sends_the_browser_to_the_finish_url(
    world: World, browser: httpx.AsyncClient
) -> None:
    interaction = await request_grant(world)
    await log_in(browser, "alice")
    response = await decide(browser, interaction, "approve")
    assert response.status_code == 303
    assert response.headers["location"] == interaction.finish_url
    grant = await stored(world.app, interaction.grant_id)
    assert grant.state == "approved" and grant.interact_ref is not None
    # Decided: the page and a second decision are refused, and nothing changes.
    again = await consent(browser, interaction)
    assert again.status_code == 400 and "decided already" in page(again).text
    csrf = page(await browser.get("/idp/login")).value("csrf")  # the session's token
    form = {"csrf": csrf, "interactId": interaction.interact_id, "nonce": interaction.nonce,
            "decision": "deny"}  # fmt: skip
    assert (await browser.post("/idp/consent", data=form)).status_code == 400
    assert (await stored(world.app, interaction.grant_id)).state == "approved"


async def test_denying_sends_the_browser_to_the_finish_url(
    world: World, browser: httpx.AsyncClient
) -> None:
    interaction = await request_grant(world)
    await log_in(browser, "alice")
    response = await decide(browser, interaction, "deny")
    assert response.status_code == 303
    assert response.headers["location"] == interaction.finish_url
    grant = await stored(world.app, interaction.grant_id)
    assert (grant.state, grant.interact_ref) == ("denied", None)


@pytest.mark.parametrize("csrf", ["forged-token", "", None])
async def test_a_forged_or_missing_csrf_token_changes_nothing(
    world: World, browser: httpx.AsyncClient, csrf: str | None
) -> None:
    interaction = await request_grant(world)
    await log_in(browser, "alice")
    form = {"interactId": interaction.interact_id, "nonce": interaction.nonce,
            "decision": "approve"}  # fmt: skip
    if csrf is not None:
        form["csrf"] = csrf
    response = await browser.post("/idp/consent", data=form)
    assert response.status_code == 403
    assert "Nothing was approved or denied" in page(response).text
    await assert_untouched(world.app, interaction)


async def test_another_owner_may_neither_see_nor_decide(
    world: World, browser: httpx.AsyncClient
) -> None:
    interaction = await request_grant(world)
    await log_in(browser, "bob")
    response = await consent(browser, interaction)
    assert response.status_code == 403
    assert "Not your account" in page(response).text
    csrf = page(await browser.get("/idp/login")).value("csrf")
    form = {"csrf": csrf, "interactId": interaction.interact_id, "nonce": interaction.nonce,
            "decision": "approve"}  # fmt: skip
    assert (await browser.post("/idp/consent", data=form)).status_code == 403
    await assert_untouched(world.app, interaction)


async def test_a_grant_that_names_no_wallet_address_is_nobodys_to_approve(
    world: World, browser: httpx.AsyncClient
) -> None:
    interaction = await request_grant(world, {"type": "incoming-payment", "actions": ["list-all"]})
    await log_in(browser, "alice")
    assert (await consent(browser, interaction)).status_code == 403
    await assert_untouched(world.app, interaction)


async def test_a_grant_naming_an_address_of_another_owner_too_is_refused(
    world: World, browser: httpx.AsyncClient
) -> None:
    interaction = await request_grant(
        world, outgoing(), {"type": "incoming-payment", "actions": ["read"], "identifier": BOB}
    )
    await log_in(browser, "alice")
    assert (await consent(browser, interaction)).status_code == 403


@pytest.mark.parametrize(
    "wrong", [{"nonce": "0" * 32}, {"interactId": str(uuid.uuid4())}, {"interactId": "nope"}]
)
async def test_a_wrong_nonce_or_id_is_not_found_and_changes_nothing(
    world: World, browser: httpx.AsyncClient, wrong: dict[str, str]
) -> None:
    interaction = await request_grant(world)
    await log_in(browser, "alice")
    query = {"interactId": interaction.interact_id, "nonce": interaction.nonce, **wrong}
    response = await browser.get("/idp/consent", params=query)
    assert response.status_code == 404
    assert "Request not found" in page(response).text
    response = await decide(browser, interaction, "approve", **wrong)
    assert response.status_code == 404
    await assert_untouched(world.app, interaction)


async def test_an_expired_interaction_is_refused_and_changes_nothing(
    world: World, browser: httpx.AsyncClient
) -> None:
    interaction = await request_grant(world)
    await log_in(browser, "alice")
    csrf = page(await consent(browser, interaction)).value("csrf")
    async with world.app.state.services.sessions() as session:
        await session.execute(
            sa.update(Grant)
            .where(col(Grant.id) == interaction.grant_id)
            .values(interaction_expires_at=utc_now() - timedelta(seconds=1))
        )
        await session.commit()
    response = await consent(browser, interaction)
    assert response.status_code == 400
    assert "expired" in page(response).text
    form = {"csrf": csrf, "interactId": interaction.interact_id, "nonce": interaction.nonce,
            "decision": "approve"}  # fmt: skip
    response = await browser.post("/idp/consent", data=form)
    assert response.status_code == 400
    await assert_untouched(world.app, interaction)


async def test_a_decision_must_be_approve_or_deny(world: World, browser: httpx.AsyncClient) -> None:
    interaction = await request_grant(world)
    await log_in(browser, "alice")
    assert (await decide(browser, interaction, "maybe")).status_code == 400
    await assert_untouched(world.app, interaction)


async def test_deciding_without_a_session_asks_for_a_login(
    world: World, browser: httpx.AsyncClient
) -> None:
    interaction = await request_grant(world)
    form = {"csrf": "x", "interactId": interaction.interact_id, "nonce": interaction.nonce,
            "decision": "approve"}  # fmt: skip
    response = await browser.post("/idp/consent", data=form)
    assert response.status_code == 303
    location = urlsplit(response.headers["location"])
    assert location.path == "/idp/login"
    assert parse_qs(location.query)["next"] == [interaction.consent_path]
    await assert_untouched(world.app, interaction)


async def test_a_body_that_is_not_a_small_form_is_refused(
    world: World, browser: httpx.AsyncClient
) -> None:
    await log_in(browser, "alice")
    refused = await browser.post("/idp/consent", json={"decision": "approve"})
    assert refused.status_code == 400
    big = await browser.post("/idp/consent", data={"decision": "approve", "pad": "x" * 10_000})
    assert big.status_code == 400


async def test_a_remote_client_is_named_by_its_wallet_address(
    world: World, browser: httpx.AsyncClient
) -> None:
    interaction = await request_grant(world)
    remote = "https://apps.example/shop"
    async with world.app.state.services.sessions() as session:
        await session.execute(
            sa.update(Grant)
            .where(col(Grant.id) == interaction.grant_id)
            .values(client_wallet_address=remote)
        )
        await session.commit()
    pages = idp_pages(world.app)

    def answer(request: httpx.Request) -> httpx.Response:
        assert str(request.url) == remote
        return httpx.Response(200, json={"id": remote, "publicName": "Shop <b>Co</b>"})

    pages.http_transport = httpx.MockTransport(answer)
    await log_in(browser, "alice")
    response = await consent(browser, interaction)
    assert response.status_code == 200
    assert "Shop &lt;b&gt;Co&lt;/b&gt;" in response.text  # autoescaped
    assert remote in page(response).text

    def broken(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    pages.http_transport = httpx.MockTransport(broken)
    response = await consent(browser, interaction)
    assert response.status_code == 200
    assert "unknown name" in page(response).text


def idp_pages(app: Starlette) -> Any:
    [mount] = [route for route in app.routes if getattr(route, "path", None) == "/idp"]
    return mount.app.state.pages  # type: ignore[attr-defined]


async def test_unknown_idp_paths_are_html_pages_not_wallet_addresses(
    world: World, browser: httpx.AsyncClient
) -> None:
    response = await browser.get("/idp/nothing-here")
    assert response.status_code == 404
    assert "Page not found" in page(response).text
    response = await browser.delete("/idp/login")
    assert response.status_code == 405
    async with world.app.state.services.sessions() as session:
        asset = await create_asset(session, "EUR", 2)
        for path in ("/idp", "/idp/alice"):
            with pytest.raises(ValueError, match="another server"):
                await create_wallet_address(session, path, asset.id, None)
        await create_wallet_address(session, "/idpx", asset.id, None)  # a name like any other


async def test_the_pages_are_not_served_with_an_external_identity_provider(
    tmp_path: Path, database_url: str
) -> None:
    settings = Settings(
        public_url=PUBLIC_URL, data_dir=tmp_path, database_url=database_url,
        idp_consent_url="https://idp.bank.example/consent",
    )  # fmt: skip
    await upgrade(settings)
    app = build_app(settings)
    try:
        async with browser_for(app) as client:
            response = await client.get("/idp/login")
        assert response.status_code == 404
        assert response.headers["content-type"].startswith("application/json")
    finally:
        await app.state.services.close()


async def test_the_whole_flow_from_the_clients_redirect_to_its_token(
    world: World, browser: httpx.AsyncClient
) -> None:
    body = {
        "access_token": {"access": [outgoing(debitAmount=usd("2500"), interval=INTERVAL)]},
        "client": {"walletAddress": world.identity.wallet_address_url},
        "interact": {"start": ["redirect"], "finish": FINISH},
    }
    async with CheckedClient(world.app) as client:
        asked = await client.post(AUTH, json=body, auth=GnapAuth(world.identity))
        granted = asked.json()
        # The owner's browser: the client's redirect, the login, the consent page, back.
        started = await browser.get(granted["interact"]["redirect"])
        assert started.status_code == 302
        consent_url = urlsplit(started.headers["location"])
        assert (consent_url.netloc, consent_url.path) == ("wallet.example", "/idp/consent")
        to_login = await browser.get(started.headers["location"])
        [next_path] = parse_qs(urlsplit(to_login.headers["location"]).query)["next"]
        assert (await log_in(browser, "alice", next_path=next_path)).status_code == 303
        shown = page(await browser.get(next_path))
        assert "Debit your account up to USD 25.00 each month, from 1 Dec 2026" in shown.text
        decided = await browser.post("/idp/consent", data={
            "csrf": shown.value("csrf"), "interactId": shown.value("interactId"),
            "nonce": shown.value("nonce"), "decision": "approve",
        })  # fmt: skip
        finished = await browser.get(decided.headers["location"])
        assert finished.status_code == 302
        back = urlsplit(finished.headers["location"])
        assert f"{back.scheme}://{back.netloc}{back.path}" == FINISH["uri"]
        [interact_ref] = parse_qs(back.query)["interact_ref"]
        # The client continues and gets a token for exactly what the owner read.
        continued = await client.post(
            granted["continue"]["uri"], json={"interact_ref": interact_ref},
            auth=GnapAuth(world.identity, granted["continue"]["access_token"]["value"]),
        )  # fmt: skip
    assert continued.status_code == 200, continued.text
    assert continued.json()["access_token"]["access"] == body["access_token"]["access"]
