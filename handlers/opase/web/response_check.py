"""Checks responses against the specs with openapi-core: the test suite's oracle.

Too slow for the live path (0.5-8 ms a response), so it runs in tests and, opt-in, in
development (`OPASE_VALIDATE_RESPONSES=1`, where a violation becomes a logged 500).
Needs the `test` extra (openapi-core).

Statuses a spec does not declare for an operation (405, 413, 415, 501, a 503 when token
introspection is unavailable, and the like) come from opase's one error builder; they are
checked against the Open Payments `error-response` schema instead.
"""

from __future__ import annotations

import json
import logging
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any

import jsonschema_rs
from openapi_core import OpenAPI
from openapi_core.testing import MockRequest, MockResponse

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response

    from opase.web.matching import Match

log = logging.getLogger("opase.web.response_check")
CHECK_HOST_URL = "http://opase.test"
GENERIC_ERROR_STATUSES = frozenset({400, 401, 403, 404, 405, 406, 409, 413, 415, 500, 501, 503})


class ResponseViolation(AssertionError):
    pass


@cache
def _spec_document(name: str) -> dict[str, Any]:
    text = resources.files("opase_generated").joinpath(f"specs/{name}.json").read_text()
    document: dict[str, Any] = json.loads(text)
    return document


@cache
def _openapi(name: str) -> OpenAPI:
    document = dict(_spec_document(name))
    # Operations are matched by their path within the server, whatever its public URL.
    document["servers"] = [{"url": CHECK_HOST_URL}]
    return OpenAPI.from_dict(document)


@cache
def _error_response_validator() -> jsonschema_rs.Draft202012Validator:
    schema = _spec_document("resource-server")["components"]["schemas"]["error-response"]
    return jsonschema_rs.Draft202012Validator(schema)


class ResponseChecker:
    def check(
        self,
        *,
        spec: str,
        method: str,
        relative_path: str,
        declared_statuses: tuple[int, ...],
        status: int,
        headers: dict[str, str],
        body: bytes,
    ) -> None:
        """Raise ResponseViolation when the response breaks its spec."""
        content_type = headers.get("content-type", "")
        if status not in declared_statuses:
            self._check_generic_error(status, content_type, body)
            return
        request = MockRequest(CHECK_HOST_URL, method.lower(), relative_path)
        response = MockResponse(
            body, status_code=status, headers=headers, content_type=content_type.split(";")[0]
        )
        errors = list(_openapi(spec).iter_response_errors(request, response))
        if errors:
            causes = "; ".join(_describe(error) for error in errors)
            raise ResponseViolation(f"{method} {relative_path} -> {status} breaks {spec}: {causes}")

    @staticmethod
    def _check_generic_error(status: int, content_type: str, body: bytes) -> None:
        if status not in GENERIC_ERROR_STATUSES:
            raise ResponseViolation(f"undeclared status {status} is no opase error status")
        if not content_type.startswith("application/json"):
            raise ResponseViolation(f"error {status} has content type {content_type!r}")
        problems = [e.message for e in _error_response_validator().iter_errors(json.loads(body))]
        if problems:
            raise ResponseViolation(f"error {status} body is not an error-response: {problems}")

    def check_live(self, match: Match, request: Request, response: Response) -> None:
        """Dev mode: check a response the router produced (bodies are already rendered)."""
        body = bytes(response.body) if hasattr(response, "body") else b""
        try:
            self.check(
                spec=match.operation.spec,
                method=request.method,
                relative_path=match.relative_path,
                declared_statuses=match.operation.response_statuses,
                status=response.status_code,
                headers={k.decode(): v.decode() for k, v in response.raw_headers},
                body=body,
            )
        except ResponseViolation:
            log.exception("response breaks the spec")
            raise


def _describe(error: BaseException) -> str:
    cause = error.__cause__
    schema_errors = getattr(cause, "schema_errors", None)
    if schema_errors:
        return f"{error}: " + ", ".join(str(e.message) for e in schema_errors)
    return f"{type(error).__name__}: {error}" + (f" ({cause})" if cause else "")
