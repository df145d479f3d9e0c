"""The built-in identity provider: where an account owner logs in and approves or denies an
app's interactive grant, when the ASE has no identity provider of its own
(`Settings.idp_consent_url` unset).

Pages, under `<public_url>/idp` (`pages.py`; HTML from `templates/`, no JavaScript):

    GET  /idp/consent?interactId&nonce  what the app asks, in plain words (`wording.py`),
                                        with Approve and Deny; the login page first
    POST /idp/consent                   the decision -> 303 to the authorization server's
                                        finish URL, which sends the browser back to the app
    GET  /idp/login?next, POST          username and password (argon2)
    POST /idp/logout

The consent page is rendered from `grant_details(grant)`, the same stored data the grant's
tokens will carry. Sessions, CSRF tokens and login attempt limits: `sessions.py`. The
client's name: `clients.py`.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx
import jinja2
import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from opase.authorization.interactions import decide, find_interaction, finish_url, grant_details
from opase.bounded_read import read_bounded
from opase.errors import InvalidInteraction, UnknownInteraction
from opase.idp.clients import describe_client
from opase.idp.sessions import (
    SESSION_COOKIE,
    SESSION_LIFETIME_S,
    BrowserSession,
    count_login_attempt,
    create_session,
    end_session,
    forget_login_attempt,
    load_session,
    purge_login_attempts,
)
from opase.idp.wording import access_wording, expiry_words, subject_words
from opase.services import Services
from opase.settings import Settings
from opase.storage.tables import Grant, Owner, WalletAddress, utc_now
from opase.wallets.directory import IDP_PATH

log = logging.getLogger("opase.idp.pages")

FORM_BYTES_MAX: Final = 8 * 1024
FORM_FIELD_COUNT_MAX: Final = 16
NEXT_LENGTH_MAX: Final = 2048
PAGE_HEADERS: Final = {
    # Pages hold CSRF tokens and grant details: never cached, never framed (clickjacking on
    # the Approve button), no scripts or external resources at all.
    "Cache-Control": "no-store",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}
DECISIONS: Final = {"approve": True, "deny": False}
_password_hasher: Final = PasswordHasher()


def idp_base_path(settings: Settings) -> str:
    """Where the pages answer: `/idp` under the public URL's path."""
    return urlsplit(settings.public_url).path.rstrip("/") + IDP_PATH


@functools.cache
def _unknown_owner_hash() -> str:
    # Checked against when the username is unknown, so that the answer takes as long.
    return _password_hasher.hash("opase: no owner has this username")


def _password_matches(password_hash: str | None, password: str) -> bool:
    try:
        _password_hasher.verify(password_hash or _unknown_owner_hash(), password)
    except (VerificationError, InvalidHashError):
        return False
    return password_hash is not None


def _named_wallet_addresses(details: Mapping[str, Any]) -> set[str]:
    """Every wallet address the grant names: access identifiers and subject ids."""
    named = {item["identifier"] for item in details["access"] if "identifier" in item}
    subject = details.get("subject") or {}
    named |= {sub["id"] for sub in subject.get("sub_ids", ()) if "id" in sub}
    return {str(url) for url in named}


class IdpPages:
    """The pages, with what they share: settings, database sessions, templates."""

    def __init__(
        self,
        settings: Settings,
        services: Services,
        *,
        http_transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.settings = settings
        self.services = services
        self.http_transport = http_transport
        """For fetching client wallet addresses; tests put a mock here."""
        self.base_path = idp_base_path(settings)
        self.secure_cookie = settings.public_url.startswith("https://")
        self.site_name = urlsplit(settings.public_url).netloc
        self.templates = jinja2.Environment(
            loader=jinja2.PackageLoader("opase.idp.pages", "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
        )

    def app(self) -> Starlette:
        app = Starlette(
            routes=[
                Route("/login", self.login_page, methods=["GET"]),
                Route("/login", self.login, methods=["POST"]),
                Route("/consent", self.consent_page, methods=["GET"]),
                Route("/consent", self.consent_decision, methods=["POST"]),
                Route("/logout", self.logout, methods=["POST"]),
            ],
            exception_handlers={HTTPException: self._http_error, Exception: self._server_error},
        )
        app.router.redirect_slashes = False
        app.state.pages = self
        return app

    # --- rendering -----------------------------------------------------------------------

    def render(self, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
        page = self.templates.get_template(template).render(
            base_path=self.base_path, site_name=self.site_name, **context
        )
        return HTMLResponse(page, status_code, headers=PAGE_HEADERS)

    def error(self, status_code: int, title: str, message: str, **context: Any) -> HTMLResponse:
        context.setdefault("login_link", False)
        return self.render("error.html", status_code, title=title, message=message, **context)

    def redirect(self, location: str) -> RedirectResponse:
        return RedirectResponse(location, 303, headers={"Cache-Control": "no-store"})

    def set_cookie(self, response: Response, cookie_value: str) -> None:
        response.set_cookie(
            SESSION_COOKIE, cookie_value, max_age=SESSION_LIFETIME_S, path=self.base_path,
            secure=self.secure_cookie, httponly=True, samesite="lax",
        )  # fmt: skip

    def delete_cookie(self, response: Response) -> None:
        response.delete_cookie(
            SESSION_COOKIE, path=self.base_path, secure=self.secure_cookie, httponly=True,
            samesite="lax",
        )  # fmt: skip

    async def _http_error(self, request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if exc.status_code == 404:
            return self.error(404, "Page not found", "There is no page at this address.")
        return self.error(exc.status_code, "Request refused", str(exc.detail))

    async def _server_error(self, request: Request, exc: Exception) -> Response:
        log.exception("identity provider page %s failed", request.url.path, exc_info=exc)
        return self.error(500, "Something went wrong", "Please try again in a moment.")

    # --- request input -------------------------------------------------------------------

    async def read_form(self, request: Request) -> dict[str, str] | None:
        """The urlencoded form of a POST (the first value of each field), or None when the
        body is not one: too large, another media type, not UTF-8, too many fields."""
        media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media_type != "application/x-www-form-urlencoded":
            return None
        try:
            body = await read_bounded(
                request.stream(),
                declared_length=request.headers.get("content-length"),
                size_bytes_max=FORM_BYTES_MAX,
                too_large=lambda: ValueError("form too large"),
            )
            pairs = parse_qsl(
                body.decode(), keep_blank_values=True, max_num_fields=FORM_FIELD_COUNT_MAX
            )
        except ValueError:  # UnicodeDecodeError is one
            return None
        form: dict[str, str] = {}
        for name, value in pairs:
            form.setdefault(name, value)
        return form

    def safe_next(self, value: str | None) -> str:
        """Where to go after logging in: only a path of these pages (never another site or
        another server on this one: no open redirect); the login page otherwise."""
        default = f"{self.base_path}/login"
        if not value or len(value) > NEXT_LENGTH_MAX or not value.isprintable():
            return default
        if "\\" in value or not value.startswith(self.base_path + "/"):
            return default
        parts = urlsplit(value)
        if parts.scheme or parts.netloc or ".." in parts.path.split("/"):
            return default
        return value

    async def browser_session(self, request: Request) -> BrowserSession | None:
        async with self.services.sessions() as db:
            return await load_session(db, request.cookies.get(SESSION_COOKIE), utc_now())

    # --- login ---------------------------------------------------------------------------

    async def login_page(self, request: Request) -> Response:
        next_path = self.safe_next(request.query_params.get("next"))
        return await self.login_form(await self.browser_session(request), next_path=next_path)

    async def login_form(
        self,
        browser: BrowserSession | None,
        *,
        next_path: str,
        status_code: int = 200,
        error: str | None = None,
        username: str = "",
        headers: Mapping[str, str] | None = None,
    ) -> Response:
        """The login form, in the browser's session; a new anonymous one when it has none
        (its CSRF token is the form's)."""
        cookie_value = None
        if browser is None:
            async with self.services.sessions() as db:
                cookie_value, browser = await create_session(db, None, utc_now())
                await db.commit()
        response = self.render(
            "login.html", status_code, csrf=browser.csrf_token, next_path=next_path,
            error=error, username=username, logged_in_as=browser.username,
        )  # fmt: skip
        response.headers.update(headers or {})
        if cookie_value is not None:
            self.set_cookie(response, cookie_value)
        return response

    async def login(self, request: Request) -> Response:
        form = await self.read_form(request)
        browser = await self.browser_session(request)
        next_path = self.safe_next(None if form is None else form.get("next"))
        if form is None or browser is None or not browser.csrf_matches(form.get("csrf")):
            # No session (cookies off, or it expired) or a form from elsewhere: a fresh form.
            return await self.login_form(
                browser, next_path=next_path, status_code=403,
                error="This form expired or did not come from this site. Please log in again.",
            )  # fmt: skip
        username, password = form.get("username", ""), form.get("password", "")
        address = request.client.host if request.client is not None else "unknown"
        async with self.services.sessions() as db:
            await purge_login_attempts(db, utc_now())
            await db.commit()
        async with self.services.sessions() as db:
            retry_after_s = await count_login_attempt(db, username, address, utc_now())
            await db.commit()
        if retry_after_s is not None:
            minutes = -(-retry_after_s // 60)
            return await self.login_form(
                browser, next_path=next_path, status_code=429, username=username,
                error=f"Too many failed attempts. Try again in {minutes} minutes.",
                headers={"Retry-After": str(retry_after_s)},
            )  # fmt: skip
        async with self.services.sessions() as db:
            owner = (
                await db.execute(sa.select(Owner).where(col(Owner.username) == username))
            ).scalar_one_or_none()
        password_hash = None if owner is None else owner.password_hash
        # argon2 is slow on purpose (tens of ms of CPU): keep it off the event loop.
        if owner is None or not await asyncio.to_thread(_password_matches, password_hash, password):
            return await self.login_form(
                browser, next_path=next_path, status_code=401, username=username,
                error="Wrong username or password.",
            )  # fmt: skip
        async with self.services.sessions() as db:
            await forget_login_attempt(db, username, address)
            await end_session(db, browser.id_sha256)
            cookie_value, _ = await create_session(db, owner.id, utc_now())
            await db.commit()
        response = self.redirect(next_path)
        self.set_cookie(response, cookie_value)
        return response

    async def logout(self, request: Request) -> Response:
        form = await self.read_form(request)
        browser = await self.browser_session(request)
        if browser is not None:
            if form is None or not browser.csrf_matches(form.get("csrf")):
                return self.error(
                    403, "Not logged out",
                    "This form expired or did not come from this site. Reload the page and "
                    "try again.",
                )  # fmt: skip
            async with self.services.sessions() as db:
                await end_session(db, browser.id_sha256)
                await db.commit()
        response = self.redirect(f"{self.base_path}/login")
        self.delete_cookie(response)
        return response

    # --- consent -------------------------------------------------------------------------

    def _login_redirect(self, interact_id: str | None, nonce: str | None) -> Response:
        next_path = None
        if interact_id is not None and nonce is not None:
            query = urlencode({"interactId": interact_id, "nonce": nonce})
            next_path = f"{self.base_path}/consent?{query}"
        query = urlencode({"next": self.safe_next(next_path)})
        return self.redirect(f"{self.base_path}/login?{query}")

    async def consent_page(self, request: Request) -> Response:
        interact_id = request.query_params.get("interactId", "")
        nonce = request.query_params.get("nonce", "")
        browser = await self.browser_session(request)
        if browser is None or browser.owner_id is None:
            return self._login_redirect(interact_id, nonce)
        now = utc_now()
        async with self.services.sessions() as db:
            try:
                grant = await find_interaction(db, interact_id, nonce)
            except UnknownInteraction:
                return self._unknown_interaction()
            refusal = await self._refusal(db, grant, browser, now)
            if refusal is not None:
                return refusal
            details = grant_details(grant)
            client = await describe_client(
                db, self.settings, details["client"],
                fetchable=self.services.client_keys.fetchable, transport=self.http_transport,
            )  # fmt: skip
        assert grant.interact_id is not None and grant.interaction_expires_at is not None
        return self.render(
            "consent.html",
            client=client,
            items=[access_wording(item) for item in details["access"]],
            subject=subject_words(details.get("subject")),
            expires=expiry_words(grant.interaction_expires_at, now),
            interact_id=str(grant.interact_id),
            nonce=grant.interact_nonce,
            csrf=browser.csrf_token,
            username=browser.username,
        )

    async def consent_decision(self, request: Request) -> Response:
        form = await self.read_form(request)
        if form is None:
            return self.error(400, "Request refused", "This form could not be read.")
        interact_id, nonce = form.get("interactId", ""), form.get("nonce", "")
        browser = await self.browser_session(request)
        if browser is None or browser.owner_id is None:
            return self._login_redirect(interact_id, nonce)
        if not browser.csrf_matches(form.get("csrf")):
            return self.error(
                403, "Request refused",
                "This form expired or did not come from this site. Nothing was approved or "
                "denied. Open the request again from the app.",
            )  # fmt: skip
        approve = DECISIONS.get(form.get("decision", ""))
        if approve is None:
            return self.error(400, "Request refused", "Choose Approve or Deny.")
        now = utc_now()
        async with self.services.sessions() as db:
            try:
                grant = await find_interaction(db, interact_id, nonce)
            except UnknownInteraction:
                return self._unknown_interaction()
            refusal = await self._refusal(db, grant, browser, now)
            if refusal is not None:
                return refusal
            try:
                decided = await decide(db, interact_id, nonce, approve=approve)
            except InvalidInteraction as exc:
                return self.error(400, "This request is over", exc.description)
            except UnknownInteraction:
                return self._unknown_interaction()
            await db.commit()
        return self.redirect(finish_url(self.settings, decided))

    def _unknown_interaction(self) -> Response:
        return self.error(
            404, "Request not found",
            "There is no request at this address. Open it again from the app.",
        )  # fmt: skip

    async def _refusal(
        self, db: AsyncSession, grant: Grant, browser: BrowserSession, now: datetime
    ) -> Response | None:
        """Why this owner may not decide this grant now, as a page; None: they may."""
        assert browser.owner_id is not None
        details = grant_details(grant)
        if not await self._owns_all(db, browser.owner_id, _named_wallet_addresses(details)):
            return self.error(
                403, "Not your account",
                f"You are logged in as {browser.username}, and this request is for an account "
                "that is not yours. Log in as the account's owner to decide.",
                login_link=True,
            )  # fmt: skip
        if grant.state != "pending":
            return self.error(
                400, "This request is over",
                f"It was decided already (the grant is {grant.state}). Start again from the app "
                "if you need to.",
            )  # fmt: skip
        if grant.interaction_expires_at is None or grant.interaction_expires_at <= now:
            return self.error(
                400, "This request has expired",
                "Nothing was approved. Go back to the app and start again.",
            )  # fmt: skip
        return None

    async def _owns_all(self, db: AsyncSession, owner_id: uuid.UUID, urls: set[str]) -> bool:
        """The owner owns every one of these wallet addresses (active, of this ASE). A grant
        that names none is nobody's to approve here."""
        public_url = self.settings.public_url
        paths = {url[len(public_url) :] for url in urls if url.startswith(public_url + "/")}
        if not urls or len(paths) != len(urls):
            return False
        query = sa.select(col(WalletAddress.path)).where(
            col(WalletAddress.path).in_(paths),
            col(WalletAddress.owner_id) == owner_id,
            col(WalletAddress.status) == "active",
        )
        return set((await db.execute(query)).scalars()) == paths


def build_idp_app(
    settings: Settings,
    services: Services,
    *,
    http_transport: httpx.AsyncBaseTransport | None = None,
) -> Starlette:
    """The pages as an app to mount at `idp_base_path(settings)`."""
    return IdpPages(settings, services, http_transport=http_transport).app()
