"""The identity provider API (specs/idp.yaml): the ASE's own identity provider reads what a
grant asks for and reports the owner's decision. The security step has checked
`x-idp-secret` before any of this runs; the decisions are
`opase.authorization.interactions`'."""

from __future__ import annotations

from typing import Any

from opase.authorization import interactions as service
from opase.web.context import RequestContext


async def get_grant_details(ctx: RequestContext) -> dict[str, Any]:
    """GET /grant/{id}/{nonce}: in any state, so the identity provider can tell the owner
    that a request is already decided or expired rather than show a dead consent screen."""
    async with ctx.services.sessions() as session:
        grant = await service.find_interaction(
            session, ctx.path_params["id"], ctx.path_params["nonce"]
        )
        return {
            **service.grant_details(grant),
            "finishUrl": service.finish_url(ctx.settings, grant),
        }


async def accept_grant(ctx: RequestContext) -> dict[str, Any]:
    """POST /grant/{id}/{nonce}/accept."""
    return await _decide(ctx, approve=True)


async def reject_grant(ctx: RequestContext) -> dict[str, Any]:
    """POST /grant/{id}/{nonce}/reject: terminal."""
    return await _decide(ctx, approve=False)


async def _decide(ctx: RequestContext, *, approve: bool) -> dict[str, Any]:
    async with ctx.transaction() as session:
        grant = await service.decide(
            session, ctx.path_params["id"], ctx.path_params["nonce"], approve=approve
        )
        # Where the identity provider sends the browser next, so it needs no URL template.
        return {
            "grantId": str(grant.id),
            "state": "approved" if approve else "denied",
            "finishUrl": service.finish_url(ctx.settings, grant),
        }
