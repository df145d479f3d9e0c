"""Errors as HTTP answers: the one place error bodies are built.

Every spec declares the same body, `{"error": {"code", "description", "details"?}}` (Open
Payments `error-response` and the GNAP error objects share that shape). An `OpaseError` says
its status and code; a domain refusal is mapped to one here (`as_opase_error`); a busy or
lost database is 503 with `Retry-After`; anything else is a programming error: a logged 500
with a generic body, never the exception text.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from sqlalchemy import exc as sa_exc
from starlette.responses import Response

from opase.errors import Conflict, Forbidden, InvalidRequest, NotFound, OpaseError
from opase.payments.refusals import (
    InvalidPaymentRequest,
    NotPermitted,
    PaymentRefusal,
    UnknownResource,
    WrongState,
)

log = logging.getLogger("opase.errors")

_REFUSALS: tuple[tuple[type[PaymentRefusal], type[OpaseError]], ...] = (
    (InvalidPaymentRequest, InvalidRequest),
    (NotPermitted, Forbidden),
    (WrongState, Conflict),
    (UnknownResource, NotFound),
)


def as_opase_error(refusal: PaymentRefusal) -> OpaseError:
    """The API error a domain refusal is answered with: its message is the description."""
    for refusal_type, error_type in _REFUSALS:
        if isinstance(refusal, refusal_type):
            return error_type(str(refusal))
    raise AssertionError(f"no API error for {type(refusal).__name__}")


def error_body(code: str, description: str, details: dict[str, Any] | None = None) -> bytes:
    error: dict[str, Any] = {"code": code, "description": description}
    if details:
        error["details"] = details
    return orjson.dumps({"error": error})


def error_response(exc: OpaseError, *, auth_server_url: str) -> Response:
    """The HTTP response for an opase error; the only place error bodies are built."""
    headers = dict(exc.headers)
    if exc.status_code == 401:
        # The Open Payments specs declare this header on every 401: it tells the client
        # where to ask for a grant.
        headers.setdefault("WWW-Authenticate", f'GNAP as_uri="{auth_server_url}"')
    return Response(
        error_body(exc.code, exc.description, exc.details),
        status_code=exc.status_code,
        headers=headers,
        media_type="application/json",
    )


DATABASE_BUSY_RETRY_AFTER_S = 1


def database_unavailable(exc: BaseException) -> bool:
    """The database could not take the request, and nothing changed (the transaction rolled
    back): SQLite's one write lock waited for past its busy timeout, or the connection to
    PostgreSQL was lost (a restart, a failover; the pool replaces its connections)."""
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, sa_exc.OperationalError) and "database is locked" in str(exc.orig)


def internal_error_response(exc: BaseException) -> Response:
    if database_unavailable(exc):
        log.warning("database unavailable: %s", exc)
        return Response(
            error_body("service_unavailable", "the database is unavailable; try again shortly"),
            status_code=503,
            media_type="application/json",
            headers={"Retry-After": str(DATABASE_BUSY_RETRY_AFTER_S)},
        )
    log.exception("unhandled error", exc_info=exc)
    return Response(
        error_body("internal_error", "the server failed to handle this request"),
        status_code=500,
        media_type="application/json",
    )
