"""A client of a running sandbox ASE, for the resource server run
(`tests.conformance.resource_hooks`): one real grant covering every resource-server
operation, approved by the owner through the built-in consent pages, and the real incoming
payments and quotes the generated requests are pointed at. No hooks here.

Everything comes from the sandbox manifest (CONFORMANCE_MANIFEST): the first ASE, its demo
client (the signing key), its first wallet address (the payer, whose owner logs in) and its
second (a payee).
"""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import parse_qs, urlsplit

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from opase.security.httpsig import sign_request

HTTP_TIMEOUT_S: Final = 10.0
FINISH_URI: Final = "http://127.0.0.1:9/finish"
"""Where the owner's browser would return to the client; never fetched (the redirect is read)."""
GRANT_DEBIT_LIMIT_MINOR: Final = 10**12
"""The grant's debit limit, far above any balance: the run must never reach it."""
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def _last_segment(url: str) -> str:
    return urlsplit(url).path.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class Wallet:
    url: str
    asset_code: str
    asset_scale: int
    username: str
    password: str

    def amount(self, value_minor: int) -> dict[str, Any]:
        return {"value": str(value_minor), "assetCode": self.asset_code,
                "assetScale": self.asset_scale}  # fmt: skip


class SandboxWorld:
    """The sandbox ASE as the client app sees it."""

    def __init__(self, manifest_path: Path) -> None:
        ase = json.loads(manifest_path.read_text())["ases"][0]
        self.auth_server: str = ase["authServer"]
        self.resource_server: str = ase["resourceServer"]
        the_client = ase["clients"][0]
        self.client_wallet_address: str = the_client["walletAddress"]
        self.key_id: str = the_client["keyId"]
        key = load_pem_private_key(the_client["privateKey"].encode(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise RuntimeError("the sandbox client key must be Ed25519")
        self.private_key = key
        wallets = [
            Wallet(w["url"], w["assetCode"], w["assetScale"], w["owner"]["username"],
                   w["owner"]["password"])
            for w in ase["walletAddresses"]
        ]  # fmt: skip
        self.payer, self.payee = wallets[0], wallets[1]
        self.http = httpx.Client(timeout=HTTP_TIMEOUT_S, follow_redirects=False)

    # --- signed calls ------------------------------------------------------------------------

    def call(
        self, method: str, url: str, document: dict[str, Any] | None = None,
        token: str | None = None,
    ) -> httpx.Response:  # fmt: skip
        body = b"" if document is None else json.dumps(document).encode()
        headers = {"Content-Type": "application/json"} if body else {}
        if token is not None:
            headers["Authorization"] = f"GNAP {token}"
        headers |= sign_request(
            method=method, url=url, headers=headers, body=body,
            private_key=self.private_key, key_id=self.key_id,
        )  # fmt: skip
        return self.http.request(method, url, content=body, headers=headers)

    def expect(self, response: httpx.Response, status: int) -> dict[str, Any]:
        if response.status_code != status:
            request = response.request
            raise RuntimeError(
                f"setting up: {request.method} {request.url} -> {response.status_code} "
                f"{response.text}"
            )
        result: dict[str, Any] = response.json()
        return result

    # --- the grant ---------------------------------------------------------------------------

    def full_access(self) -> list[dict[str, Any]]:
        """Every action of every resource-server operation; outgoing payments from the payer
        only (an outgoing-payment grant names its wallet address), under a large limit."""
        limit = {"debitAmount": self.payer.amount(GRANT_DEBIT_LIMIT_MINOR)}
        return [
            {"type": "incoming-payment",
             "actions": ["create", "read", "read-all", "list", "list-all", "complete"]},
            {"type": "quote", "actions": ["create", "read", "read-all"]},
            {"type": "outgoing-payment", "actions": ["create", "read", "read-all", "list",
                                                     "list-all"],
             "identifier": self.payer.url, "limits": limit},
        ]  # fmt: skip

    def approved_token(self) -> str:
        """An access token for `full_access`: the grant request, the owner's approval in the
        built-in consent pages (as a browser: start, log in, approve, finish), then the
        continuation with the interact_ref the finish redirect carries."""
        nonce = secrets.token_urlsafe(16)
        granted = self.expect(self.call("POST", self.auth_server + "/", {
            "client": {"walletAddress": self.client_wallet_address},
            "access_token": {"access": self.full_access()},
            "interact": {"start": ["redirect"],
                         "finish": {"method": "redirect", "uri": FINISH_URI, "nonce": nonce}},
        }), 200)  # fmt: skip
        interact_ref = self._approve(granted["interact"]["redirect"])
        continued = granted["continue"]
        finalized = self.expect(self.call(
            "POST", continued["uri"], {"interact_ref": interact_ref},
            token=continued["access_token"]["value"],
        ), 200)  # fmt: skip
        token: str = finalized["access_token"]["value"]
        return token

    def _approve(self, redirect_url: str) -> str:
        with httpx.Client(timeout=HTTP_TIMEOUT_S, follow_redirects=False) as browser:
            consent_url = self._location(browser.get(redirect_url), 302)
            login_url = self._location(browser.get(consent_url), 303)
            login_page = browser.get(login_url)
            form = {
                "csrf": self._csrf(login_page), "username": self.payer.username,
                "password": self.payer.password,
                "next": parse_qs(urlsplit(login_url).query)["next"][0],
            }  # fmt: skip
            consent_url = self._location(browser.post(login_url.split("?")[0], data=form), 303)
            consent_page = browser.get(consent_url)
            query = parse_qs(urlsplit(consent_url).query)
            decision = {
                "csrf": self._csrf(consent_page), "interactId": query["interactId"][0],
                "nonce": query["nonce"][0], "decision": "approve",
            }  # fmt: skip
            finish_url = self._location(browser.post(consent_url.split("?")[0], data=decision), 303)
            back = self._location(browser.get(finish_url), 302)
        return parse_qs(urlsplit(back).query)["interact_ref"][0]

    @staticmethod
    def _location(response: httpx.Response, status: int) -> str:
        if response.status_code != status:
            raise RuntimeError(f"consent flow: {response.request.url} -> {response.status_code}")
        return str(response.url.join(response.headers["location"]))

    @staticmethod
    def _csrf(page: httpx.Response) -> str:
        found = _CSRF.search(page.text)
        if page.status_code != 200 or found is None:
            raise RuntimeError(f"consent flow: no form at {page.request.url}")
        return found.group(1)

    # --- resources ---------------------------------------------------------------------------

    def incoming_payment(self, token: str, incoming_amount_minor: int | None = None) -> str:
        """A new incoming payment at the payee; its URL."""
        document: dict[str, Any] = {"walletAddress": self.payee.url}
        if incoming_amount_minor is not None:
            document["incomingAmount"] = self.payee.amount(incoming_amount_minor)
        url = f"{self.resource_server}/incoming-payments"
        created = self.expect(self.call("POST", url, document, token=token), 201)
        payment_url: str = created["id"]
        return payment_url

    def quote(self, token: str, receiver: str, debit_minor: int) -> str:
        """A new quote from the payer to `receiver`, fixed send; its URL."""
        document = {"walletAddress": self.payer.url, "receiver": receiver, "method": "ilp",
                    "debitAmount": self.payer.amount(debit_minor)}  # fmt: skip
        url = f"{self.resource_server}/quotes"
        created = self.expect(self.call("POST", url, document, token=token), 201)
        quote_url: str = created["id"]
        return quote_url


def resource_id(url: str) -> str:
    """The `{id}` path parameter of a resource URL."""
    return _last_segment(url)
