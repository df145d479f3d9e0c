"""The one error hierarchy of opase.

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

Services raise these (or a domain refusal, e.g. `opase.payments.refusals`, that the request
path maps to one of these); `opase.web.error_responses` renders any of them, once, as the body
every spec declares. No HTTP here: this is the taxonomy, with the status each kind means.
"""

from __future__ import annotations

from typing import Any, ClassVar


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
