"""Idempotency-Key: the first answer to a keyed request is kept and given again.

For every operation whose spec declares an `Idempotency-Key` header, the router looks the
key up before the handler runs: the same key with the same request (method, path, body)
gets the stored answer and changes nothing; the same key with another request is a 409.
Only successes are stored, so a refused request can be corrected and retried with its key.
Two racing twins may both run; the services' own guards (unique constraints, the ledger's
idempotency keys) make the second a no-op or a conflict, and the first stored answer wins.
"""

from __future__ import annotations

import hashlib

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.responses import Response

from opase.errors import Conflict
from opase.storage.tables import IdempotentResponse

IDEMPOTENCY_HEADER = "idempotency-key"


def request_sha256(method: str, raw_path: str, body: bytes) -> str:
    digest = hashlib.sha256(f"{method}\n{raw_path}\n".encode())
    digest.update(body)
    return digest.hexdigest()


async def stored_answer(
    sessions: async_sessionmaker[AsyncSession], key: str, fingerprint: str
) -> Response | None:
    async with sessions() as session:
        stored = await session.get(IdempotentResponse, key)
    if stored is None:
        return None
    if stored.request_sha256 != fingerprint:
        raise Conflict(f"Idempotency-Key {key!r} was already used for a different request")
    return _response(stored.status_code, stored.body)


async def remember(
    sessions: async_sessionmaker[AsyncSession], key: str, fingerprint: str, response: Response
) -> Response:
    """Store a success; when a racing twin stored first, answer what it stored."""
    assert 200 <= response.status_code < 300
    body = bytes(response.body)
    try:
        async with sessions() as session:
            session.add(
                IdempotentResponse(
                    idempotency_key=key,
                    request_sha256=fingerprint,
                    status_code=response.status_code,
                    body=body,
                )
            )
            await session.commit()
    except IntegrityError:
        winner = await stored_answer(sessions, key, fingerprint)
        assert winner is not None
        return winner
    return response


def _response(status_code: int, body: bytes) -> Response:
    if status_code == 204:
        return Response(status_code=204)
    return Response(body, status_code=status_code, media_type="application/json")
