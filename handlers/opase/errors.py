"""The one error hierarchy of opase, and the one place that renders it.

    OpaseError (500 internal_error)
    ├── InvalidRequest (400 invalid_request)
    │   ├── TooFast (400 too_fast): polled a grant sooner than its `continue.wait`
    │   ├── InvalidRotation (400 invalid_rotation)
    │   └── InvalidInteraction (400 invalid_interaction): expired, decided, or another browser
    ├── Unauthorized (401 unauthorized; WWW-Authenticate: GNAP as_uri=<auth server>)
    │   ├── InvalidClient (401 invalid_client): the client or its signature is not proven
    │   ├── InvalidContinuation (401 invalid_continuation): no live grant for that token
    │   └── RequestDenied (401 request_denied): the grant cannot give what was asked
    ├── Forbidden (403 forbidden)
    ├── NotFound (404 not_found)
    │   ├── UnknownContinuation (404 invalid_continuation): the token's grant is another
    │   ├── UnknownGrant (404 invalid_request)
    │   ├── UnknownInteraction (404 unknown_interaction): no interaction with that id and nonce
    │   └── UnknownToken (404 invalid_rotation): the token's manage URL is another
    ├── MethodNotAllowed (405 method_not_allowed; Allow)
    ├── NotAcceptable (406 not_acceptable)
    ├── Conflict (409 conflict)
    ├── PayloadTooLarge (413 payload_too_large)
    └── UnsupportedMediaType (415 unsupported_media_type)

Services raise these; `error_response` turns any of them into the body every spec declares,
`{"error": {"code", "description", "details"?}}` (Open Payments `error-response` and the GNAP
error objects share that shape). Anything else is a programming error: a logged 500 with a
generic body, never the exception text.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

import orjson
from sqlalchemy import exc as sa_exc
from starlette.responses import Response

log = logging.getLogger("opase.errors")


class OpaseError(Exception):
    status_code: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"

    def __init__(
        self,
        description: str,
        *,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        assert description, "an error needs a description a client can act on"
        super().__init__(description)
        self.description = description
        self.details = details
        self.headers = headers or {}


class InvalidRequest(OpaseError):
    status_code = 400
    code = "invalid_request"


class TooFast(InvalidRequest):
    code = "too_fast"


class InvalidRotation(InvalidRequest):
    code = "invalid_rotation"


class InvalidInteraction(InvalidRequest):
    code = "invalid_interaction"


class Unauthorized(OpaseError):
    status_code = 401
    code = "unauthorized"


class InvalidClient(Unauthorized):
    code = "invalid_client"


class InvalidContinuation(Unauthorized):
    code = "invalid_continuation"


class RequestDenied(Unauthorized):
    code = "request_denied"


class Forbidden(OpaseError):
    status_code = 403
    code = "forbidden"


class NotFound(OpaseError):
    status_code = 404
    code = "not_found"


class UnknownContinuation(NotFound):
    code = "invalid_continuation"


class UnknownGrant(NotFound):
    code = "invalid_request"


class UnknownInteraction(NotFound):
    code = "unknown_interaction"


class UnknownToken(NotFound):
    code = "invalid_rotation"


class MethodNotAllowed(OpaseError):
    status_code = 405
    code = "method_not_allowed"

    def __init__(self, description: str, *, allowed_methods: list[str]) -> None:
        assert allowed_methods
        super().__init__(description, headers={"Allow": ", ".join(sorted(allowed_methods))})


class NotAcceptable(OpaseError):
    status_code = 406
    code = "not_acceptable"


class Conflict(OpaseError):
    status_code = 409
    code = "conflict"


class PayloadTooLarge(OpaseError):
    status_code = 413
    code = "payload_too_large"


class UnsupportedMediaType(OpaseError):
    status_code = 415
    code = "unsupported_media_type"


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
