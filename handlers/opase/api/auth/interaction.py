"""The interaction endpoints (specs/interaction.yaml): where the owner's browser starts and
finishes an interactive grant.

The decisions are `opase.authorization.interactions`'; this module is the browser's side of
them: the session cookie that ties the finish to the browser that started, the redirects,
and refusals as small HTML pages (a person reads these, not a client app). A refusal rolls
its transaction back, so it changes nothing.
"""

from __future__ import annotations

import html
from typing import Final
from urllib.parse import urlsplit

from starlette.requests import cookie_parser
from starlette.responses import HTMLResponse, RedirectResponse, Response

from opase.authorization import interactions as service
from opase.errors import InvalidInteraction, OpaseError, UnknownInteraction
from opase.settings import Settings
from opase.web.context import RequestContext

SESSION_COOKIE: Final = "opase_interaction"
NO_STORE: Final = {"Cache-Control": "no-store"}
"""Every answer here is for one browser, once: no cache may keep or replay it."""
PAGE_HEADERS: Final = {
    **NO_STORE,
    # Static text only: nothing to load, nothing to frame, no URL (with its nonce) to leak.
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
}
REFUSAL_TITLES: Final[dict[type[OpaseError], str]] = {
    UnknownInteraction: "Unknown request",
    InvalidInteraction: "This request cannot continue",
}


def html_page(title: str, message: str, status_code: int = 200) -> HTMLResponse:
    """The one way this module shows the owner something: a minimal page, text escaped."""
    body = (
        '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(title)}</title>\n</head>\n<body>\n"
        f"<h1>{html.escape(title)}</h1>\n<p>{html.escape(message)}</p>\n</body>\n</html>\n"
    )
    return HTMLResponse(body, status_code=status_code, headers=PAGE_HEADERS)


def refusal_page(exc: OpaseError) -> HTMLResponse:
    """An error for a browser: the error's status and description, as a page, not JSON."""
    title = REFUSAL_TITLES.get(type(exc), "Something went wrong")
    message = exc.description[:1].upper() + exc.description[1:].rstrip(".") + "."
    return html_page(title, message, exc.status_code)


def _cookie_path(settings: Settings, ctx: RequestContext) -> str:
    """This interaction's own URLs (start and finish): a browser may run several at once."""
    base = urlsplit(settings.auth_server_url).path.rstrip("/")
    return f"{base}/interact/{ctx.path_params['id']}/{ctx.path_params['nonce']}"


def _session_token(ctx: RequestContext) -> str:
    # HTTP/2 may split cookies over several headers (RFC 9113 8.2.3).
    cookies = cookie_parser("; ".join(ctx.headers.getlist("cookie")))
    return cookies.get(SESSION_COOKIE, "")


async def start_interaction(ctx: RequestContext) -> Response:
    """GET /interact/{id}/{nonce}: remember this browser, send the owner to consent."""
    settings = ctx.settings
    try:
        async with ctx.transaction() as session:
            started = await service.start_interaction(
                session, settings, ctx.path_params["id"], ctx.path_params["nonce"]
            )
    except OpaseError as exc:
        return refusal_page(exc)
    response = RedirectResponse(started.consent_url, status_code=302, headers=NO_STORE)
    response.set_cookie(
        SESSION_COOKIE,
        started.session_token,
        max_age=settings.interaction_lifetime_s,
        path=_cookie_path(settings, ctx),
        secure=settings.auth_server_url.startswith("https://"),
        httponly=True,
        samesite="lax",  # sent on the top-level navigation back from the identity provider
    )
    return response


async def finish_interaction(ctx: RequestContext) -> Response:
    """GET /interact/{id}/{nonce}/finish: back to the client, once, from the browser that
    started. Only the finish URI the client registered is ever a destination: nothing the
    browser sends (a query, a header) is read besides the path and the cookie."""
    settings = ctx.settings
    try:
        async with ctx.transaction() as session:
            finished = await service.finish_interaction(
                session, settings, ctx.path_params["id"], ctx.path_params["nonce"],
                _session_token(ctx),
            )  # fmt: skip
    except OpaseError as exc:
        return refusal_page(exc)
    response: Response
    if finished.redirect_url is not None:
        response = RedirectResponse(finished.redirect_url, status_code=302, headers=NO_STORE)
    elif finished.approved:
        response = html_page(
            "Request approved", "You approved the request. Close this page and return to the app."
        )
    else:
        response = html_page(
            "Request denied", "You denied the request. Close this page and return to the app."
        )
    # The session has done its work (the grant forgot it); the browser may forget it too.
    response.delete_cookie(
        SESSION_COOKIE,
        path=_cookie_path(settings, ctx),
        secure=settings.auth_server_url.startswith("https://"),
        httponly=True,
        samesite="lax",
    )
    return response
