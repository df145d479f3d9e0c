"""The token introspection API (specs/introspection.yaml): how a resource server in other
processes asks this authorization server about a token. Only the introspection listener of
`opase serve --role auth` serves it (`opase.app.create_introspection_app`), never the
public port; the answer itself is `opase.authorization.introspectors.introspect`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from opase.authorization.introspectors import introspect

if TYPE_CHECKING:
    from opase.web.context import RequestContext


async def post_introspect(ctx: RequestContext) -> dict[str, Any]:
    document = ctx.document  # validated against the spec: access_token is there
    return await introspect(ctx.services.sessions, document["access_token"], document.get("access"))
