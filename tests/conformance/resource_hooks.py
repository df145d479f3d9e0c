"""schemathesis hooks for the resource server
(SCHEMATHESIS_HOOKS=tests.conformance.resource_hooks): every request signed as the sandbox's
demo client, with a real access token and, in most cases, real request data, so the run
reaches what the handlers do instead of stopping at 401, 403 or 400.

The token is one grant's (`SandboxWorld.approved_token`: every resource-server action, the
owner's approval through the consent pages, a limit far above the payer's balance). The
auth provider puts `Authorization: GNAP <placeholder>` in the cases it authenticates (so the
checks know the credentials are ours); `before_call` turns the placeholder, per operation
and in turn, into:

    real             the token, and the real values the operation needs put into the parts
                     of the request schemathesis generated as valid (2 cases of 4)
    token            the token, the request as generated (1 of 4: 400, 403, 404)
    unknown-token    an unknown token, the real values (1 of 4: 401)

Real values: `walletAddress` / `wallet-address` the payer (the wallet address the grant's
outgoing payments name) or the payee; `receiver` / `incomingPayment` an incoming payment at
the payee (one without `incomingAmount`, one with a large one); `quoteId` a fresh quote of
a few cents (a quote pays once); amounts a few cents, in the asset of their wallet address;
`expiresAt` an hour ahead; `{id}` an incoming payment, quote or outgoing payment of the
run (a fresh incoming payment for complete). A path id taken from an earlier response
(stateful links) is kept, with the token (never a receiver for complete). Parts that
schemathesis generated as invalid keep what it made. Cases without the placeholder
(schemathesis testing authentication itself) are sent as generated, signed; cases generated
with an invalid or missing `Signature`/`Signature-Input` are sent unsigned. The custom checks
at the end stand in for `status_code_conformance` (see the config in test_specs.py).

Choices are made in turn per operation, so the same seed makes the same choices (with
--workers 1). The sandbox comes from CONFORMANCE_MANIFEST; each response's status is
appended to CONFORMANCE_STATUS_LOG (JSON lines) for the test.
"""

from __future__ import annotations

import copy
import json
import os
from collections import Counter
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any, Final

import jsonschema_rs
import schemathesis
from requests.structures import CaseInsensitiveDict
from schemathesis.core.parameters import ParameterLocation

import tests.conformance.hooks  # noqa: F401  (registers the string formats)
from opase.web.response_check import GENERIC_ERROR_STATUSES
from tests.conformance.request_signing import RequestSigner
from tests.conformance.sandbox_world import SandboxWorld, resource_id

SPEC: Final = (
    Path(__file__).resolve().parents[2]
    / "generated"
    / "opase_generated"
    / "specs"
    / "resource-server.json"
)
ENV_MANIFEST: Final = "CONFORMANCE_MANIFEST"
ENV_STATUS_LOG: Final = "CONFORMANCE_STATUS_LOG"
PLACEHOLDER_TOKEN: Final = "conformance-placeholder"
"""Put by the auth provider at generation time, replaced just before the call."""
AMOUNT_MINOR_MAX: Final = 50
"""Real amounts are 1 to this many minor units: hundreds of payments stay far within the
payer's balance (and the grant's limit)."""
CAPPED_RECEIVER_MINOR: Final = 10**7
EXPIRY_AHEAD: Final = timedelta(hours=1)

COMPLETE: Final = "POST /incoming-payments/{id}/complete"
INCOMING: Final = "incoming-payment"
QUOTE: Final = "quote"
OUTGOING: Final = "outgoing-payment"


class World:
    """The sandbox, the token, and the resources the run knows (URLs by kind)."""

    def __init__(self) -> None:
        self.sandbox = SandboxWorld(Path(os.environ[ENV_MANIFEST]))
        self.status_log = Path(os.environ[ENV_STATUS_LOG])
        self.signer = RequestSigner(self.sandbox.private_key, self.sandbox.key_id)
        self.token = self.sandbox.approved_token()
        self.receivers = (
            self.sandbox.incoming_payment(self.token),
            self.sandbox.incoming_payment(self.token, CAPPED_RECEIVER_MINOR),
        )
        self.receiver_ids = frozenset(resource_id(url) for url in self.receivers)
        self.known: dict[str, dict[str, str]] = {INCOMING: {}, QUOTE: {}, OUTGOING: {}}
        """Kind -> {id: URL} of resources created in this run (here or by a test case)."""
        for url in self.receivers:
            self.remember(INCOMING, url)

    def remember(self, kind: str, url: str) -> None:
        self.known[kind][resource_id(url)] = url

    def any_known(self, kind: str, rank: int) -> str | None:
        urls = list(self.known[kind].values())
        return urls[rank % len(urls)] if urls else None

    def fresh_quote(self, rank: int) -> str:
        url = self.sandbox.quote(self.token, self.receivers[0], small_amount(rank))
        self.remember(QUOTE, url)
        return url

    def fresh_outgoing_payment(self, rank: int) -> str | None:
        """A new outgoing payment, or None while the operation does not answer 201."""
        url = f"{self.sandbox.resource_server}/outgoing-payments"
        document = {"walletAddress": self.sandbox.payer.url, "quoteId": self.fresh_quote(rank)}
        response = self.sandbox.call("POST", url, document, token=self.token)
        if response.status_code != 201:
            return None
        created: str = response.json()["id"]
        self.remember(OUTGOING, created)
        return created


@cache
def world() -> World:
    missing = [name for name in (ENV_MANIFEST, ENV_STATUS_LOG) if not os.environ.get(name)]
    if missing:
        raise RuntimeError(f"resource_hooks needs {', '.join(missing)}")
    return World()


def small_amount(rank: int) -> int:
    return 1 + rank % AMOUNT_MINOR_MAX


CASES: Counter[str] = Counter()
MODES: dict[str, str] = {}
"""What `before_call` made of each case (case id -> mode), logged with its status."""


def turn(label: str, period: int) -> tuple[int, int]:
    """This case's choice (its rank modulo `period`) and its rank."""
    CASES[label] += 1
    rank = CASES[label] - 1
    return rank % period, rank


# --- the hooks -------------------------------------------------------------------------------


@schemathesis.auth(refresh_interval=None, retry_on=[])
class GnapPlaceholder:
    """Marks the credentials as supplied by us (not generated): `ignored_auth` then probes
    without them instead of calling any 2xx an accepted invalid token."""

    def get(self, case: schemathesis.Case[Any], context: schemathesis.AuthContext) -> str:
        return PLACEHOLDER_TOKEN

    def set(
        self, case: schemathesis.Case[Any], data: str, context: schemathesis.AuthContext
    ) -> None:
        _authorize(case, data)


@schemathesis.hook
def before_call(
    context: schemathesis.HookContext, case: schemathesis.Case[Any], kwargs: Any
) -> None:
    here = world()
    mode = "generated"
    if _has_placeholder(case):
        mode = _realize(here, case)
    meta = case.meta
    if meta is None or not meta.is_negative_at(ParameterLocation.HEADER):
        kwargs["auth"] = here.signer
    else:
        mode += "+unsigned"
    if meta is not None:
        negative = [str(location.value) for location in meta.components
                    if meta.is_negative_at(location)]  # fmt: skip
        mode += "".join(f"+negative-{location}" for location in negative)
    MODES[case.id] = mode
    # A case generated without a valid `Signature` or `Signature-Input` (the spec declares
    # both) is sent as generated: signing it would turn it into a valid request.


def _has_placeholder(case: schemathesis.Case[Any]) -> bool:
    headers = case.headers
    return isinstance(headers, Mapping) and headers.get("Authorization") == (
        f"GNAP {PLACEHOLDER_TOKEN}"
    )


def _authorize(case: schemathesis.Case[Any], token: str) -> None:
    # A copy, not shared with the case it was generated from.
    headers: CaseInsensitiveDict[Any] = CaseInsensitiveDict(case.headers or {})
    headers["Authorization"] = f"GNAP {token}"
    case.headers = headers


def _label(case: schemathesis.Case[Any]) -> str:
    return f"{case.operation.method.upper()} {case.operation.path}"


def _realize(here: World, case: schemathesis.Case[Any]) -> str:
    label = _label(case)
    path_id = case.path_parameters.get("id") if isinstance(case.path_parameters, dict) else None
    if label == COMPLETE and path_id in here.receiver_ids:
        # Never a receiver to complete (a link may carry one): quotes and payments use them.
        _path_id(case, here.sandbox.incoming_payment(here.token))
    elif isinstance(path_id, str) and any(path_id in known for known in here.known.values()):
        _authorize(case, here.token)
        return "linked"  # an id from an earlier response
    choice, rank = turn(label, 4)
    if choice == 2:
        _authorize(case, here.token)
        return "token"
    REALIZERS[label](here, case, rank)
    if choice == 3:
        _authorize(case, f"unknown-token-{rank}")
        return "unknown-token"
    _authorize(case, here.token)
    return "real"


# --- real values per operation ---------------------------------------------------------------


def _valid_at(case: schemathesis.Case[Any], location: ParameterLocation) -> bool:
    meta = case.meta
    return meta is None or not meta.is_negative_at(location)


def _body(case: schemathesis.Case[Any]) -> dict[str, Any] | None:
    """A copy of the generated body to put real values in; None when it is not a valid
    object (a negative case keeps what schemathesis made)."""
    if not isinstance(case.body, dict) or not _valid_at(case, ParameterLocation.BODY):
        return None
    # A copy: generated bodies share parts with other cases (and the spec's examples).
    body: dict[str, Any] = copy.deepcopy(case.body)
    case.body = body
    return body


def _query(case: schemathesis.Case[Any], wallet_address: str) -> dict[str, Any] | None:
    if not isinstance(case.query, dict) or not _valid_at(case, ParameterLocation.QUERY):
        return None
    query = dict(case.query)
    query["wallet-address"] = wallet_address
    case.query = query
    return query


def _path_id(case: schemathesis.Case[Any], url: str | None) -> None:
    if url is not None and _valid_at(case, ParameterLocation.PATH):
        case.path_parameters = {**(case.path_parameters or {}), "id": resource_id(url)}


def _expires_at() -> str:
    return (datetime.now(UTC) + EXPIRY_AHEAD).isoformat(timespec="seconds").replace("+00:00", "Z")


def create_incoming_payment(here: World, case: schemathesis.Case[Any], rank: int) -> None:
    body = _body(case)
    if body is None:
        return
    wallet = (here.sandbox.payee, here.sandbox.payer)[rank % 2]
    body["walletAddress"] = wallet.url
    if "incomingAmount" in body:
        body["incomingAmount"] = wallet.amount(small_amount(rank))
    if "expiresAt" in body:
        body["expiresAt"] = _expires_at()


def list_incoming_payments(here: World, case: schemathesis.Case[Any], rank: int) -> None:
    query = _query(case, here.sandbox.payee.url)
    if query is not None and "cursor" in query:
        query["cursor"] = resource_id(here.receivers[rank % 2])


def get_incoming_payment(here: World, case: schemathesis.Case[Any], rank: int) -> None:
    _path_id(case, here.any_known(INCOMING, rank))


def complete_incoming_payment(here: World, case: schemathesis.Case[Any], rank: int) -> None:
    # A fresh one: completing twice is a conflict.
    if _valid_at(case, ParameterLocation.PATH):
        _path_id(case, here.sandbox.incoming_payment(here.token))


def create_quote(here: World, case: schemathesis.Case[Any], rank: int) -> None:
    body = _body(case)
    if body is None:
        return
    fixed = "debitAmount" in body or "receiveAmount" in body
    # Without an amount the receiver's incomingAmount fixes it.
    body |= {"walletAddress": here.sandbox.payer.url, "method": "ilp",
             "receiver": here.receivers[rank % 2 if fixed else 1]}  # fmt: skip
    if "debitAmount" in body:
        body["debitAmount"] = here.sandbox.payer.amount(small_amount(rank))
    if "receiveAmount" in body:
        body["receiveAmount"] = here.sandbox.payee.amount(small_amount(rank))


def get_quote(here: World, case: schemathesis.Case[Any], rank: int) -> None:
    url = here.any_known(QUOTE, rank)
    _path_id(case, here.fresh_quote(rank) if url is None else url)


def create_outgoing_payment(here: World, case: schemathesis.Case[Any], rank: int) -> None:
    body = _body(case)
    if body is None:
        return
    body["walletAddress"] = here.sandbox.payer.url
    if "quoteId" in body:
        body["quoteId"] = here.fresh_quote(rank)
    if "incomingPayment" in body:
        body["incomingPayment"] = here.receivers[rank % 2]
    if "debitAmount" in body:
        body["debitAmount"] = here.sandbox.payer.amount(small_amount(rank))


def list_outgoing_payments(here: World, case: schemathesis.Case[Any], rank: int) -> None:
    query = _query(case, here.sandbox.payer.url)
    if query is not None and "cursor" in query:
        cursor = here.any_known(OUTGOING, rank)
        if cursor is None:
            del query["cursor"]
        else:
            query["cursor"] = resource_id(cursor)


def get_outgoing_payment(here: World, case: schemathesis.Case[Any], rank: int) -> None:
    url = here.any_known(OUTGOING, rank)
    _path_id(case, here.fresh_outgoing_payment(rank) if url is None else url)


def get_outgoing_payment_grant(here: World, case: schemathesis.Case[Any], rank: int) -> None:
    """Nothing to put in: the token is the request."""


REALIZERS: Final[dict[str, Callable[[World, schemathesis.Case[Any], int], None]]] = {
    "POST /incoming-payments": create_incoming_payment,
    "GET /incoming-payments": list_incoming_payments,
    "GET /incoming-payments/{id}": get_incoming_payment,
    "POST /incoming-payments/{id}/complete": complete_incoming_payment,
    "POST /quotes": create_quote,
    "GET /quotes/{id}": get_quote,
    "POST /outgoing-payments": create_outgoing_payment,
    "GET /outgoing-payments": list_outgoing_payments,
    "GET /outgoing-payments/{id}": get_outgoing_payment,
    "GET /outgoing-payment-grant": get_outgoing_payment_grant,
}
KINDS: Final = {"/incoming-payments": INCOMING, "/quotes": QUOTE, "/outgoing-payments": OUTGOING}


@schemathesis.hook
def after_call(
    context: schemathesis.HookContext, case: schemathesis.Case[Any], response: schemathesis.Response
) -> None:
    here = world()
    with here.status_log.open("a") as log:
        entry = {"operation": _label(case), "status": response.status_code,
                 "mode": MODES.pop(case.id, ""), "reason": _reason(response)}  # fmt: skip
        log.write(json.dumps(entry) + "\n")
    kind = KINDS.get(case.operation.path)
    if response.status_code != 201 or kind is None:
        return
    try:
        document = response.json()
    except ValueError:
        return
    if isinstance(document, dict) and isinstance(document.get("id"), str):
        here.remember(kind, document["id"])


def _reason(response: schemathesis.Response) -> str | None:
    """An error's description, for reading the log."""
    if response.status_code < 400:
        return None
    try:
        document = response.json()
    except ValueError:
        return None
    error = document.get("error") if isinstance(document, dict) else None
    description = error.get("description") if isinstance(error, dict) else None
    return description if isinstance(description, str) else None


# --- checks ----------------------------------------------------------------------------------

ERROR_STATUSES_UNDECLARED: Final = frozenset(
    status for status in GENERIC_ERROR_STATUSES if status < 500
)
"""What opase may answer where an operation declares no such status (opase.web.response_check):
resource-server.yaml declares no 400 for most operations, no 404 for the lists, no 409 for
complete-incoming-payment, although a request can call for them. 5xx stay failures
(`not_a_server_error`)."""
PUBLIC_INCOMING_PAYMENT_FIELDS: Final = frozenset({"receivedAmount", "authServer"})


@schemathesis.check
def declared_status_or_error_response(
    ctx: schemathesis.CheckContext, response: schemathesis.Response, case: schemathesis.Case[Any]
) -> bool | None:
    """`status_code_conformance`, except that an undeclared client-error status passes when
    it is one of opase's error statuses and its body is the spec's `error-response`."""
    declared = {str(status) for status in case.operation.responses.status_codes}
    if str(response.status_code) in declared or "default" in declared:
        return None
    assert response.status_code in ERROR_STATUSES_UNDECLARED, (
        f"undeclared status {response.status_code} (declared: {', '.join(sorted(declared))})"
    )
    assert response.headers.get("content-type", [""])[0].startswith("application/json"), (
        f"error {response.status_code} is not JSON"
    )
    problems = [error.message for error in _error_response().iter_errors(response.json())]
    assert not problems, f"error {response.status_code} is not an error-response: {problems}"
    return None


@schemathesis.check
def public_incoming_payment_without_token(
    ctx: schemathesis.CheckContext, response: schemathesis.Response, case: schemathesis.Case[Any]
) -> bool | None:
    """get-incoming-payment without a token answers the public view only: never the
    payment method, the amounts asked for, or the metadata."""
    if _label(case) != "GET /incoming-payments/{id}" or response.status_code != 200:
        return None
    if "authorization" in {name.lower() for name in response.request.headers}:
        return None
    document = response.json()
    assert isinstance(document, dict) and set(document) <= PUBLIC_INCOMING_PAYMENT_FIELDS, (
        f"without a token, more than the public view: {sorted(document)}"
    )
    return None


@cache
def _error_response() -> jsonschema_rs.Draft202012Validator:
    spec = json.loads(SPEC.read_text())
    return jsonschema_rs.Draft202012Validator(spec["components"]["schemas"]["error-response"])
