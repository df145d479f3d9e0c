"""schemathesis hooks for the authorization server
(SCHEMATHESIS_HOOKS=tests.conformance.signing_hooks): every request signed as the sandbox's
client, and real clients, grants and tokens put in most cases, so the run reaches the
handlers' behaviour instead of stopping at 401.

    POST /             the generated `client` becomes the real one (string, `walletAddress`,
                       `jwk`, in turn; with the first and third, access identifiers and
                       subject ids become a wallet address of the ASE) in 3 cases of 4; the
                       4th keeps the generated client (401).
    /continue/{id}     `Authorization: GNAP <placeholder>` from a schemathesis auth provider
    /token/{id}        (so the checks know the credentials are ours, not generated) becomes,
                       in turn: a fresh grant's token at its own URL (2xx; POST /continue
                       polls a pending grant whose wait has passed), the same at once after
                       its creation (POST /continue: 400 too_fast), a real token at the
                       generated id (404, or 401 where the spec says so), an unknown token
                       (401). An id taken from an earlier response is used with its own
                       token (stateful links). Cases schemathesis generates without the
                       placeholder (negative auth) keep what it generated.

Signing is a `requests` auth, so it covers the prepared request: the final URL and the exact
body bytes sent. Choices are made in turn per operation, so the same seed makes the same
choices (with --workers 1). The client comes from the CONFORMANCE_* variables the test sets;
each response's status is appended to CONFORMANCE_STATUS_LOG (JSON lines) for the test.
"""

from __future__ import annotations

import base64
import copy
import json
import os
import time
from collections import Counter, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

import httpx
import schemathesis
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_pem_private_key,
)
from requests.structures import CaseInsensitiveDict
from schemathesis.core.parameters import ParameterLocation

import tests.conformance.hooks  # noqa: F401  (registers the string formats)
from opase.security.httpsig import sign_request
from tests.conformance.request_signing import RequestSigner

ENV_AUTH_SERVER: Final = "CONFORMANCE_AUTH_SERVER"
ENV_CLIENT_WALLET_ADDRESS: Final = "CONFORMANCE_CLIENT_WALLET_ADDRESS"
ENV_CLIENT_KEY_ID: Final = "CONFORMANCE_CLIENT_KEY_ID"
ENV_CLIENT_KEY_PATH: Final = "CONFORMANCE_CLIENT_KEY_PATH"
"""A PKCS#8 PEM file: the private key of the sandbox client."""
ENV_OWNER_WALLET_ADDRESS: Final = "CONFORMANCE_OWNER_WALLET_ADDRESS"
"""A wallet address of the ASE under test: access identifiers and outgoing-payment grants."""
ENV_STATUS_LOG: Final = "CONFORMANCE_STATUS_LOG"
REQUIRED_ENV: Final = (
    ENV_AUTH_SERVER, ENV_CLIENT_WALLET_ADDRESS, ENV_CLIENT_KEY_ID, ENV_CLIENT_KEY_PATH,
    ENV_OWNER_WALLET_ADDRESS, ENV_STATUS_LOG,
)  # fmt: skip

PLACEHOLDER_TOKEN: Final = "conformance-placeholder"
"""Put by the auth provider at generation time, replaced by a real token just before the call
(so no grant is made for a case that is never sent)."""
CONTINUE: Final = "/continue/{id}"
TOKEN: Final = "/token/{id}"
POLL_POOL_SIZE: Final = 24
"""Pending grants polled in turn by POST /continue; each may be polled again `wait` s later."""
POLL_MARGIN_S: Final = 1.0
HTTP_TIMEOUT_S: Final = 10.0


@dataclass(frozen=True)
class Client:
    auth_server: str
    wallet_address: str
    key_id: str
    private_key: Ed25519PrivateKey
    owner_wallet_address: str
    status_log: Path

    @property
    def jwk(self) -> dict[str, str]:
        raw = self.private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        x = base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")
        return {"kid": self.key_id, "alg": "EdDSA", "kty": "OKP", "crv": "Ed25519", "x": x}

    def signed_headers(
        self, method: str, url: str, headers: dict[str, str], body: bytes
    ) -> dict[str, str]:
        return sign_request(
            method=method, url=url, headers=headers, body=body,
            private_key=self.private_key, key_id=self.key_id,
        )  # fmt: skip


@cache
def client() -> Client:
    missing = [name for name in REQUIRED_ENV if not os.environ.get(name)]
    if missing:
        raise RuntimeError(f"signing_hooks needs {', '.join(missing)}")
    key = load_pem_private_key(Path(os.environ[ENV_CLIENT_KEY_PATH]).read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise RuntimeError("the client key must be Ed25519")
    return Client(
        auth_server=os.environ[ENV_AUTH_SERVER].rstrip("/"),
        wallet_address=os.environ[ENV_CLIENT_WALLET_ADDRESS],
        key_id=os.environ[ENV_CLIENT_KEY_ID],
        private_key=key,
        owner_wallet_address=os.environ[ENV_OWNER_WALLET_ADDRESS],
        status_log=Path(os.environ[ENV_STATUS_LOG]),
    )


# --- grants made on the side -----------------------------------------------------------------


def signed_post(path: str, document: dict[str, Any]) -> dict[str, Any]:
    me = client()
    url = f"{me.auth_server}{path}"
    body = json.dumps(document).encode()
    headers = {"Content-Type": "application/json"}
    headers |= me.signed_headers("POST", url, headers, body)
    response = httpx.post(url, content=body, headers=headers, timeout=HTTP_TIMEOUT_S)
    if response.status_code != 200:
        raise RuntimeError(f"setting up a grant: {response.status_code} {response.text}")
    result: dict[str, Any] = response.json()
    return result


@dataclass(frozen=True)
class RealGrant:
    grant_id: str
    continue_token: str
    token_id: str | None = None
    access_token: str | None = None
    wait_s: int = 0


def last_segment(url: str) -> str:
    return urlsplit(url).path.rsplit("/", 1)[-1]


def real_grant(*, interactive: bool = False) -> RealGrant:
    """A non-interactive incoming-payment grant (finalized, its token issued), or an
    outgoing-payment one waiting for the owner (pending, to be polled)."""
    me = client()
    document: dict[str, Any] = {"client": {"walletAddress": me.wallet_address}}
    if interactive:
        item = {"type": "outgoing-payment", "actions": ["create", "read"],
                "identifier": me.owner_wallet_address}  # fmt: skip
        document |= {"access_token": {"access": [item]}, "interact": {"start": ["redirect"]}}
    else:
        item = {"type": "incoming-payment", "actions": ["create", "read"]}
        document |= {"access_token": {"access": [item]}}
    granted = signed_post("/", document)
    continued = granted["continue"]
    token = granted.get("access_token")
    return RealGrant(
        grant_id=last_segment(continued["uri"]),
        continue_token=continued["access_token"]["value"],
        token_id=last_segment(token["manage"]) if token else None,
        access_token=token["value"] if token else None,
        wait_s=int(continued.get("wait", 0)),
    )


@dataclass
class PollPool:
    """Pending grants for POST /continue: polling one too early is `too_fast`, so each is
    handed out once its `wait` has passed since its creation or last poll."""

    ready: deque[tuple[float, RealGrant]] = field(default_factory=deque)
    grant_ids: set[str] = field(default_factory=set)

    def take(self) -> RealGrant:
        if not self.ready:
            for _ in range(POLL_POOL_SIZE):
                grant = real_grant(interactive=True)
                self.ready.append((time.monotonic() + grant.wait_s + POLL_MARGIN_S, grant))
                self.grant_ids.add(grant.grant_id)
        ready_at, grant = self.ready.popleft()
        time.sleep(max(0.0, ready_at - time.monotonic()))
        self.ready.append((time.monotonic() + grant.wait_s + POLL_MARGIN_S, grant))
        return grant


POLL_POOL = PollPool()
CASES: Counter[str] = Counter()
"""Cases seen per operation: a case's choice is its rank, not a random draw."""
MODES: dict[str, str] = {}
"""What `before_call` made of each case (case id -> mode), logged with its status."""
SEEN_CONTINUATIONS: dict[str, str] = {}
SEEN_TOKENS: dict[str, str] = {}
"""Grants and tokens from responses (id -> token): a stateful link that carries an id from a
response is followed with that grant's own token."""


def turn(kind: str, period: int) -> int:
    CASES[kind] += 1
    return (CASES[kind] - 1) % period


# --- the hooks -------------------------------------------------------------------------------


@schemathesis.auth(refresh_interval=None, retry_on=[])
class GnapPlaceholder:
    """Marks the credentials as supplied by us (not generated): `ignored_auth` then probes
    without them instead of calling any 2xx an accepted invalid token."""

    def get(self, case: schemathesis.Case[Any], context: schemathesis.AuthContext) -> str | None:
        return PLACEHOLDER_TOKEN if case.operation.path in (CONTINUE, TOKEN) else None

    def set(
        self, case: schemathesis.Case[Any], data: str, context: schemathesis.AuthContext
    ) -> None:
        _authorize(case, data)


@schemathesis.hook
def before_call(
    context: schemathesis.HookContext, case: schemathesis.Case[Any], kwargs: Any
) -> None:
    operation = case.operation
    mode = "generated"
    if operation.path == "/":
        mode = _real_client(case)
    elif operation.path in (CONTINUE, TOKEN) and _has_placeholder(case):
        mode = _real_credentials(case)
    MODES[case.id] = mode
    me = client()
    kwargs["auth"] = RequestSigner(me.private_key, me.key_id)


def _has_placeholder(case: schemathesis.Case[Any]) -> bool:
    headers = case.headers
    return isinstance(headers, Mapping) and headers.get("Authorization") == (
        f"GNAP {PLACEHOLDER_TOKEN}"
    )


def _real_client(case: schemathesis.Case[Any]) -> str:
    if not isinstance(case.body, dict) or "client" not in case.body:
        return "generated"
    me = client()
    choice = turn("POST /", 4)
    if choice == 3:
        return "generated"  # its keys cannot be found or do not match (401)
    # A copy: generated bodies share parts with other cases (and the spec's examples).
    case.body = body = copy.deepcopy(case.body)
    forms: list[Any] = [me.wallet_address, {"walletAddress": me.wallet_address},
                        {"jwk": me.jwk}]  # fmt: skip
    body["client"] = forms[choice]
    if choice == 1:
        return "client"  # generated identifiers: not wallet addresses of this ASE (400)
    access = body.get("access_token")
    items = access.get("access") if isinstance(access, dict) else None
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict) and "identifier" in item:
            item["identifier"] = me.owner_wallet_address
    subject = body.get("subject")
    sub_ids = subject.get("sub_ids") if isinstance(subject, dict) else None
    for sub_id in sub_ids if isinstance(sub_ids, list) else []:
        if isinstance(sub_id, dict) and "id" in sub_id:
            sub_id["id"] = me.owner_wallet_address
    return "client+identifiers"


def _real_credentials(case: schemathesis.Case[Any]) -> str:
    operation = case.operation
    continuing = operation.path == CONTINUE
    path_id = case.path_parameters.get("id") if isinstance(case.path_parameters, dict) else None
    seen = SEEN_CONTINUATIONS if continuing else SEEN_TOKENS
    if isinstance(path_id, str) and path_id in seen:
        _authorize(case, seen[path_id])
        return "linked"  # an id from an earlier response
    label = f"{operation.method.upper()} {operation.path}"
    choice = turn(label, 4)
    if choice == 3:
        _authorize(case, f"unknown-token-{CASES[label]}")
        return "unknown-token"
    polling = label == "POST /continue/{id}"
    too_soon = polling and choice == 1
    # A pending grant polled once its wait has passed (200) or at once (400 too_fast);
    # elsewhere a fresh finalized grant.
    if polling:
        grant = real_grant(interactive=True) if too_soon else POLL_POOL.take()
    else:
        grant = real_grant()
    token = grant.continue_token if continuing else grant.access_token
    grant_id = grant.grant_id if continuing else grant.token_id
    assert token is not None and grant_id is not None
    _authorize(case, token)
    meta = case.meta
    if choice == 2 or (meta is not None and meta.is_negative_at(ParameterLocation.PATH)):
        return "token"  # at the generated id: another grant's URL (404, or 401 for DELETE token)
    case.path_parameters = {**case.path_parameters, "id": grant_id}
    return "token+id-too-soon" if too_soon else "token+id"


def _authorize(case: schemathesis.Case[Any], token: str) -> None:
    # A copy, not shared with the case it was generated from.
    headers: CaseInsensitiveDict[Any] = CaseInsensitiveDict(case.headers or {})
    headers["Authorization"] = f"GNAP {token}"
    case.headers = headers


@schemathesis.hook
def after_call(
    context: schemathesis.HookContext, case: schemathesis.Case[Any], response: schemathesis.Response
) -> None:
    operation = case.operation
    label = f"{operation.method.upper()} {operation.path}"
    with client().status_log.open("a") as log:
        mode = MODES.pop(case.id, "")
        log.write(json.dumps({"operation": label, "status": response.status_code, "mode": mode}))
        log.write("\n")
    if not 200 <= response.status_code < 300:
        return
    try:
        document = response.json()
    except ValueError:
        return
    if not isinstance(document, dict):
        return
    continued = document.get("continue")
    if isinstance(continued, dict) and isinstance(continued.get("uri"), str):
        value = (continued.get("access_token") or {}).get("value")
        grant_id = last_segment(continued["uri"])
        # The pool's grants are for polling: a link must not cancel them.
        if isinstance(value, str) and grant_id not in POLL_POOL.grant_ids:
            SEEN_CONTINUATIONS[grant_id] = value
    token = document.get("access_token")
    if isinstance(token, dict) and isinstance(token.get("manage"), str):
        if isinstance(token.get("value"), str):
            SEEN_TOKENS[last_segment(token["manage"])] = token["value"]
