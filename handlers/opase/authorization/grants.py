"""Grants: the request, its interaction, continuation, cancellation, and its access tokens.

    request ──(no interaction needed)──────────────────────────────> finalized (token issued)
    request ──> pending ──(owner approves)──> approved ──(continue)──> finalized
                pending ──(owner denies, or interaction expires)──> denied
    approved | finalized ──(DELETE /continue)──> revoked; every token of the grant with it

Each transition is one conditional UPDATE (`WHERE state = <expected>`): two racing
continuations cannot both issue a token, and a cancelled grant cannot be approved after.
Tokens are random (`secrets`), opaque, and stored as SHA-256; the `manage` URL names the
token's row id, never its value.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from opase import base64url
from opase.amounts import AMOUNT_MINOR_MAX
from opase.authorization.intervals import parse_repeating_interval
from opase.authorization.spending import SpendingLimits, create_spending
from opase.errors import (
    InvalidClient,
    InvalidRequest,
    NotFound,
    OpaseError,
    RequestDenied,
    TooFast,
    UnknownContinuation,
    UnknownGrant,
    UnknownToken,
)
from opase.security.access_tokens import token_sha256
from opase.security.bindings import ClientBinding
from opase.settings import Settings
from opase.storage.tables import AccessToken, Grant, utc_now
from opase.wallets.directory import find_wallet_address_by_url

TOKEN_BYTES: Final = 24
"""192 bits of randomness per token: unguessable, and short enough for a header."""
NONCE_BYTES: Final = 16
LIST_ACTIONS_NEEDING_CONSENT: Final = frozenset({"list-all"})


@dataclass(frozen=True, slots=True)
class GrantUrls:
    """Where the client continues a grant and manages its tokens."""

    auth_server_url: str

    def continue_uri(self, grant_id: uuid.UUID) -> str:
        return f"{self.auth_server_url}/continue/{grant_id}"

    def manage_uri(self, token_id: uuid.UUID) -> str:
        return f"{self.auth_server_url}/token/{token_id}"

    def interact_redirect(self, interact_id: uuid.UUID, nonce: str) -> str:
        return f"{self.auth_server_url}/interact/{interact_id}/{nonce}"


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


# --- what a grant request asks for -----------------------------------------------------------


def normalized_access(items: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The access items as the grant will hold them: actions without repeats, in order."""
    normalized = []
    for item in items:
        entry: dict[str, Any] = {
            "type": item["type"],
            "actions": list(dict.fromkeys(item["actions"])),
        }
        if "identifier" in item:
            entry["identifier"] = item["identifier"]
        if "limits" in item:
            entry["limits"] = dict(item["limits"])
        normalized.append(entry)
    return normalized


def needs_interaction(
    settings: Settings, access: Sequence[Mapping[str, Any]], subject: Any
) -> bool:
    """The owner must consent to moving money, to revealing every client's payments, and
    to proving who owns a wallet address; the rest is the ASE's choice (settings)."""
    if subject is not None:
        return True
    for item in access:
        kind, actions = item["type"], set(item["actions"])
        if kind == "outgoing-payment":
            return True
        if settings.list_all_interaction and actions & LIST_ACTIONS_NEEDING_CONSENT:
            return True
        if kind == "incoming-payment" and settings.incoming_payment_interaction:
            return True
        if kind == "quote" and settings.quote_interaction:
            return True
    return False


async def _local_wallet_address(
    session: AsyncSession, settings: Settings, url: str, what: str
) -> Any:
    record = await find_wallet_address_by_url(session, settings.public_url, url)
    if record is None:
        raise InvalidRequest(f"{what} {url} is not a wallet address of this ASE")
    return record


def _amount_minor(amount: Mapping[str, Any], where: str) -> int:
    value_minor = int(amount["value"])  # the schema admits only uint64 strings
    if value_minor > AMOUNT_MINOR_MAX:
        raise InvalidRequest(f"{where} exceeds {AMOUNT_MINOR_MAX}")
    return value_minor


async def spending_limits(
    session: AsyncSession, settings: Settings, access: Sequence[Mapping[str, Any]]
) -> SpendingLimits | None:
    """Check every identifier and the outgoing-payment limits; what the grant may spend."""
    outgoing = [item for item in access if item["type"] == "outgoing-payment"]
    if len(outgoing) > 1:
        raise InvalidRequest("a grant holds at most one outgoing-payment access item")
    wallets = {}
    for item in access:
        identifier = item.get("identifier")
        if identifier is not None and identifier not in wallets:
            wallets[identifier] = await _local_wallet_address(
                session, settings, identifier, "access identifier"
            )
    if not outgoing:
        return None
    limits = outgoing[0].get("limits") or {}
    if "debitAmount" in limits and "receiveAmount" in limits:
        raise InvalidRequest("limits take debitAmount or receiveAmount, not both")
    debit_limit_minor = receive_limit_minor = None
    if "debitAmount" in limits:
        debit = limits["debitAmount"]
        wallet = wallets[outgoing[0]["identifier"]]
        if (debit["assetCode"], debit["assetScale"]) != (wallet.asset_code, wallet.asset_scale):
            raise InvalidRequest(
                f"limits.debitAmount is in {debit['assetCode']} (scale {debit['assetScale']}); "
                f"the wallet address holds {wallet.asset_code} (scale {wallet.asset_scale})"
            )
        debit_limit_minor = _amount_minor(debit, "limits.debitAmount.value")
    if "receiveAmount" in limits:
        receive_limit_minor = _amount_minor(limits["receiveAmount"], "limits.receiveAmount.value")
    interval = limits.get("interval")
    if interval is not None:
        try:
            parse_repeating_interval(interval)
        except ValueError as exc:
            raise InvalidRequest(f"limits.interval: {exc}") from None
    return SpendingLimits(debit_limit_minor, receive_limit_minor, interval)


# --- responses ------------------------------------------------------------------------------


def _continue_body(
    urls: GrantUrls, grant: Grant, continue_token: str, *, wait_s: int | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "access_token": {"value": continue_token},
        "uri": urls.continue_uri(grant.id),
    }
    if wait_s is not None:
        body["wait"] = wait_s
    return body


async def _issue_token(
    session: AsyncSession, settings: Settings, urls: GrantUrls, grant: Grant
) -> dict[str, Any]:
    value = new_token()
    lifetime_s = settings.access_token_lifetime_s
    token = AccessToken(
        grant_id=grant.id,
        value_sha256=token_sha256(value),
        expires_at=utc_now() + timedelta(seconds=lifetime_s),
    )
    session.add(token)
    await session.flush()
    return {
        "value": value,
        "manage": urls.manage_uri(token.id),
        "expires_in": lifetime_s,
        "access": grant.access,
    }


def _granted_body(
    grant: Grant, token: dict[str, Any] | None, continued: dict[str, Any]
) -> dict[str, Any]:
    body: dict[str, Any] = {"continue": continued}
    if token is not None:
        body["access_token"] = token
    if grant.subject is not None:
        body["subject"] = grant.subject
    return body


# --- operations -----------------------------------------------------------------------------


async def request_grant(
    session: AsyncSession, settings: Settings, client: ClientBinding, document: Mapping[str, Any]
) -> dict[str, Any]:
    """POST / : a non-interactive grant is finalized with its token at once; an interactive
    one waits, pending, for the owner."""
    assert client.key_id is not None and client.key_thumbprint is not None
    access = normalized_access(document.get("access_token", {}).get("access", []))
    subject = document.get("subject")
    if not access and subject is None:
        raise InvalidRequest("the grant asks for nothing: access_token.access is empty")
    limits = await spending_limits(session, settings, access)
    if subject is not None:
        for sub_id in subject["sub_ids"]:
            await _local_wallet_address(session, settings, sub_id["id"], "subject")
    interactive = needs_interaction(settings, access, subject)
    interact = document.get("interact")
    if interactive and client.jwk is not None:
        raise InvalidRequest("directed identity (client.jwk) is for non-interactive grants only")
    if interactive and (interact is None or "redirect" not in interact.get("start", [])):
        raise InvalidRequest('this grant needs the owner\'s consent: interact.start ["redirect"]')
    urls = GrantUrls(settings.auth_server_url)
    continue_token = new_token()
    grant = Grant(
        state="pending" if interactive else "finalized",
        client_wallet_address=client.wallet_address,
        client_jwk=dict(client.jwk) if client.jwk is not None else None,
        client_key_id=client.key_id,
        client_key_thumbprint=client.key_thumbprint,
        continue_token_sha256=token_sha256(continue_token),
        access=access,
        subject=subject,
        finalization_reason=None if interactive else "issued",
    )
    if interactive:
        assert interact is not None
        finish = interact.get("finish")
        grant.interact_id = uuid.uuid4()
        grant.interact_nonce = secrets.token_hex(NONCE_BYTES)
        grant.interaction_expires_at = utc_now() + timedelta(
            seconds=settings.interaction_lifetime_s
        )
        if finish is not None:
            grant.finish_uri, grant.finish_nonce = finish["uri"], finish["nonce"]
        else:
            grant.wait_s = settings.grant_wait_s
    session.add(grant)
    await session.flush()
    if limits is not None:
        await create_spending(session, grant.id, limits)
    if interactive:
        assert grant.interact_id is not None and grant.interact_nonce is not None
        return {
            "interact": {
                "redirect": urls.interact_redirect(grant.interact_id, grant.interact_nonce),
                "finish": grant.interact_nonce,
            },
            "continue": _continue_body(urls, grant, continue_token, wait_s=grant.wait_s),
        }
    token = await _issue_token(session, settings, urls, grant) if access else None
    return _granted_body(grant, token, _continue_body(urls, grant, continue_token))


def _grant_id(
    path_id: str, client: ClientBinding, unknown: type[NotFound] = UnknownContinuation
) -> uuid.UUID:
    try:
        grant_id = uuid.UUID(path_id)
    except ValueError:
        grant_id = None
    if grant_id is None or grant_id != client.grant_id:
        raise unknown("this continue token is not for the grant at this URL")
    return grant_id


async def _move(
    session: AsyncSession,
    grant_id: uuid.UUID,
    *,
    from_states: tuple[str, ...],
    to_state: str,
    reason: str | None = None,
    **values: Any,
) -> bool:
    """The one way a grant changes state: only from where it is expected to be."""
    result = await session.execute(
        sa.update(Grant)
        .where(col(Grant.id) == grant_id, col(Grant.state).in_(from_states))
        .values(state=to_state, finalization_reason=reason, updated_at=utc_now(), **values)
    )
    moved: bool = result.rowcount == 1  # type: ignore[attr-defined]
    return moved


async def _load(session: AsyncSession, grant_id: uuid.UUID) -> Grant:
    grant = await session.get(Grant, grant_id, populate_existing=True)
    assert grant is not None, "the authenticator found this grant a moment ago"
    return grant


async def continue_grant(
    session: AsyncSession,
    settings: Settings,
    client: ClientBinding,
    path_id: str,
    continue_token: str,
    interact_ref: str | None,
) -> dict[str, Any]:
    """POST /continue/{id}: with `interact_ref` after the finish redirect, without it to
    poll. An approved grant gets its access token, once."""
    grant_id = _grant_id(path_id, client)
    grant = await _load(session, grant_id)
    urls = GrantUrls(settings.auth_server_url)
    now = utc_now()
    if interact_ref is None:
        if grant.finish_uri is not None:
            raise RequestDenied("this grant finishes by redirect: continue with its interact_ref")
        await _poll(session, grant, now)
    elif grant.interact_ref is None or not secrets.compare_digest(
        interact_ref.encode(), grant.interact_ref.encode()
    ):
        raise RequestDenied("interact_ref does not match this grant's interaction")
    if grant.state == "pending":
        if grant.interaction_expires_at is not None and grant.interaction_expires_at <= now:
            await _move(session, grant.id, from_states=("pending",), to_state="denied",
                        reason="expired")  # fmt: skip
            await session.commit()  # the refusal below must not undo the transition
            raise RequestDenied("the interaction expired before the owner decided")
        return {"continue": _continue_body(urls, grant, continue_token, wait_s=grant.wait_s)}
    if grant.state == "denied":
        raise RequestDenied("the owner denied this grant")
    if grant.state != "approved":
        raise RequestDenied(f"nothing to continue: the grant is {grant.state}")
    if not await _move(session, grant.id, from_states=("approved",), to_state="finalized",
                       reason="issued"):  # fmt: skip
        raise RequestDenied("this grant's token was issued to another continuation")
    token = await _issue_token(session, settings, urls, grant) if grant.access else None
    return _granted_body(grant, token, _continue_body(urls, grant, continue_token))


async def _poll(session: AsyncSession, grant: Grant, now: datetime) -> None:
    wait_s = grant.wait_s or 0
    last = grant.continued_at or grant.created_at
    if now < last + timedelta(seconds=wait_s):
        raise TooFast(f"poll this grant no sooner than {wait_s} s after the last time")
    # Conditional on the value read: of two racing polls, one is too fast.
    result = await session.execute(
        sa.update(Grant)
        .where(
            col(Grant.id) == grant.id,
            col(Grant.continued_at).is_(None)
            if grant.continued_at is None
            else col(Grant.continued_at) == grant.continued_at,
        )
        .values(continued_at=now)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise TooFast(f"poll this grant no sooner than {wait_s} s after the last time")


async def cancel_grant(session: AsyncSession, client: ClientBinding, path_id: str) -> None:
    """DELETE /continue/{id}: the grant ends, and every token it issued stops working."""
    # The spec's 404 here is invalid_request, not invalid_continuation as for POST.
    grant_id = _grant_id(path_id, client, UnknownGrant)
    await _move(session, grant_id, from_states=("pending", "approved", "finalized", "denied"),
                to_state="revoked", reason="revoked")  # fmt: skip
    await session.execute(
        sa.update(AccessToken)
        .where(col(AccessToken.grant_id) == grant_id, col(AccessToken.revoked_at).is_(None))
        .values(revoked_at=utc_now())
    )


def _token_id(
    path_id: str, client: ClientBinding, unknown: type[OpaseError] = UnknownToken
) -> uuid.UUID:
    try:
        token_id = uuid.UUID(path_id)
    except ValueError:
        token_id = None
    if token_id is None or token_id != client.access_token_id:
        raise unknown("this access token is not the one managed at this URL")
    return token_id


async def _revoke(session: AsyncSession, token_id: uuid.UUID) -> bool:
    result = await session.execute(
        sa.update(AccessToken)
        .where(col(AccessToken.id) == token_id, col(AccessToken.revoked_at).is_(None))
        .values(revoked_at=utc_now())
    )
    revoked: bool = result.rowcount == 1  # type: ignore[attr-defined]
    return revoked


async def rotate_token(
    session: AsyncSession, settings: Settings, client: ClientBinding, path_id: str
) -> dict[str, Any]:
    """POST /token/{id}: a new value under a new manage URL; the old one stops at once."""
    token_id = _token_id(path_id, client)
    if not await _revoke(session, token_id):
        raise UnknownToken("this access token was revoked or rotated already")
    assert client.grant_id is not None
    grant = await _load(session, client.grant_id)
    token = await _issue_token(session, settings, GrantUrls(settings.auth_server_url), grant)
    return {"access_token": token}


async def revoke_token(session: AsyncSession, client: ClientBinding, path_id: str) -> None:
    """DELETE /token/{id}. The spec gives this operation no 404: a token presented at
    another token's manage URL is not a client the URL knows (401)."""
    await _revoke(session, _token_id(path_id, client, InvalidClient))


# --- the owner's decision (the identity provider calls these) --------------------------------


async def approve_grant(session: AsyncSession, grant_id: uuid.UUID) -> str:
    """The owner consented: the grant can be continued with the returned interact_ref."""
    interact_ref = secrets.token_hex(NONCE_BYTES)
    now = utc_now()
    result = await session.execute(
        sa.update(Grant)
        .where(
            col(Grant.id) == grant_id,
            col(Grant.state) == "pending",
            col(Grant.interaction_expires_at) > now,
        )
        .values(state="approved", interact_ref=interact_ref, updated_at=now)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise RequestDenied("the grant is not waiting for consent (decided, cancelled or expired)")
    return interact_ref


async def deny_grant(session: AsyncSession, grant_id: uuid.UUID) -> None:
    if not await _move(session, grant_id, from_states=("pending",), to_state="denied",
                       reason="rejected"):  # fmt: skip
        raise RequestDenied("the grant is not waiting for consent (decided, cancelled or expired)")


def finish_hash(
    settings: Settings, *, client_nonce: str, server_nonce: str, interact_ref: str
) -> str:
    """RFC 9635 4.2.3: SHA-256 over the two nonces, the reference and the grant endpoint
    URL (the `authServer` we advertise), one per line."""
    material = "\n".join(
        (client_nonce, server_nonce, interact_ref, settings.auth_server_url)
    ).encode()
    digest = hashlib.sha256(material).digest()
    if settings.finish_hash_encoding == "base64url":
        return base64url.encode(digest)
    return base64.b64encode(digest).decode()
