"""Signed requests for the load generator: every request is built anew, with opase's own
signer (`opase.security.httpsig.sign_request`, the one the tests use), a fresh `created`
time and nonce, and `Authorization: GNAP <access token>`, as the official client sends them.

The credentials (client wallet address, key id, Ed25519 private key, access token) are the
JSON `tests.bench.seed` writes.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from opase.security.httpsig import sign_request

RequestBuilder = Callable[[], bytes]


def load_credentials(path: str | Path) -> dict[str, str]:
    credentials: dict[str, str] = json.loads(Path(path).read_text())
    return credentials


def private_key_of(credentials: dict[str, str]) -> Ed25519PrivateKey:
    raw = credentials["private_key"]
    return Ed25519PrivateKey.from_private_bytes(
        base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))
    )


def signed_headers(
    credentials: dict[str, str],
    private_key: Ed25519PrivateKey,
    method: str,
    url: str,
    headers: dict[str, str],
    body: bytes,
) -> dict[str, str]:
    """`headers` plus Authorization and the signature headers (and Content-Digest,
    Content-Length, Content-Type for a body)."""
    with_token = {**headers, "Authorization": f"GNAP {credentials['access_token']}"}
    added = sign_request(
        method=method,
        url=url,
        headers=with_token,
        body=body,
        private_key=private_key,
        key_id=credentials["key_id"],
    )
    return {**with_token, **added}


def gnap_builder(spec: Any, credentials: dict[str, str]) -> RequestBuilder:
    """A builder of signed requests for `spec` (a `loadgen.RequestSpec`)."""
    private_key = private_key_of(credentials)
    url = f"http://{spec.host}:{spec.port}{spec.path}"
    fixed = dict(spec.headers)
    fixed.setdefault("Host", f"{spec.host}:{spec.port}")
    request_line = f"{spec.method} {spec.path} HTTP/1.1\r\n"

    def build() -> bytes:
        headers = signed_headers(credentials, private_key, spec.method, url, fixed, spec.body)
        head = request_line + "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        return (head + "\r\n").encode("latin-1") + spec.body

    return build
