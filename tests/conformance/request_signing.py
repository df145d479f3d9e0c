"""Signing what schemathesis sends: a `requests` auth over the prepared request, so the
signature covers the final URL and the exact body bytes on the wire. No hooks here: the
hook modules import it."""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from requests import PreparedRequest
from requests.auth import AuthBase

from opase.security.httpsig import SignatureRejected, sign_request


class RequestSigner(AuthBase):
    """Signs the prepared request with one client key (RFC 9421, opase's own signer)."""

    def __init__(self, private_key: Ed25519PrivateKey, key_id: str) -> None:
        self.private_key = private_key
        self.key_id = key_id

    def __call__(self, request: PreparedRequest) -> PreparedRequest:
        body: Any = request.body or b""
        if isinstance(body, str):
            # Sent as these bytes (http.client would encode a str as latin-1); requests
            # recomputes Content-Length from them after the auth.
            body = request.body = body.encode("utf-8")
        if not isinstance(body, bytes) or request.method is None or request.url is None:
            return request  # a streamed body has no bytes to digest; sent unsigned
        headers = {
            name: value if isinstance(value, str) else value.decode("latin-1")
            for name, value in request.headers.items()
        }
        try:
            added = sign_request(
                method=request.method, url=request.url, headers=headers, body=body,
                private_key=self.private_key, key_id=self.key_id,
            )  # fmt: skip
        except SignatureRejected:
            return request  # a header outside latin-1 cannot be signed; the server says 401
        if "Content-Type" not in request.headers:
            # The signer names a default media type; a request generated without one keeps
            # its absence (and fails verification, as a real client's would).
            added.pop("Content-Type", None)
        request.headers.update(added)
        return request
