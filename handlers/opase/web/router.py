"""From the generated route table to answered requests.

One opase process serves three Open Payments servers, each at its own public base URL
(settings): the authorization server, the resource server, and the wallet address server,
under which any other path is a wallet address. `Router.match` finds the server and the
operation for a request; `Router.handle` runs the one line of steps every operation shares:

    match -> read and validate input -> authenticate -> handler -> JSON response

Exact URLs only: no trailing-slash redirects, because a signature covers `@target-uri`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl

import orjson
from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from opase.bounded_read import read_bounded
from opase.errors import OpaseError, PayloadTooLarge
from opase.payments.refusals import PaymentRefusal
from opase.security.httpsig import SignatureRejected
from opase.services import Services
from opase.settings import Settings
from opase.web.authentication import Authenticator
from opase.web.context import FastPath, Handler, Reply, RequestContext
from opase.web.error_responses import (
    as_opase_error,
    database_unavailable,
    error_response,
    internal_error_response,
)
from opase.web.idempotency import IDEMPOTENCY_HEADER, remember, request_sha256, stored_answer
from opase.web.matching import Match, RouteTable
from opase.web.validation import RequestValidator, load_validators
from opase_generated.routes import OPERATIONS, Operation

if TYPE_CHECKING:
    from opase.web.response_check import ResponseChecker


def _load_fast_paths(operations: tuple[Operation, ...]) -> dict[str, FastPath]:
    """`FAST_PATHS` of the handler modules: operationId -> answer from memory, or None."""
    found: dict[str, FastPath] = {}
    for operation in operations:
        module = importlib.import_module(operation.handler.partition(":")[0])
        fast = getattr(module, "FAST_PATHS", {}).get(operation.operation_id)
        if fast is not None:
            found[operation.operation_id] = fast
    return found


def _load_handler(operation: Operation) -> Handler:
    module_name, _, function_name = operation.handler.partition(":")
    handler: Handler = getattr(importlib.import_module(module_name), function_name)
    return handler


class Router:
    """Dispatches a request to its operation; the only place handlers are called."""

    def __init__(self, settings: Settings, services: Services, server_urls: dict[str, str]) -> None:
        """`server_urls`: which servers this router serves (by the route table's `server`
        names), each at its public base URL."""
        self.settings = settings
        self.services = services
        operations = tuple(op for op in OPERATIONS if op.server in server_urls)
        assert {op.server for op in operations} == set(server_urls), "a server with no routes"
        self.handlers = {op.operation_id: _load_handler(op) for op in operations}
        self.fast_paths = _load_fast_paths(operations)
        self.validators: dict[str, RequestValidator] = load_validators(operations)
        self.authenticator = Authenticator(
            settings, services.client_keys, services.replay_cache, services.access_tokens
        )
        self.routes = RouteTable(server_urls)
        self.response_checker: ResponseChecker | None = None
        if settings.validate_responses:
            # Dev and test mode: every answer checked against the specs; openapi-core is a
            # test dependency, imported only then.
            from opase.web.response_check import ResponseChecker

            self.response_checker = ResponseChecker()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # An ASGI app, not a function endpoint: Starlette would limit those to GET and
        # answer other methods itself, in plain text.
        request = Request(scope, receive)
        raw_path = _raw_path(scope)
        host = request.headers.get("host", "") if self.routes.route_by_host else ""
        try:
            match = self.routes.match(scope["method"], raw_path, host)
        except OpaseError as exc:
            response = error_response(exc, auth_server_url=self.settings.auth_server_url)
        else:
            response = self._from_memory(match, scope) or await self.handle(
                request, match, raw_path
            )
        await response(scope, receive, send)

    def _from_memory(self, match: Match, scope: Scope) -> Response | None:
        """A handler module may answer a plain GET from memory (a public document already
        cached), skipping input reading; whatever it declines takes the full path."""
        if scope["method"] != "GET" or scope["query_string"] or self.response_checker is not None:
            return None
        answer = self.fast_paths.get(match.operation.operation_id)
        return None if answer is None else answer(self.services, self.settings, match, scope)

    async def handle(self, request: Request, match: Match, raw_path: str) -> Response:
        context = None
        try:
            self.authenticator.check_bearer(match.operation, request.headers)
            context = await self._context(match, request, raw_path)
            proof = await self.authenticator.authenticate(match.operation, context)
            context.client, context.replay_claim = proof.client, proof.replay_claim
            response = await self._answer(match.operation, context, raw_path)
            await _record_replay_claim(context)
        except (OpaseError, PaymentRefusal) as exc:
            error = exc if isinstance(exc, OpaseError) else as_opase_error(exc)
            claim = None if context is None else context.replay_claim
            # Refused before its transaction recorded the signature: record it now, so that
            # the same signed request cannot be tried again later; a replay is told so.
            if claim is not None and not await claim.take_alone():
                error = SignatureRejected("replayed_signature")
            return error_response(error, auth_server_url=self.settings.auth_server_url)
        except Exception as exc:
            if not database_unavailable(exc):
                raise  # a defect: logged and answered 500 by the app's last handler
            # Expected under load or failover, and rolled back: answered here, so that the
            # connection stays open (an exception let out makes the server drop it).
            return internal_error_response(exc)
        if self.response_checker is not None:
            self.response_checker.check_live(match, request, response)
        return response

    async def _answer(
        self, operation: Operation, context: RequestContext, raw_path: str
    ) -> Response:
        key = context.header_params.get(IDEMPOTENCY_HEADER)
        if key is None:
            return self._render(operation, await self.handlers[operation.operation_id](context))
        sessions = self.services.sessions
        fingerprint = request_sha256(operation.method, raw_path, context.raw_body)
        stored = await stored_answer(sessions, key, fingerprint)
        if stored is not None:
            return stored
        response = self._render(operation, await self.handlers[operation.operation_id](context))
        return await remember(sessions, key, fingerprint, response)

    async def _context(self, match: Match, request: Request, raw_path: str) -> RequestContext:
        validator = self.validators[match.operation.operation_id]
        headers = request.headers
        # RFC 9112 6.3: a request with neither header has no body; don't wait for one.
        body = b""
        if "content-length" in headers or "transfer-encoding" in headers:
            body = await _read_body(request, self.settings.request_body_bytes_max)
        document, model = validator.body_value(body, headers.get("content-type"))
        query: bytes = request.scope["query_string"]
        pairs = parse_qsl(query.decode("latin-1"), keep_blank_values=True) if query else []
        return RequestContext(
            operation=match.operation,
            settings=self.settings,
            services=self.services,
            # The public origin: behind a TLS-terminating proxy the scope's scheme and host
            # are the proxy's, while the client saw (and signed) the configured URL.
            request_url=match.server_origin + raw_path,
            headers=headers,
            query_string=query.decode("latin-1"),
            path_params=validator.path_params(match.path_params),
            query=validator.query_params(pairs),
            header_params=validator.header_params(headers),
            raw_body=body,
            document=document,
            body=model,
            wallet_address_path=match.wallet_address_path,
        )

    @staticmethod
    def _render(operation: Operation, reply: Reply) -> Response:
        if isinstance(reply, Response):
            return reply
        if reply is None:
            assert operation.success_status == 204, f"{operation.operation_id} returned no body"
            return Response(status_code=204)
        if isinstance(reply, BaseModel):
            content = reply.model_dump(mode="json", by_alias=True, exclude_none=True)
        else:
            content = reply
        return Response(
            orjson.dumps(content),
            status_code=operation.success_status,
            media_type="application/json",
        )


async def _record_replay_claim(context: RequestContext) -> None:
    """A claim the operation left unrecorded (it answered without a transaction, e.g. a
    stored idempotent answer): recorded now; a replay gets 401 instead of the answer."""
    claim, context.replay_claim = context.replay_claim, None
    if claim is not None and not await claim.take_alone():
        raise SignatureRejected("replayed_signature")


def _raw_path(scope: Scope) -> str:
    """The path as the client sent it: routing and `id`s never see a decoded alias of it."""
    raw: bytes | None = scope.get("raw_path")
    if raw is None:
        return str(scope["path"])
    return raw.decode("latin-1").split("?", 1)[0]


async def _read_body(request: Request, size_bytes_max: int) -> bytes:
    return await read_bounded(
        request.stream(),
        declared_length=request.headers.get("content-length"),
        size_bytes_max=size_bytes_max,
        too_large=lambda: PayloadTooLarge(f"request body exceeds {size_bytes_max} bytes"),
    )


def render_unhandled(request: Request, exc: Exception) -> Response:
    return internal_error_response(exc)
