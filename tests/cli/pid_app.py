"""A Starlette app that answers with its process id: which worker served a connection."""

from __future__ import annotations

import os
import sys

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from opase.cli.serve import config_for, serve


def create_app() -> Starlette:
    async def pid(request: Request) -> PlainTextResponse:
        return PlainTextResponse(str(os.getpid()))

    return Starlette(routes=[Route("/", pid)])


if __name__ == "__main__":
    port, workers = int(sys.argv[1]), int(sys.argv[2])
    serve(
        config_for(
            "tests.cli.pid_app:create_app",
            host="127.0.0.1",
            port=port,
            workers=workers,
            access_log=False,
            log_level="warning",
        )
    )
