"""The owner's side of an interactive grant: start the interaction, decide, finish it.

    client sends the owner to interact.redirect = {auth}/interact/{id}/{nonce}
      -> start: the grant is pending and not expired; this browser is remembered (cookie);
         the owner goes on to the identity provider (built in, or the ASE's own)
      -> the identity provider shows `grant_details` and calls `decide` (approve or deny)
      -> the owner's browser comes back to {auth}/interact/{id}/{nonce}/finish
      -> finish: only the browser that started; once; redirect to the client's finish URI
         with `hash` and `interact_ref` (approved) or the GNAP error (denied), or a plain
         page when the client polls instead

Every step finds the grant by interaction id and checks the nonce in constant time; every
refusal leaves the grant as it was.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlencode, urlsplit, urlunsplit

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from opase.authorization.grants import approve_grant, deny_grant, finish_hash
from opase.errors import InvalidInteraction, RequestDenied, UnknownInteraction
from opase.settings import Settings
from opase.storage.tables import Grant, utc_now

SESSION_BYTES: Final = 24
DENIED_RESULT: Final = "grant_rejected"
"""What the reference implementation puts in `result=` when the owner denies; clients built
against it look for this value."""
DENIED_ERROR: Final = "user_denied"


def _sha256(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


async def find_interaction(session: AsyncSession, interact_id: str, nonce: str) -> Grant:
    """The grant of interaction `interact_id` whose nonce is `nonce`, or UnknownInteraction
    (the same answer for a wrong id and a wrong nonce)."""
    try:
        parsed_id = uuid.UUID(interact_id)
    except ValueError:
        raise UnknownInteraction("no interaction at this address") from None
    grant = (
        await session.execute(
            sa.select(Grant)
            .where(col(Grant.interact_id) == parsed_id)
            .execution_options(populate_existing=True)
        )
    ).scalar_one_or_none()
    if grant is None or grant.interact_nonce is None:
        raise UnknownInteraction("no interaction at this address")
    if not secrets.compare_digest(nonce.encode(), grant.interact_nonce.encode()):
        raise UnknownInteraction("no interaction at this address")
    return grant


def _check_open(grant: Grant) -> None:
    if grant.state != "pending":
        raise InvalidInteraction(f"this interaction is over (the grant is {grant.state})")
    expires_at = grant.interaction_expires_at
    if expires_at is None or expires_at <= utc_now():
        raise InvalidInteraction("this interaction has expired; ask the app to start again")


@dataclass(frozen=True, slots=True)
class Started:
    session_token: str
    """For the browser's cookie; the grant stores its hash."""
    consent_url: str


def consent_url(settings: Settings, grant: Grant) -> str:
    """Where the owner decides: the ASE's identity provider, or the built-in one."""
    assert grant.interact_id is not None and grant.interact_nonce is not None
    base = settings.idp_consent_url or f"{settings.public_url}/idp/consent"
    query: dict[str, str] = {"interactId": str(grant.interact_id), "nonce": grant.interact_nonce}
    if grant.client_wallet_address is not None:
        query["clientUri"] = grant.client_wallet_address
    parts = urlsplit(base)
    joined = f"{parts.query}&{urlencode(query)}" if parts.query else urlencode(query)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, joined, ""))


async def start_interaction(
    session: AsyncSession, settings: Settings, interact_id: str, nonce: str
) -> Started:
    """GET {auth}/interact/{id}/{nonce}: remember this browser, send the owner to consent.
    Starting again from another browser moves the interaction to that browser."""
    grant = await find_interaction(session, interact_id, nonce)
    _check_open(grant)
    token = secrets.token_urlsafe(SESSION_BYTES)
    result = await session.execute(
        sa.update(Grant)
        .where(col(Grant.id) == grant.id, col(Grant.state) == "pending")
        .values(interaction_session_sha256=_sha256(token), updated_at=utc_now())
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise InvalidInteraction("this interaction was decided a moment ago")
    return Started(token, consent_url(settings, grant))


def grant_details(grant: Grant) -> dict[str, Any]:
    """What the identity provider shows the owner: exactly what the grant will hold."""
    details: dict[str, Any] = {
        "grantId": str(grant.id),
        "state": grant.state,
        "access": grant.access,
        "client": (
            {"walletAddress": grant.client_wallet_address}
            if grant.client_wallet_address is not None
            else {"jwk": grant.client_jwk}
        ),
    }
    if grant.subject is not None:
        details["subject"] = grant.subject
    if grant.interaction_expires_at is not None:
        details["interactionExpiresAt"] = grant.interaction_expires_at.isoformat()
    return details


async def decide(session: AsyncSession, interact_id: str, nonce: str, *, approve: bool) -> Grant:
    """The owner's decision, from the identity provider. Once: a decided, cancelled or
    expired interaction refuses."""
    grant = await find_interaction(session, interact_id, nonce)
    _check_open(grant)
    try:
        if approve:
            await approve_grant(session, grant.id)
        else:
            await deny_grant(session, grant.id)
    except RequestDenied as exc:  # lost a race with another decision or a cancellation
        raise InvalidInteraction(exc.description) from None
    return grant


@dataclass(frozen=True, slots=True)
class Finished:
    approved: bool
    redirect_url: str | None
    """The client's finish URI with the result; None when the client polls instead."""


def finish_url(settings: Settings, grant: Grant) -> str:
    """Where the identity provider sends the owner's browser back to."""
    assert grant.interact_id is not None and grant.interact_nonce is not None
    return f"{settings.auth_server_url}/interact/{grant.interact_id}/{grant.interact_nonce}/finish"


def _with_query(uri: str, values: dict[str, str]) -> str:
    parts = urlsplit(uri)
    query = f"{parts.query}&{urlencode(values)}" if parts.query else urlencode(values)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


async def finish_interaction(
    session: AsyncSession, settings: Settings, interact_id: str, nonce: str, session_token: str
) -> Finished:
    """GET {auth}/interact/{id}/{nonce}/finish: once, in the browser that started. The
    redirect goes only to the finish URI the client registered in its grant request."""
    grant = await find_interaction(session, interact_id, nonce)
    stored = grant.interaction_session_sha256
    if stored is None or not secrets.compare_digest(_sha256(session_token), stored):
        raise InvalidInteraction("this browser did not start this interaction, or it finished")
    if grant.state not in ("approved", "denied"):
        raise InvalidInteraction("the owner has not decided yet")
    # Forget the browser: finishing twice (a replayed or bookmarked URL) is refused.
    result = await session.execute(
        sa.update(Grant)
        .where(col(Grant.id) == grant.id, col(Grant.interaction_session_sha256) == stored)
        .values(interaction_session_sha256=None, updated_at=utc_now())
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise InvalidInteraction("this interaction finished a moment ago")
    approved = grant.state == "approved"
    if grant.finish_uri is None:
        return Finished(approved, None)
    assert grant.finish_nonce is not None and grant.interact_nonce is not None
    if not approved:
        values = {"result": DENIED_RESULT, "error": DENIED_ERROR}
        return Finished(False, _with_query(grant.finish_uri, values))
    assert grant.interact_ref is not None
    hash_value = finish_hash(
        settings,
        client_nonce=grant.finish_nonce,
        server_nonce=grant.interact_nonce,
        interact_ref=grant.interact_ref,
    )
    values = {"hash": hash_value, "interact_ref": grant.interact_ref}
    return Finished(True, _with_query(grant.finish_uri, values))
