"""build_app(settings): the one place where opase's pieces are wired together."""

from __future__ import annotations

import asyncio
import gc
import os
from collections.abc import AsyncIterator, Collection, Iterable
from contextlib import asynccontextmanager
from typing import Any, Final, Literal, get_args

from starlette.applications import Starlette
from starlette.datastructures import URLPath
from starlette.middleware import Middleware
from starlette.routing import BaseRoute, Match, Mount, NoMatchFound
from starlette.types import ASGIApp, Receive, Scope, Send

from opase.idp.pages import build_idp_app, idp_base_path
from opase.services import Services
from opase.settings import Settings, load_settings
from opase.web.cors import PublicCORSMiddleware
from opase.web.router import Router, render_unhandled
from opase.workers import BackgroundLoop, background_loops

"""A worker loop the app runs for its lifetime: it returns soon after the event is set."""

if not __debug__:
    # Invariants are asserted throughout; running with -O would silently drop them.
    raise RuntimeError("opase refuses to run with assertions disabled (python -O)")


class EveryRequest(BaseRoute):
    """Hands every HTTP request to the router, whatever its path: a path pattern would miss
    paths with a newline and answer them with Starlette's plain-text 404."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        return (Match.FULL, {}) if scope["type"] == "http" else (Match.NONE, {})

    def url_path_for(self, name: str, /, **path_params: Any) -> URLPath:
        raise NoMatchFound(name, path_params)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


Role = Literal["auth", "resource", "wallet"]
ROLES: Final[tuple[Role, ...]] = get_args(Role)
ROLES_ENV: Final = "OPASE_SERVE_ROLES"
"""How `opase serve --role` tells its worker processes which servers to serve (a comma
list of roles; unset: all)."""


def parse_roles(names: Iterable[str]) -> tuple[Role, ...]:
    """The roles named, in canonical order; `all` names every role. ValueError otherwise."""
    wanted = set(names)
    if "all" in wanted:
        wanted = (wanted - {"all"}) | set(ROLES)
    unknown = wanted - set(ROLES)
    if unknown or not wanted:
        raise ValueError(f"roles are all or some of {', '.join(ROLES)}, not {sorted(unknown)}")
    return tuple(role for role in ROLES if role in wanted)


def check_roles(settings: Settings, roles: Collection[Role]) -> None:
    """ValueError, saying what to set, for roles these settings cannot serve."""
    if not roles:
        raise ValueError("serve at least one of " + ", ".join(ROLES))
    if "resource" in roles and "auth" not in roles and settings.introspection_url is None:
        raise ValueError(
            "the resource server without the authorization server needs introspection_url "
            "(OPASE_INTROSPECTION_URL): the introspection listener of `opase serve --role "
            f"auth`, e.g. http://{settings.introspection_host}:{settings.introspection_port}"
        )
    url = settings.introspection_url
    if url is not None and not url.startswith(("http://", "https://")):
        raise ValueError(f"introspection_url {url!r} is not an http(s) URL")


def serves_introspection(roles: Collection[Role]) -> bool:
    """The introspection listener runs beside an authorization server whose resource
    server runs elsewhere (with both in one process, the resource server asks in process)."""
    return "auth" in roles and "resource" not in roles


def build_app(
    settings: Settings, services: Services | None = None, roles: Collection[Role] = ROLES
) -> Starlette:
    """The public app: the wallet address, authorization and resource servers, or those of
    `roles` only (the others answer 404 here)."""
    check_roles(settings, roles)
    services = services or Services.create(settings)
    server_urls = {
        "auth": settings.auth_server_url,
        "resource": settings.resource_server_url,
        "wallet_address": settings.public_url,
    }
    served = {"wallet_address" if role == "wallet" else role for role in roles}
    router = Router(settings, services, {k: v for k, v in server_urls.items() if k in served})
    cors = Middleware(PublicCORSMiddleware, allow_origins=settings.cors_allow_origins)
    # The built-in identity provider's pages come before the route table, so the wallet
    # address server never sees /idp paths. CORS wraps them too, harmlessly: it never allows
    # credentials, so no other origin can read a page made with the owner's cookie.
    pages: list[BaseRoute] = []
    if "auth" in roles and settings.idp_consent_url is None:
        pages.append(Mount(idp_base_path(settings), app=build_idp_app(settings, services)))
    background = background_loops(services, settings, roles)
    return _starlette(
        router, settings.public_url, middleware=[cors], routes=pages, background=background
    )


def build_admin_app(settings: Settings, services: Services | None = None) -> Starlette:
    """The admin API, for the ASE's back office, on its own listener (no CORS: browsers of
    other origins have no business here)."""
    services = services or Services.create(settings)
    router = Router(settings, services, {"admin": settings.admin_url})
    return _starlette(router, settings.admin_url, middleware=[])


def introspection_url(settings: Settings) -> str:
    """The base URL the introspection listener binds to."""
    host = settings.introspection_host
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{settings.introspection_port}"


def build_introspection_app(settings: Settings, services: Services | None = None) -> Starlette:
    """The token introspection API for resource servers in other processes, on its own
    listener (never routed from the public app; no CORS, no GNAP)."""
    services = services or Services.create(settings)
    base_url = introspection_url(settings)
    router = Router(settings, services, {"introspection": base_url})
    return _starlette(router, base_url, middleware=[])


def _starlette(
    router: Router,
    base_url: str,
    middleware: list[Middleware],
    routes: Iterable[BaseRoute] = (),
    background: Iterable[BackgroundLoop] = (),
) -> Starlette:
    services = router.services

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # Workers of every process claim their work in the database, so N processes can
        # run the same loops side by side.
        stop = asyncio.Event()
        # What is alive now (modules, the route table, compiled schemas and statements)
        # lives as long as the process: kept out of every later garbage collection.
        gc.collect()
        gc.freeze()
        loops = [asyncio.create_task(run(stop)) for run in background]
        try:
            yield
        finally:
            stop.set()
            await asyncio.gather(*loops, return_exceptions=True)
            await services.close()

    app = Starlette(
        # Every path and method goes to the generated route table; Starlette's own router
        # would redirect trailing slashes, which breaks signatures over `@target-uri`.
        routes=[*routes, EveryRequest(router)],
        middleware=middleware,
        exception_handlers={Exception: render_unhandled},
        lifespan=lifespan,
    )
    app.router.redirect_slashes = False
    app.state.settings = router.settings
    app.state.services = services
    app.state.router = router
    app.state.base_url = base_url
    return app


def create_app() -> Starlette:
    """Factory for `uvicorn --factory opase.app:create_app` (the worker processes)."""
    return build_app(
        load_settings(), roles=parse_roles(os.environ.get(ROLES_ENV, "all").split(","))
    )


def create_admin_app() -> Starlette:
    """Factory for the admin listener (`opase serve` starts it beside the public one)."""
    return build_admin_app(load_settings())


def create_introspection_app() -> Starlette:
    """Factory for the introspection listener (`opase serve --role auth` starts it)."""
    return build_introspection_app(load_settings())
