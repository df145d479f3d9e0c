"""build_app(settings): the one place where opase's pieces are wired together."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.datastructures import URLPath
from starlette.middleware import Middleware
from starlette.routing import BaseRoute, Match, NoMatchFound
from starlette.types import ASGIApp, Receive, Scope, Send

from opase.cors import PublicCORSMiddleware
from opase.routing import Router, render_unhandled
from opase.services import Services
from opase.settings import Settings, load_settings

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


def build_app(settings: Settings, services: Services | None = None) -> Starlette:
    """The public app: wallet address, authorization and resource servers."""
    services = services or Services.create(settings)
    router = Router(
        settings,
        services,
        {
            "auth": settings.auth_server_url,
            "resource": settings.resource_server_url,
            "wallet_address": settings.public_url,
        },
    )
    cors = Middleware(PublicCORSMiddleware, allow_origins=settings.cors_allow_origins)
    return _starlette(router, settings.public_url, middleware=[cors])


def build_admin_app(settings: Settings, services: Services | None = None) -> Starlette:
    """The admin API, for the ASE's back office, on its own listener (no CORS: browsers of
    other origins have no business here)."""
    services = services or Services.create(settings)
    router = Router(settings, services, {"admin": settings.admin_url})
    return _starlette(router, settings.admin_url, middleware=[])


def _starlette(router: Router, base_url: str, middleware: list[Middleware]) -> Starlette:
    services = router.services

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await services.close()

    app = Starlette(
        # Every path and method goes to the generated route table; Starlette's own router
        # would redirect trailing slashes, which breaks signatures over `@target-uri`.
        routes=[EveryRequest(router)],
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
    return build_app(load_settings())


def create_admin_app() -> Starlette:
    """Factory for the admin listener (`opase serve` starts it beside the public one)."""
    return build_admin_app(load_settings())
