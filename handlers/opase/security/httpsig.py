"""RFC 9421 HTTP message signatures and RFC 9530 Content-Digest: the one verifier, the one signer.

This module knows messages and keys, never where a key comes from (`client_keys`) nor which
grant a request belongs to (`bindings`); `Authenticator` puts the three together.

Verification of a request, in order, each step refusing with a `SignatureRejected` that
names a short reason code (logged; the client sees only the code):

    parse Signature-Input and Signature (RFC 8941 structured fields)
    -> check the Open Payments component rules (`required_components`)
    -> check Content-Digest over the bytes received
    -> rebuild the signature base -> Ed25519 verify with the client's key
    -> check `created` against the age window

The replay check comes after, in `replay`, because only an authentic signature may claim
a place in the replay cache.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

import http_sf
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from opase.errors import InvalidClient

log = logging.getLogger("opase.web.authentication")

SIGNATURE_LABEL: Final = "sig1"
"""The label the Open Payments clients use; preferred when a request carries several."""
ED25519_SIGNATURE_BYTES: Final = 64
SIGNATURE_HEADER_BYTES_MAX: Final = 4096
"""Signature-Input, Signature and Content-Digest are short; longer values are refused
before parsing, so a hostile header costs nothing."""
COMPONENT_COUNT_MAX: Final = 32
NONCE_BYTES: Final = 16

DIGEST_ALGORITHMS: Final[Mapping[str, Callable[[bytes], Any]]] = {
    "sha-512": hashlib.sha512,
    "sha-256": hashlib.sha256,
}
"""RFC 9530 algorithms we verify; others in a Content-Digest are ignored (RFC 9530 4)."""

BODY_COMPONENTS: Final = ("content-digest", "content-length", "content-type")
DERIVED_COMPONENTS: Final = frozenset(
    {"@method", "@target-uri", "@authority", "@scheme", "@request-target", "@path", "@query"}
)
KNOWN_SIGNATURE_PARAMS: Final = frozenset({"created", "expires", "nonce", "alg", "keyid", "tag"})


class SignatureRejected(InvalidClient):
    """A request whose signature, digest or key does not hold up.

    The code is GNAP's `invalid_client`, the one every 401 of the authorization server
    declares; `reason` says which check failed, short and stable, for logs and clients."""

    def __init__(self, reason: str) -> None:
        super().__init__(
            f"the request signature was rejected ({reason})", details={"reason": reason}
        )
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Message:
    """The parts of a request a signature can cover, as the client sent them.

    `target_uri` is the URL the client used: rebuilt from the configured public base URL,
    not from what a TLS-terminating proxy forwarded. `headers` maps lower-case names to
    every value received for that name."""

    method: str
    target_uri: str
    headers: Mapping[str, list[str]]
    body: bytes

    def header(self, name: str) -> str | None:
        """The field value as RFC 9421 2.1 covers it: every line, trimmed, joined by ', '."""
        values = self.headers.get(name)
        if not values:
            return None
        return ", ".join(value.strip() for value in values)


@dataclass(frozen=True, slots=True)
class ParsedSignature:
    label: str
    components: tuple[str, ...]
    key_id: str
    created_s: int | None
    expires_s: int | None
    signature: bytes
    signature_params: str
    """The serialised `@signature-params` value, the last line of the signature base."""


def _structured(value: str | None, field_name: str) -> dict[str, Any]:
    if value is None:
        raise SignatureRejected(f"missing_{field_name}")
    if len(value) > SIGNATURE_HEADER_BYTES_MAX:
        raise SignatureRejected(f"oversized_{field_name}")

    def refuse_duplicate(key: str, context: str) -> None:
        raise ValueError(f"duplicate {context} key {key!r}")

    try:
        parsed = http_sf.parse(
            value.encode("latin-1"), tltype="dictionary", on_duplicate_key=refuse_duplicate
        )
    # The parser's input is the attacker's: any failure it has, whatever its type, is a
    # malformed header, never a 500.
    except Exception as exc:
        log.info("malformed %s: %s", field_name, exc)
        raise SignatureRejected(f"malformed_{field_name}") from None
    if not isinstance(parsed, dict) or not parsed:
        raise SignatureRejected(f"malformed_{field_name}")
    return parsed


def _choose_label(labels: list[str]) -> str:
    if len(labels) == 1:
        return labels[0]
    if SIGNATURE_LABEL in labels:
        return SIGNATURE_LABEL
    raise SignatureRejected("ambiguous_signature")


def parse_signature(message: Message) -> ParsedSignature:
    """The request's signature and what it claims to cover; nothing verified yet."""
    inputs = _structured(message.header("signature-input"), "signature_input")
    signatures = _structured(message.header("signature"), "signature")
    label = _choose_label(list(inputs))
    member = inputs[label]
    signature_member = signatures.get(label)
    if signature_member is None:
        raise SignatureRejected("missing_signature")
    signature, _ = signature_member
    if not isinstance(signature, bytes) or len(signature) != ED25519_SIGNATURE_BYTES:
        raise SignatureRejected("malformed_signature")
    inner, params = member
    if not isinstance(inner, list) or not 0 < len(inner) <= COMPONENT_COUNT_MAX:
        raise SignatureRejected("malformed_signature_input")
    components = []
    for name, component_params in inner:
        # Component identifiers are lower-case sf-strings (RFC 9421 2); parameters such as
        # `;sf`, `;key`, `;req` change the covered value and are not part of the profile.
        if type(name) is not str or name != name.lower():
            raise SignatureRejected("malformed_component")
        if component_params:
            raise SignatureRejected("unsupported_component")
        if name.startswith("@") and name not in DERIVED_COMPONENTS:
            raise SignatureRejected("unsupported_component")
        components.append(name)
    if len(set(components)) != len(components):
        raise SignatureRejected("duplicate_component")
    if not set(params) <= KNOWN_SIGNATURE_PARAMS:
        raise SignatureRejected("unsupported_signature_parameter")
    key_id = params.get("keyid")
    if type(key_id) is not str or not key_id:
        raise SignatureRejected("missing_keyid")
    algorithm = params.get("alg")
    if algorithm is not None and algorithm != "ed25519":
        raise SignatureRejected("unsupported_algorithm")
    created_s = _integer_param(params, "created")
    expires_s = _integer_param(params, "expires")
    return ParsedSignature(
        label=label,
        components=tuple(components),
        key_id=key_id,
        created_s=created_s,
        expires_s=expires_s,
        signature=signature,
        signature_params=http_sf.innerlist.ser_innerlist(member),
    )


def _integer_param(params: Mapping[str, Any], name: str) -> int | None:
    value = params.get(name)
    if value is None:
        return None
    # bool is an int in Python, and `?1` parses to True.
    if type(value) is not int or value < 0:
        raise SignatureRejected(f"malformed_{name}")
    return value


def required_components(message: Message) -> tuple[str, ...]:
    """What an Open Payments signature must cover (the profile of the specs'
    `Signature-Input` text), stricter than the reference: a body needs its digest."""
    required = ["@method", "@target-uri"]
    if message.header("authorization") is not None:
        required.append("authorization")
    if message.body or message.header("content-digest") is not None:
        required.extend(BODY_COMPONENTS)
    return tuple(required)


def check_components(parsed: ParsedSignature, message: Message) -> None:
    covered = set(parsed.components)
    for name in required_components(message):
        if name not in covered:
            raise SignatureRejected(f"uncovered_{name.lstrip('@').replace('-', '_')}")


def check_content_digest(message: Message) -> None:
    """RFC 9530 over the bytes received: every algorithm we know must match, at least one."""
    value = message.header("content-digest")
    if value is None:
        if message.body:
            raise SignatureRejected("missing_content_digest")
        return
    digests = _structured(value, "content_digest")
    checked = 0
    for algorithm, (expected, _) in digests.items():
        digest = DIGEST_ALGORITHMS.get(algorithm)
        if digest is None:
            continue
        if not isinstance(expected, bytes):
            raise SignatureRejected("malformed_content_digest")
        if not hmac.compare_digest(digest(message.body).digest(), expected):
            raise SignatureRejected("content_digest_mismatch")
        checked += 1
    if checked == 0:
        raise SignatureRejected("unsupported_content_digest")


def _component_value(name: str, message: Message) -> str:
    if not name.startswith("@"):
        value = message.header(name)
        if value is None:
            raise SignatureRejected("absent_component")
        return value
    if name == "@method":
        return message.method
    if name == "@target-uri":
        return message.target_uri
    parts = urlsplit(message.target_uri)
    if name == "@authority":
        return _authority(parts.scheme, parts.netloc)
    if name == "@scheme":
        return parts.scheme.lower()
    path = parts.path or "/"
    if name == "@path":
        return path
    if name == "@query":
        return f"?{parts.query}"
    assert name == "@request-target", name
    return f"{path}?{parts.query}" if parts.query else path


def _authority(scheme: str, netloc: str) -> str:
    authority = netloc.lower()
    default_port = {"https": ":443", "http": ":80"}.get(scheme.lower())
    if default_port and authority.endswith(default_port):
        authority = authority[: -len(default_port)]
    return authority


def signature_base(components: tuple[str, ...], signature_params: str, message: Message) -> bytes:
    """RFC 9421 2.5: one `"name": value` line per covered component, then the parameters."""
    lines = [f'"{name}": {_component_value(name, message)}' for name in components]
    lines.append(f'"@signature-params": {signature_params}')
    try:
        return "\n".join(lines).encode("latin-1")
    except UnicodeEncodeError:
        raise SignatureRejected("malformed_component_value") from None


def verify_signature(parsed: ParsedSignature, message: Message, key: Ed25519PublicKey) -> None:
    base = signature_base(parsed.components, parsed.signature_params, message)
    try:
        key.verify(parsed.signature, base)
    except InvalidSignature:
        raise SignatureRejected("bad_signature") from None


def check_age(parsed: ParsedSignature, *, now_s: float, age_s_max: int, skew_s: int) -> None:
    """`created` within [now - age_s_max - skew_s, now + skew_s]; `expires`, when given, not
    passed. Without `created` a signature could be replayed for ever: required."""
    if parsed.created_s is None:
        raise SignatureRejected("missing_created")
    if parsed.created_s > now_s + skew_s:
        raise SignatureRejected("created_in_future")
    if parsed.created_s < now_s - age_s_max - skew_s:
        raise SignatureRejected("stale_signature")
    if parsed.expires_s is not None and parsed.expires_s < now_s - skew_s:
        raise SignatureRejected("expired_signature")


def content_digest(body: bytes, algorithm: str = "sha-512") -> str:
    encoded = base64.b64encode(DIGEST_ALGORITHMS[algorithm](body).digest()).decode("ascii")
    return f"{algorithm}=:{encoded}:"


def sign_request(
    *,
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    private_key: Ed25519PrivateKey,
    key_id: str,
    created_s: int | None = None,
    content_type: str = "application/json",
) -> dict[str, str]:
    """The headers to add to a request so that `Authenticator` accepts it: the Open Payments
    components by the same rules the verifier applies (`required_components`).

    Returns Signature, Signature-Input (`keyid`, `created` and a random `nonce`), and for a
    body Content-Digest, Content-Length and Content-Type (the given ones win)."""
    added: dict[str, str] = {}
    given = {name.lower(): value for name, value in headers.items()}
    if body:
        added["Content-Digest"] = content_digest(body)
        added["Content-Length"] = str(len(body))
        added["Content-Type"] = given.get("content-type", content_type)
    all_headers = {**given, **{name.lower(): value for name, value in added.items()}}
    message = Message(
        method=method.upper(),
        target_uri=url,
        headers={name: [value] for name, value in all_headers.items()},
        body=body,
    )
    components = required_components(message)
    # A nonce makes each signature unique, so two identical requests in the same second are
    # not mistaken for a replay of each other.
    params = {
        "keyid": key_id,
        "created": int(time.time()) if created_s is None else created_s,
        "nonce": secrets.token_urlsafe(NONCE_BYTES),
    }
    inner: Any = ([(name, {}) for name in components], params)
    signature_params = http_sf.innerlist.ser_innerlist(inner)
    base = signature_base(components, signature_params, message)
    signature = private_key.sign(base)
    added["Signature-Input"] = f"{SIGNATURE_LABEL}={signature_params}"
    added["Signature"] = f"{SIGNATURE_LABEL}=:{base64.b64encode(signature).decode('ascii')}:"
    return added
