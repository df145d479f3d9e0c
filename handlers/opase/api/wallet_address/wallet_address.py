"""Wallet address server operations (wallet-address-server.yaml).

A wallet address is any path under the public base URL. Its documents are public and
slow-changing, so they are served from memory (see `Services`) with `Cache-Control`, and
built from the database only on a miss.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any
from urllib.parse import quote

import orjson
from starlette.datastructures import Headers
from starlette.responses import RedirectResponse, Response
from starlette.types import Scope

from opase.cache import TtlCache
from opase.errors import NotFound
from opase.services import Services
from opase.settings import Settings
from opase.wallets.directory import find_active_wallet_address, list_active_keys
from opase.web.context import FastPath, RequestContext
from opase.web.matching import Match


def _cache_headers(ctx: RequestContext) -> dict[str, str]:
    return {"Cache-Control": f"public, max-age={ctx.settings.wallet_address_cache_s}"}


class PublicDocument(Response):
    """A cached JSON document with its response headers encoded once, when it was cached:
    a cache hit then costs no header building (the wallet address GET is the hottest path)."""

    media_type = "application/json"

    def __init__(self, body: bytes, max_age_s: int) -> None:
        self.status_code = 200
        self.background = None
        self.body = body
        self.raw_headers = [
            (b"content-length", str(len(body)).encode()),
            (b"content-type", b"application/json"),
            (b"cache-control", f"public, max-age={max_age_s}".encode()),
        ]


def _prefers_html(ctx: RequestContext) -> bool:
    return _accept_prefers_html(ctx.headers.get("accept", ""))


def _accept_prefers_html(accept: str) -> bool:
    return "text/html" in accept and "application/json" not in accept


def _document(body: bytes, ctx: RequestContext) -> PublicDocument:
    return PublicDocument(body, ctx.settings.wallet_address_cache_s)


async def _wallet_address_document(ctx: RequestContext, path: str) -> PublicDocument | None:
    async with ctx.services.sessions() as session:
        record = await find_active_wallet_address(session, path)
    if record is None:
        return None
    document: dict[str, Any] = {"id": f"{ctx.settings.public_url}{record.path}"}
    if record.public_name:
        document["publicName"] = record.public_name
    document |= {
        "assetCode": record.asset_code,
        "assetScale": record.asset_scale,
        "authServer": ctx.settings.auth_server_url,
        "resourceServer": ctx.settings.resource_server_url,
    }
    return _document(orjson.dumps(document), ctx)


async def _keys_document(ctx: RequestContext, path: str) -> PublicDocument | None:
    async with ctx.services.sessions() as session:
        record = await find_active_wallet_address(session, path)
        if record is None:
            return None
        keys = await list_active_keys(session, record.id)
    return _document(orjson.dumps({"keys": keys}), ctx)


async def _require(ctx: RequestContext, loaded: Response | None) -> Response:
    if loaded is None:
        raise NotFound(f"no wallet address at {ctx.settings.public_url}{ctx.wallet_address_path}")
    return loaded


async def _keys(ctx: RequestContext, path: str) -> Response:
    loaded = await ctx.services.wallet_address_keys.get_or_load(path, partial(_keys_document, ctx))
    return await _require(ctx, loaded)


def _html_location(template: str, wallet_address_url: str, path: str) -> str:
    # The reference implementation's template words, longest first so `%ewa` is not `%e`+`wa`.
    return (
        template.replace("%ewa", quote(wallet_address_url, safe=""))
        .replace("%ewp", quote(path, safe=""))
        .replace("%wa", wallet_address_url)
        .replace("%wp", path)
    )


async def get_wallet_address(ctx: RequestContext) -> Response:
    path = ctx.wallet_address_path
    assert path is not None
    documents = ctx.services.wallet_address_documents
    loaded = await documents.get_or_load(path, partial(_wallet_address_document, ctx))
    if loaded is None:
        url = f"{ctx.settings.public_url}{path}"
        await ctx.services.wallet_address_not_found.report(ctx.services.sessions, url)
    document = await _require(ctx, loaded)
    html_template = ctx.settings.wallet_address_html_url
    if html_template and _prefers_html(ctx):
        location = _html_location(html_template, f"{ctx.settings.public_url}{path}", path)
        return RedirectResponse(location, status_code=302, headers=_cache_headers(ctx))
    return document


async def get_wallet_address_keys(ctx: RequestContext) -> Response:
    path = ctx.wallet_address_path
    assert path is not None
    return await _keys(ctx, path)


async def get_wallet_address_did_document(ctx: RequestContext) -> Response:
    """A did:web document whose verification methods are the wallet address's keys."""
    path = ctx.wallet_address_path
    assert path is not None
    keys = orjson.loads((await _keys(ctx, path)).body)
    did = did_web_identifier(f"{ctx.settings.public_url}{path}")
    methods = [
        {
            "id": f"{did}#{quote(key['kid'], safe='')}",
            "type": "JsonWebKey2020",
            "controller": did,
            "publicKeyJwk": {k: key[k] for k in ("kty", "crv", "x", "kid")},
        }
        for key in keys["keys"]
    ]
    document = {
        "@context": [
            "https://www.w3.org/ns/did/v1",
            "https://w3id.org/security/suites/jws-2020/v1",
        ],
        "id": did,
        "verificationMethod": methods,
        "assertionMethod": [m["id"] for m in methods],
        "authentication": [m["id"] for m in methods],
    }
    return _document(orjson.dumps(document), ctx)


def did_web_identifier(url: str) -> str:
    """did:web method: host (port percent-encoded) then path segments joined by ':'."""
    without_scheme = url.split("://", 1)[1]
    host, _, path = without_scheme.partition("/")
    segments = [quote(host, safe="")] + [s for s in path.split("/") if s]
    return "did:web:" + ":".join(segments)


def _from_memory(cache: Callable[[Services], TtlCache[str, Response | None]]) -> FastPath:
    def answer(
        services: Services, settings: Settings, match: Match, scope: Scope
    ) -> Response | None:
        if settings.wallet_address_html_url and _scope_prefers_html(scope):
            return None
        assert match.wallet_address_path is not None
        found, document = cache(services).peek(match.wallet_address_path)
        return document if found else None

    return answer


def _scope_prefers_html(scope: Scope) -> bool:
    return _accept_prefers_html(Headers(scope=scope).get("accept", ""))


# Plain GETs of documents this process holds are answered without reading the request
# (the router's fast path); misses, 404s and HTML redirects take the full path.
FAST_PATHS: dict[str, FastPath] = {
    "get-wallet-address": _from_memory(lambda services: services.wallet_address_documents),
    "get-wallet-address-keys": _from_memory(lambda services: services.wallet_address_keys),
}
