"""What an operation module sees of a request: validated input and the process's services,
never the raw ASGI scope; and the operation's unit of work, which records the request's
replay claim first."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.types import Scope

from opase.security.bindings import ClientBinding
from opase.security.httpsig import SignatureRejected
from opase.security.replay import ReplayClaim, Rows
from opase.services import Services
from opase.settings import Settings
from opase.web.matching import Match
from opase_generated.routes import Operation

Reply = Response | BaseModel | dict[str, Any] | None
Handler = Callable[["RequestContext"], Awaitable[Reply]]
FastPath = Callable[[Services, Settings, Match, Scope], Response | None]
"""An operation module's answer from memory to a plain GET, or None to take the full path."""


@dataclass(slots=True)
class RequestContext:
    """What a handler sees of a request: validated input, never the raw ASGI scope."""

    operation: Operation
    settings: Settings
    services: Services
    request_url: str
    """The URL the client used, rebuilt from the public base URL (no query)."""
    headers: Headers
    query_string: str = ""
    """The query as sent (no `?`): a signature covers it inside `@target-uri`."""
    path_params: dict[str, str] = field(default_factory=dict)
    query: dict[str, Any] = field(default_factory=dict)
    header_params: dict[str, str] = field(default_factory=dict)
    """Declared header parameters, validated, by lower-case name (e.g. `idempotency-key`)."""
    raw_body: bytes = b""
    document: Any = None
    """The validated JSON body."""
    body: Any = None
    """The same body loaded into the generated model, when the spec names one."""
    wallet_address_path: str | None = None
    """For wallet address operations: the wallet address's path, e.g. `/alice`."""
    client: ClientBinding | None = None
    """The client the request is proven to come from (signed operations), else None."""
    replay_claim: ReplayClaim | None = None
    """The request's signature, to record as seen in the operation's transaction."""

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """The operation's unit of work: committed when it succeeds; any error, an
        OpaseError included, rolls all of it back. Its first statement records the
        request's replay claim, if one is left to it: a replay is refused (401) before the
        operation changes anything."""
        async with self.services.sessions() as session:
            claim = self.replay_claim
            if claim is not None and not await claim.take_in(session):
                raise SignatureRejected("replayed_signature")
            yield session
            await session.commit()
            if claim is not None:
                self.replay_claim = None  # recorded with the operation

    async def insert(self, rows: Rows) -> None:
        """The operation's writes when every one is a new row decided before writing
        (nothing read inside a transaction decides it): one unit of work with the replay
        claim, like `transaction`. On PostgreSQL, with a claim left to record, one statement
        committed by itself (`ReplayClaim.take_with`)."""
        claim = self.replay_claim
        if claim is not None and self.settings.is_postgres:
            if not await claim.take_with(rows):
                raise SignatureRejected("replayed_signature")
            self.replay_claim = None  # recorded with the operation
            return
        async with self.transaction() as session:
            for table, row in rows:
                await session.execute(sa.insert(table), row)
