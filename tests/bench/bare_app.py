"""The baseline: the least a Starlette app can do to answer with a small JSON document.

`python -m tests.bench.bare_app --host H --port P --workers N` serves it exactly as
`opase serve` serves opase (`opase.cli.serve`: uvicorn, uvloop, httptools, one socket per
worker). It answers `GET /` with a document shaped like a wallet address, so the ratio of
opase's requests/s to this app's is what opase's own code costs on top of uvicorn +
Starlette.
"""

from __future__ import annotations

import argparse
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


def main() -> None:
    from opase.cli.serve import config_for, serve

    parser = argparse.ArgumentParser(prog="python -m tests.bench.bare_app")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    serve(
        config_for(
            "tests.bench.bare_app:create_app",
            host=args.host,
            port=args.port,
            workers=args.workers,
            access_log=False,
            log_level="warning",
        )
    )


if __name__ == "__main__":
    main()
