"""The baseline: the least a Starlette app can do to answer with a small JSON document.

Started with the same uvicorn flags as opase (`--factory tests.bench.bare_app:create_app`),
it answers `GET /` with a document shaped like a wallet address, so the ratio of opase's
requests/s to this app's is what opase's own code costs on top of uvicorn + Starlette.
"""

from __future__ import annotations

import os

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


def create_app() -> Starlette:
    public_url = os.environ.get("OPASE_PUBLIC_URL", "http://127.0.0.1:4000").rstrip("/")
    document = {
        "id": f"{public_url}/alice",
        "publicName": "Alice",
        "assetCode": "USD",
        "assetScale": 2,
        "authServer": f"{public_url}/auth",
        "resourceServer": f"{public_url}/op",
    }

    async def wallet_address(request: Request) -> JSONResponse:
        return JSONResponse(document)

    return Starlette(routes=[Route("/", wallet_address)])
