"""CORS for the public servers: browser clients read wallet addresses and call the APIs.

With every origin allowed and no credentials, the answer does not depend on the request's
Origin, so the same two headers go on every response (no per-request header parsing, no
`Vary: Origin`). Preflight requests, and any narrower origin list, go to Starlette's
CORSMiddleware.
"""

from __future__ import annotations

from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

ALLOW_METHODS = ("GET", "POST", "DELETE", "OPTIONS")
EXPOSE_HEADERS = ("WWW-Authenticate", "Location")
PREFLIGHT_MAX_AGE_S = 3600


class PublicCORSMiddleware:
    def __init__(self, app: ASGIApp, *, allow_origins: list[str]) -> None:
        self.app = app
        self.starlette_cors = CORSMiddleware(
            app,
            allow_origins=allow_origins,
            allow_methods=list(ALLOW_METHODS),
            allow_headers=["*"],
            expose_headers=list(EXPOSE_HEADERS),
            max_age=PREFLIGHT_MAX_AGE_S,
        )
        self.constant_headers: list[tuple[bytes, bytes]] | None = None
        if allow_origins == ["*"]:
            self.constant_headers = [
                (b"access-control-allow-origin", b"*"),
                (b"access-control-expose-headers", ", ".join(EXPOSE_HEADERS).encode()),
            ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        constant = self.constant_headers
        if constant is None or scope["type"] != "http" or scope["method"] == "OPTIONS":
            await self.starlette_cors(scope, receive, send)
            return

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *constant]
            await send(message)

        await self.app(scope, receive, send_with_cors)
