"""A test client that checks every response against the specs with openapi-core."""

from __future__ import annotations

from typing import Any

import httpx
from starlette.applications import Starlette

from opase.errors import OpaseError
from opase.web.response_check import ResponseChecker


class CheckedClient(httpx.AsyncClient):
    """httpx over ASGI; each response must satisfy its operation's spec."""

    def __init__(self, app: Starlette, *, raise_app_exceptions: bool = True) -> None:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=raise_app_exceptions)
        super().__init__(transport=transport, base_url=app.state.base_url)
        self.router = app.state.router
        self.checker = ResponseChecker()
        self.checked_count = 0

    async def send(self, request: httpx.Request, **kwargs: Any) -> httpx.Response:  # type: ignore[override]
        response = await super().send(request, **kwargs)
        await response.aread()
        self.check(request, response)
        return response

    def check(self, request: httpx.Request, response: httpx.Response) -> None:
        if request.method == "OPTIONS":
            return  # CORS preflight: answered by the middleware, outside every spec
        try:
            match = self.router.routes.match(
                request.method,
                request.url.raw_path.decode().split("?")[0],
                request.url.netloc.decode(),
            )
        except OpaseError:
            match = None
        self.checker.check(
            spec=match.operation.spec if match else "resource-server",
            method=request.method,
            relative_path=match.relative_path if match else "/",
            declared_statuses=match.operation.response_statuses if match else (),
            status=response.status_code,
            headers=dict(response.headers),
            body=response.content,
        )
        self.checked_count += 1
