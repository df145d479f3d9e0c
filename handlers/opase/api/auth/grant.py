"""Grant request, continuation and cancellation (auth-server.yaml)."""

from __future__ import annotations

from typing import Any

from opase.authorization import grants
from opase.security.bindings import ClientBinding
from opase.web.authentication import gnap_token
from opase.web.context import RequestContext


def client_of(ctx: RequestContext) -> ClientBinding:
    assert ctx.client is not None, "the authenticator runs before every GNAP operation"
    return ctx.client


def forget_tokens_of(ctx: RequestContext, client: ClientBinding) -> None:
    """After a commit that revoked or replaced tokens of the client's grant: this process
    stops using what it cached of them (a request that read them before must not keep them)."""
    assert client.grant_id is not None  # a token's or a continuation's binding names its grant
    ctx.services.access_tokens.forget_grant(client.grant_id)


async def post_request(ctx: RequestContext) -> dict[str, Any]:
    async with ctx.transaction() as session:
        return await grants.request_grant(session, ctx.settings, client_of(ctx), ctx.document)


async def post_continue(ctx: RequestContext) -> dict[str, Any]:
    document = ctx.document if isinstance(ctx.document, dict) else {}
    continue_token = gnap_token(ctx.headers)
    assert continue_token is not None  # the authenticator found the grant by it
    async with ctx.transaction() as session:
        return await grants.continue_grant(
            session, ctx.settings, client_of(ctx), ctx.path_params["id"], continue_token,
            document.get("interact_ref"),
        )  # fmt: skip


async def delete_continue(ctx: RequestContext) -> None:
    client = client_of(ctx)
    async with ctx.transaction() as session:
        await grants.cancel_grant(session, client, ctx.path_params["id"])
    forget_tokens_of(ctx, client)
