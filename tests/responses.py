"""What the tests read out of an error response, each asserting its status first."""

from __future__ import annotations

import httpx

RESOURCE_ERROR_CODES = {
    400: "invalid_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    409: "conflict",
}
"""The error code the resource server answers with each status."""


def error_code(response: httpx.Response, status: int) -> str:
    """The response's `error.code`, once its status is `status`."""
    assert response.status_code == status, response.text
    return str(response.json()["error"]["code"])


def error_description(response: httpx.Response, status: int) -> str:
    """A resource server refusal's `error.description`, once its status is `status` and its
    code the one the resource server gives that status."""
    assert error_code(response, status) == RESOURCE_ERROR_CODES[status], response.text
    return str(response.json()["error"]["description"])


def reason_of(response: httpx.Response) -> str:
    """Why the request was not authenticated: a 401 with a GNAP challenge and a short reason
    code in `error.details.reason`."""
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"].startswith("GNAP as_uri=")
    error = response.json()["error"]
    assert error["code"] in ("invalid_client", "unauthorized", "invalid_continuation")
    return str(error["details"]["reason"])
