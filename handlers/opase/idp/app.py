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

import httpx
from starlette.applications import Starlette

from opase.idp.pages import IdpPages, idp_base_path
from opase.services import Services
from opase.settings import Settings

__all__ = ["build_idp_app", "idp_base_path"]


def build_idp_app(
    settings: Settings,
    services: Services,
    *,
    http_transport: httpx.AsyncBaseTransport | None = None,
) -> Starlette:
    """The pages as an app to mount at `idp_base_path(settings)`."""
    return IdpPages(settings, services, http_transport=http_transport).app()
