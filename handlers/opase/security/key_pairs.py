"""Ed25519 key pairs for clients: generation and the JWK form of public keys."""

from __future__ import annotations

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from opase import base64url


def public_jwk(key_id: str, x: str) -> dict[str, str]:
    """The JWK Open Payments publishes for a client key (RFC 8037 OKP)."""
    return {"kid": key_id, "alg": "EdDSA", "kty": "OKP", "crv": "Ed25519", "x": x, "use": "sig"}


def generate_key_pair() -> tuple[str, str]:
    """A new key pair: (x of the public key, base64url; PKCS#8 PEM of the private key)."""
    private_key = Ed25519PrivateKey.generate()
    raw_public = private_key.public_key().public_bytes(
        encoding=serialization.Encoding.Raw, format=serialization.PublicFormat.Raw
    )
    private_pem = private_key.private_bytes(
        encoding=serialization.Encoding.PEM,
        format=serialization.PrivateFormat.PKCS8,
        encryption_algorithm=serialization.NoEncryption(),
    ).decode("ascii")
    return base64url.encode(raw_public), private_pem
