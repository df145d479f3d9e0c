"""Bad input gets a clear 4xx with the spec's error body, never a 500; every error class
renders through the one builder."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette

import opase.errors as errors_module
from opase.app import build_app
from opase.errors import OpaseError
from opase.settings import Settings
from opase.storage.migrate import upgrade
from opase.web.error_responses import error_response
from opase.web.response_check import ResponseViolation
from opase_generated.routes import OPERATIONS
from tests.client import CheckedClient
from tests.operations import IMPLEMENTED_OPERATIONS
from tests.responses import error_code
from tests.signing import ClientIdentity, GnapAuth, IssuedGrant
from tests.world import AUTH, PUBLIC_URL, Seeded

GRANT_REQUEST = {
    "access_token": {"access": [{"type": "incoming-payment", "actions": ["create", "read"]}]},
    "client": "https://client.example/app",
}


def error_of(response: object) -> dict[str, object]:
    body = response.json()  # type: ignore[attr-defined]
    assert set(body) == {"error"}
    assert {"code", "description"} <= set(body["error"])
    return body["error"]  # type: ignore[no-any-return]


async def test_malformed_json_is_400(client: CheckedClient) -> None:
    response = await client.post(
        AUTH, content=b'{"client": ', headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert "not valid JSON" in error_of(response)["description"]


async def test_a_body_that_is_not_utf8_is_400(client: CheckedClient) -> None:
    body = json.dumps(GRANT_REQUEST).encode().replace(b"client.example", b"cli\xffent.example")
    response = await client.post(AUTH, content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert error_of(response)["description"] == "request body is not UTF-8"


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "json", ""]
)
async def test_a_body_that_is_not_json_typed_is_415(
    client: CheckedClient, content_type: str
) -> None:
    response = await client.post(
        AUTH, content=json.dumps(GRANT_REQUEST).encode(), headers={"Content-Type": content_type}
    )
    assert response.status_code == 415
    assert error_of(response)["code"] == "unsupported_media_type"


async def test_json_with_charset_is_accepted(
    client: CheckedClient, identity: ClientIdentity
) -> None:
    request = {**GRANT_REQUEST, "client": identity.wallet_address_url}
    response = await client.post(
        AUTH, content=json.dumps(request).encode(),
        headers={"Content-Type": "application/json; charset=utf-8"}, auth=GnapAuth(identity),
    )  # fmt: skip
    assert response.status_code == 200, response.text


async def test_a_missing_required_body_is_400(client: CheckedClient) -> None:
    response = await client.post(AUTH)
    assert response.status_code == 400
    assert "needs a JSON request body" in error_of(response)["description"]


async def test_spec_31_keywords_are_enforced(client: CheckedClient) -> None:
    # `unevaluatedProperties: false` on the access item: generated models alone would drop it.
    request = json.loads(json.dumps(GRANT_REQUEST))
    request["access_token"]["access"][0]["bogus"] = 1
    response = await client.post(AUTH, json=request)
    assert response.status_code == 400
    error = error_of(response)
    assert error["details"]["errors"][0]["path"].startswith("/access_token/access/0")  # type: ignore[index]


@pytest.mark.parametrize("value", ["-5", "1.5", "1e3", "18446744073709551616", ""])
async def test_amounts_must_be_uint64_strings(client: CheckedClient, value: str) -> None:
    quote = {
        "walletAddress": f"{PUBLIC_URL}/alice",
        "receiver": f"{PUBLIC_URL}/op/incoming-payments/8c1f2a53-0d6e-4b52-8a40-6f8a8f3e9b11",
        "method": "ilp",
        "debitAmount": {"value": value, "assetCode": "USD", "assetScale": 2},
    }
    response = await client.post(f"{PUBLIC_URL}/op/quotes", json=quote)
    assert response.status_code == 400, value
    assert "/debitAmount/value" in json.dumps(error_of(response))


async def test_the_largest_uint64_is_a_valid_amount(
    client: CheckedClient, identity: ClientIdentity, grant: IssuedGrant
) -> None:
    quote = {
        "walletAddress": f"{PUBLIC_URL}/alice",
        "receiver": f"{PUBLIC_URL}/op/incoming-payments/8c1f2a53-0d6e-4b52-8a40-6f8a8f3e9b11",
        "method": "ilp",
        "debitAmount": {"value": str(2**64 - 1), "assetCode": "USD", "assetScale": 2},
    }
    auth = GnapAuth(identity, grant.access_token)
    response = await client.post(f"{PUBLIC_URL}/op/quotes", json=quote, auth=auth)
    # Past the schema: the handler's authorization answers (the grant holds no quote access).
    assert error_code(response, 403) == "forbidden"


async def test_a_body_over_the_limit_is_413(client: CheckedClient) -> None:
    padding = "x" * (64 * 1024)
    response = await client.post(AUTH, json={**GRANT_REQUEST, "padding": padding})
    assert error_code(response, 413) == "payload_too_large"


async def test_a_body_on_an_operation_without_one_is_400(
    client: CheckedClient, seeded: Seeded
) -> None:
    response = await client.request("DELETE", f"{AUTH}/token/abc", json={"x": 1})
    assert response.status_code == 400
    assert error_of(response)["description"] == "this operation takes no request body"


@pytest.mark.parametrize(
    ("method", "url", "status"),
    [
        ("GET", f"{PUBLIC_URL}/op/nothing", 404),
        ("GET", f"{PUBLIC_URL}/op", 404),
        ("GET", f"{PUBLIC_URL}/auth/continue", 404),
        ("PUT", f"{PUBLIC_URL}/op/quotes", 405),
        ("DELETE", f"{PUBLIC_URL}/op/incoming-payments", 405),
        ("GET", f"{PUBLIC_URL}/auth", 405),
    ],
)
async def test_unknown_paths_and_methods(
    client: CheckedClient, method: str, url: str, status: int
) -> None:
    response = await client.request(method, url)
    code = error_code(response, status)
    if status == 405:
        assert code == "method_not_allowed"
        assert response.headers["allow"]
    else:
        assert code == "not_found"


async def test_no_trailing_slash_redirects(client: CheckedClient) -> None:
    response = await client.post(f"{PUBLIC_URL}/op/quotes/", json={})
    assert error_code(response, 404) == "not_found"
    assert "location" not in response.headers


@pytest.mark.parametrize(
    ("query", "problem"),
    [
        ("first=10", "wallet-address"),  # required parameter missing
        ("wallet-address=x&first=0", "first"),
        ("wallet-address=x&first=abc", "first"),
        ("wallet-address=x&first=101", "first"),
        ("wallet-address=x&wallet-address=y", "more than once"),
    ],
)
async def test_bad_query_parameters_are_400(
    client: CheckedClient, query: str, problem: str
) -> None:
    response = await client.get(f"{PUBLIC_URL}/op/incoming-payments?{query}")
    assert response.status_code == 400
    assert problem in json.dumps(error_of(response))


def test_every_error_class_renders_its_status_and_code() -> None:
    classes = [
        c for c in vars(errors_module).values() if isinstance(c, type) and issubclass(c, OpaseError)
    ]
    assert len(classes) >= 10
    for error_class in classes:
        if error_class is errors_module.MethodNotAllowed:
            exc: OpaseError = error_class("no", allowed_methods=["GET"])
        else:
            exc = error_class("something specific went wrong", details={"field": "x"})
        response = error_response(exc, auth_server_url=AUTH)
        assert response.status_code == error_class.status_code
        body = json.loads(bytes(response.body))
        assert body["error"]["code"] == error_class.code
        assert ("www-authenticate" in response.headers) == (error_class.status_code == 401)
    unauthorized = error_response(errors_module.Unauthorized("sign in"), auth_server_url=AUTH)
    assert unauthorized.headers["www-authenticate"] == f'GNAP as_uri="{AUTH}"'


async def test_an_unexpected_failure_is_a_generic_500(
    app: Starlette, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(ctx: object) -> None:
        raise RuntimeError("secret internal detail")

    monkeypatch.setitem(app.state.router.handlers, "get-wallet-address", broken)
    async with CheckedClient(app, raise_app_exceptions=False) as client:
        response = await client.get("/alice")
    assert response.status_code == 500
    assert "secret" not in response.text
    assert error_of(response)["code"] == "internal_error"


async def test_dev_mode_turns_a_response_that_breaks_the_spec_into_a_500(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(public_url=PUBLIC_URL, data_dir=tmp_path, validate_responses=True)
    await upgrade(settings)
    app = build_app(settings)

    async def wrong(ctx: object) -> dict[str, object]:
        return {"id": "x", "assetScale": "two"}  # missing fields, wrong type

    monkeypatch.setitem(app.state.router.handlers, "get-wallet-address", wrong)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    try:
        with caplog.at_level(logging.ERROR, logger="opase.web.response_check"):
            async with httpx.AsyncClient(transport=transport, base_url=PUBLIC_URL) as raw_client:
                response = await raw_client.get("/alice")
    finally:
        await app.state.services.close()
    assert response.status_code == 500
    assert error_of(response)["code"] == "internal_error"
    assert "two" not in response.text  # the violation is logged, not sent
    # The log says which response broke which part of the spec.
    [record] = [r for r in caplog.records if r.name == "opase.web.response_check"]
    assert record.getMessage() == "response breaks the spec"
    assert record.exc_info is not None
    violation = record.exc_info[1]
    assert isinstance(violation, ResponseViolation)
    assert str(violation).startswith("GET / -> 200 breaks wallet-address-server")
    assert "'two' is not of type 'integer'" in str(violation)
    assert "'assetCode' is a required property" in str(violation)


def test_the_routing_table_has_one_route_per_implemented_operation() -> None:
    implemented = [op_id for ids in IMPLEMENTED_OPERATIONS.values() for op_id in ids]
    assert len(OPERATIONS) == len(implemented) == len(set(implemented))
    assert {op.operation_id for op in OPERATIONS} == set(implemented)


def test_a_busy_or_lost_database_is_503_with_retry_after_not_500() -> None:
    import sqlite3

    from sqlalchemy import exc as sa_exc

    from opase.web.error_responses import internal_error_response

    busy = sa_exc.OperationalError("INSERT ...", {}, sqlite3.OperationalError("database is locked"))
    response = internal_error_response(busy)
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"
    assert json.loads(bytes(response.body))["error"]["code"] == "service_unavailable"
    lost = sa_exc.DBAPIError("SELECT ...", {}, ConnectionResetError(), connection_invalidated=True)
    assert internal_error_response(lost).status_code == 503
    other = sa_exc.OperationalError("SELECT ...", {}, sqlite3.OperationalError("disk I/O error"))
    assert internal_error_response(other).status_code == 500


async def test_a_busy_database_is_answered_by_the_router_and_a_defect_still_500(
    app: Starlette, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 503 for a busy or lost database is answered by the router itself: an exception let
    out of the app makes uvicorn drop the connection after the response (clients saw
    connection resets). Anything else is a defect and still reaches the app's last handler."""
    import sqlite3

    from sqlalchemy import exc as sa_exc

    router = app.state.router
    url = f"{PUBLIC_URL}/op/incoming-payments/{'0' * 8}-0000-0000-0000-{'0' * 12}"

    async def busy(_ctx: object) -> None:
        raise sa_exc.OperationalError(
            "INSERT ...", {}, sqlite3.OperationalError("database is locked")
        )

    monkeypatch.setitem(router.handlers, "get-incoming-payment", busy)
    # raise_app_exceptions: an exception out of the app fails this request.
    response = await CheckedClient(app, raise_app_exceptions=True).get(url)
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"
    assert error_of(response)["code"] == "service_unavailable"

    async def defect(_ctx: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setitem(router.handlers, "get-incoming-payment", defect)
    with pytest.raises(RuntimeError, match="a bug"):
        await CheckedClient(app, raise_app_exceptions=True).get(url)
    response = await CheckedClient(app, raise_app_exceptions=False).get(url)
    assert response.status_code == 500
    assert error_of(response)["code"] == "internal_error"
