"""The client app of the tests: a key published at its own wallet address of the ASE under
test (`tests.signing.register_client`), grants and tokens asked for at the authorization
server, the owner's consent given as the identity provider gives it (in the database), and
the resource server's incoming payments, quotes and outgoing payments used with those
tokens. Every request is signed with the app's key.

Its URLs come from the app's settings, so it talks as well to the in-process app over a
`CheckedClient` as to a server process over a plain `httpx.AsyncClient`."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import httpx
from starlette.applications import Starlette

from opase.authorization.grants import approve_grant
from tests.signing import ClientIdentity, GnapAuth

FINISH = {"method": "redirect", "uri": "https://client.example/finish", "nonce": "client-nonce-1"}
"""The finish redirect the client app's interactive grants ask for."""

Token = dict[str, Any] | str
"""An access token as the authorization server gave it (`access_token`), or its value."""


def incoming_access(actions: Sequence[str] = ("create", "read"), **extra: Any) -> dict[str, Any]:
    """An incoming-payment access item; `identifier=...` names a wallet address."""
    return {"type": "incoming-payment", "actions": list(actions), **extra}


def quote_access(actions: Sequence[str] = ("create", "read")) -> dict[str, Any]:
    """A quote access item: it names no wallet address, so it covers every one of the ASE."""
    return {"type": "quote", "actions": list(actions)}


def outgoing_access(
    identifier: str, actions: Sequence[str] = ("create", "read"), **limits: Any
) -> dict[str, Any]:
    """An outgoing-payment access item for the wallet address `identifier`, with `limits`."""
    item: dict[str, Any] = {
        "type": "outgoing-payment",
        "actions": list(actions),
        "identifier": identifier,
    }
    if limits:
        item["limits"] = limits
    return item


def grant_id_of(grant: dict[str, Any]) -> uuid.UUID:
    return uuid.UUID(grant["continue"]["uri"].rsplit("/", 1)[1])


def id_of(url: str) -> uuid.UUID:
    """The id at the end of a resource's URL."""
    return uuid.UUID(url.rsplit("/", 1)[1])


async def approve(app: Starlette, grant: dict[str, Any]) -> str:
    """The owner's consent, as the identity provider records it: the interact_ref."""
    async with app.state.services.sessions() as session:
        interact_ref = await approve_grant(session, grant_id_of(grant))
        await session.commit()
    return interact_ref


class ClientApp:
    """A client app acting for the owner of `wallet_address` (default: `/alice`): incoming
    payments are created, and quotes and outgoing payments sent, there."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        identity: ClientIdentity,
        app: Starlette,
        wallet_address: str | None = None,
    ) -> None:
        self.http = http
        self.identity = identity
        self.app = app
        """The ASE's app: its settings give the URLs; its database takes the consents."""
        settings = app.state.settings
        self.wallet_address = wallet_address or f"{settings.public_url}/alice"
        self.auth_url: str = settings.auth_server_url
        self.resource_url: str = settings.resource_server_url

    def auth(self, token: Token | None = None) -> GnapAuth:
        """Signs with the app's key; with `Authorization: GNAP <token>` when given one."""
        value = token if token is None or isinstance(token, str) else token["value"]
        return GnapAuth(self.identity, value)

    # --- the authorization server ---------------------------------------------------------

    def grant_request(self, *access: dict[str, Any], **extra: Any) -> dict[str, Any]:
        """A grant request of this client (by its wallet address) for `access` (default:
        incoming payments, create and read)."""
        return {
            "access_token": {"access": list(access) or [incoming_access()]},
            "client": {"walletAddress": self.identity.wallet_address_url},
            **extra,
        }

    async def ask(self, body: dict[str, Any]) -> httpx.Response:
        """POST `body` to the grant endpoint, signed."""
        return await self.http.post(self.auth_url, json=body, auth=self.auth())

    async def grant(self, *access: dict[str, Any], **extra: Any) -> dict[str, Any]:
        """The authorization server's 200 answer to `grant_request(*access, **extra)`."""
        response = await self.ask(self.grant_request(*access, **extra))
        assert response.status_code == 200, response.text
        return dict(response.json())

    async def continue_(
        self, grant: dict[str, Any], interact_ref: str | None = None, *, token: str | None = None
    ) -> httpx.Response:
        body = None if interact_ref is None else {"interact_ref": interact_ref}
        value = token or grant["continue"]["access_token"]["value"]
        return await self.http.post(grant["continue"]["uri"], json=body, auth=self.auth(value))

    async def cancel(self, grant: dict[str, Any]) -> httpx.Response:
        value = grant["continue"]["access_token"]["value"]
        return await self.http.delete(grant["continue"]["uri"], auth=self.auth(value))

    async def rotate(self, token: dict[str, Any], value: str | None = None) -> httpx.Response:
        return await self.http.post(token["manage"], auth=self.auth(value or token["value"]))

    async def revoke(self, token: dict[str, Any]) -> httpx.Response:
        return await self.http.delete(token["manage"], auth=self.auth(token))

    async def token(self, *access: dict[str, Any]) -> dict[str, Any]:
        """A non-interactive grant's access token."""
        token: dict[str, Any] = (await self.grant(*access))["access_token"]
        return token

    async def interactive_grant(
        self, *access: dict[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """An interactive grant with a finish redirect, approved by the owner and continued
        with its interact_ref: the grant and its access token."""
        grant = await self.grant(*access, interact={"start": ["redirect"], "finish": FINISH})
        continued = await self.continue_(grant, await approve(self.app, grant))
        assert continued.status_code == 200, continued.text
        token: dict[str, Any] = continued.json()["access_token"]
        return grant, token

    async def interactive_token(self, *access: dict[str, Any]) -> dict[str, Any]:
        return (await self.interactive_grant(*access))[1]

    async def outgoing_token(self, **limits: Any) -> dict[str, Any]:
        """An approved token to create, read and list outgoing payments of the app's wallet
        address, within `limits`."""
        access = outgoing_access(self.wallet_address, ["create", "read", "list"], **limits)
        return await self.interactive_token(access)

    async def use(self, token: Token) -> int:
        """What the resource server answers this token: AUTHENTICATED (`tests.world`) or 401."""
        probe = f"{self.resource_url}/outgoing-payments/abc"
        return (await self.http.get(probe, auth=self.auth(token))).status_code

    # --- the resource server --------------------------------------------------------------

    async def get(self, url: str, token: Token) -> httpx.Response:
        return await self.http.get(url, auth=self.auth(token))

    async def create_incoming_payment(self, token: Token, **body: Any) -> httpx.Response:
        """POST an incoming payment (at the app's wallet address unless `walletAddress=`)."""
        document = {"walletAddress": self.wallet_address, **body}
        url = f"{self.resource_url}/incoming-payments"
        return await self.http.post(url, json=document, auth=self.auth(token))

    async def incoming_payment(self, token: Token, **body: Any) -> dict[str, Any]:
        """The 201 answer of `create_incoming_payment`: the payment."""
        response = await self.create_incoming_payment(token, **body)
        assert response.status_code == 201, response.text
        payment: dict[str, Any] = response.json()
        return payment

    async def receiver(self, wallet_address: str | None = None, **body: Any) -> str:
        """The URL of a new incoming payment at `wallet_address` (default: the app's), made
        with a token of its own."""
        wallet_address = wallet_address or self.wallet_address
        token = await self.token(incoming_access(["create"], identifier=wallet_address))
        payment = await self.incoming_payment(token, walletAddress=wallet_address, **body)
        url: str = payment["id"]
        return url

    async def list_incoming_payments(self, token: Token, query: str = "") -> httpx.Response:
        url = f"{self.resource_url}/incoming-payments?wallet-address={self.wallet_address}"
        return await self.http.get(url + query, auth=self.auth(token))

    async def complete(self, url: str, token: Token) -> httpx.Response:
        return await self.http.post(f"{url}/complete", auth=self.auth(token))

    async def create_quote(self, token: Token, receiver: str, **body: Any) -> httpx.Response:
        """POST a quote from the app's wallet address to `receiver` over ILP."""
        document = {"walletAddress": self.wallet_address, "receiver": receiver, "method": "ilp"}
        url = f"{self.resource_url}/quotes"
        return await self.http.post(url, json=document | body, auth=self.auth(token))

    async def quote(self, token: Token, receiver: str, **body: Any) -> dict[str, Any]:
        """The 201 answer of `create_quote`: the quote."""
        response = await self.create_quote(token, receiver, **body)
        assert response.status_code == 201, response.text
        quote: dict[str, Any] = response.json()
        return quote

    async def pay(self, token: Token, **body: Any) -> httpx.Response:
        """POST an outgoing payment from the app's wallet address."""
        document = {"walletAddress": self.wallet_address, **body}
        url = f"{self.resource_url}/outgoing-payments"
        return await self.http.post(url, json=document, auth=self.auth(token))

    async def paid(self, token: Token, **body: Any) -> dict[str, Any]:
        """The 201 answer of `pay`: the outgoing payment."""
        response = await self.pay(token, **body)
        assert response.status_code == 201, response.text
        payment: dict[str, Any] = response.json()
        return payment

    async def list_outgoing_payments(self, token: Token, **params: str) -> httpx.Response:
        url = f"{self.resource_url}/outgoing-payments"
        params = {"wallet-address": self.wallet_address, **params}
        return await self.http.get(url, params=params, auth=self.auth(token))

    async def spent(self, token: Token) -> httpx.Response:
        """GET /outgoing-payment-grant: what the token's grant has spent."""
        url = f"{self.resource_url}/outgoing-payment-grant"
        return await self.http.get(url, auth=self.auth(token))
