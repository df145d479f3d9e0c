"""Wallet address server operations (wallet-address-server.yaml).

A wallet address is any path under the public base URL. Its documents are public and
slow-changing, so they are served from memory (see `Services`) with `Cache-Control`, and
built from the database only on a miss.
"""

from __future__ import annotations

from functools import partial
from typing import Any
from urllib.parse import quote

import orjson
from starlette.responses import RedirectResponse, Response

from opase.errors import NotFound
from opase.routing import RequestContext
from opase.wallets.service import find_active_wallet_address, list_active_keys


def _cache_headers(ctx: RequestContext) -> dict[str, str]:
    return {"Cache-Control": f"public, max-age={ctx.settings.wallet_address_cache_s}"}


def _prefers_html(ctx: RequestContext) -> bool:
    accept = ctx.headers.get("accept", "")
    return "text/html" in accept and "application/json" not in accept


def _json(body: bytes, ctx: RequestContext) -> Response:
    return Response(
        body, status_code=200, headers=_cache_headers(ctx), media_type="application/json"
    )


async def _wallet_address_document(ctx: RequestContext, path: str) -> bytes | None:
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
    return orjson.dumps(document)


async def _keys_document(ctx: RequestContext, path: str) -> bytes | None:
    async with ctx.services.sessions() as session:
        record = await find_active_wallet_address(session, path)
        if record is None:
            return None
        keys = await list_active_keys(session, record.id)
    return orjson.dumps({"keys": keys})


async def _require(ctx: RequestContext, loaded: bytes | None) -> bytes:
    if loaded is None:
        raise NotFound(f"no wallet address at {ctx.settings.public_url}{ctx.wallet_address_path}")
    return loaded


async def _keys(ctx: RequestContext, path: str) -> bytes:
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
    document = await _require(ctx, loaded)
    html_template = ctx.settings.wallet_address_html_url
    if html_template and _prefers_html(ctx):
        location = _html_location(html_template, f"{ctx.settings.public_url}{path}", path)
        return RedirectResponse(location, status_code=302, headers=_cache_headers(ctx))
    return _json(document, ctx)


async def get_wallet_address_keys(ctx: RequestContext) -> Response:
    path = ctx.wallet_address_path
    assert path is not None
    return _json(await _keys(ctx, path), ctx)


async def get_wallet_address_did_document(ctx: RequestContext) -> Response:
    """A did:web document whose verification methods are the wallet address's keys."""
    path = ctx.wallet_address_path
    assert path is not None
    keys = orjson.loads(await _keys(ctx, path))
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
    return _json(orjson.dumps(document), ctx)


def did_web_identifier(url: str) -> str:
    """did:web method: host (port percent-encoded) then path segments joined by ':'."""
    without_scheme = url.split("://", 1)[1]
    host, _, path = without_scheme.partition("/")
    segments = [quote(host, safe="")] + [s for s in path.split("/") if s]
    return "did:web:" + ":".join(segments)
