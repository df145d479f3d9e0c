"""base64url without padding (RFC 4648 section 5, RFC 7515 appendix C): JWK coordinates,
thumbprints, shared secrets, cursors."""

from __future__ import annotations

import base64


def encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def decode(text: str) -> bytes:
    """The bytes of unpadded base64url `text`; binascii.Error when it is not base64."""
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
