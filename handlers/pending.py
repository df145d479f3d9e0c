"""Operations whose handlers arrive in later releases answer a spec-shaped 501 until then."""

from __future__ import annotations

from typing import NoReturn

from opase.errors import NotImplementedYet
from opase.routing import RequestContext

AUTH_SERVER = "the GNAP authorization server"
RESOURCE_SERVER = "the resource server"


def pending(ctx: RequestContext, arrives_with: str) -> NoReturn:
    raise NotImplementedYet(
        f"{ctx.operation.operation_id} is not implemented yet; it arrives with {arrives_with}"
    )
