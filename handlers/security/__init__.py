"""Who may call an operation: the security step of the request path.

The route table names each operation's security schemes (from the spec). `adminApiKey` is a
bearer key from the settings, compared in constant time. GNAP with HTTP message signatures
(the Open Payments servers) is checked by the verifier a later release adds here.
"""

from __future__ import annotations

import hmac

from starlette.datastructures import Headers

from opase.errors import Unauthorized
from opase.generated.routes import Operation
from opase.settings import Settings

ADMIN_API_KEY = "adminApiKey"
ADMIN_CHALLENGE = 'Bearer realm="opase-admin"'


class Authenticator:
    def __init__(self, settings: Settings) -> None:
        self.admin_keys = tuple(key.get_secret_value().encode() for key in settings.admin_api_keys)

    def authenticate(self, operation: Operation, headers: Headers) -> None:
        if ADMIN_API_KEY in operation.security:
            self._admin(headers)

    def _admin(self, headers: Headers) -> None:
        scheme, _, presented = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not presented:
            raise Unauthorized(
                "this operation needs Authorization: Bearer <admin API key>",
                headers={"WWW-Authenticate": ADMIN_CHALLENGE},
            )
        candidate = presented.strip().encode()
        # Compare with every key, always: the time taken says nothing about which matched.
        matched = False
        for key in self.admin_keys:
            matched |= hmac.compare_digest(candidate, key)
        if not matched:
            raise Unauthorized(
                "the admin API key is not valid", headers={"WWW-Authenticate": ADMIN_CHALLENGE}
            )
