"""Delivery of the webhook outbox to the ASE's endpoint.

A pass (`deliver_due`) claims a bounded batch of due events, sends them at once, and
records each outcome. The claim is one conditional UPDATE that counts the attempt and moves
`next_attempt_at` ahead by a lease, so two workers never send the same event at the same
time, and an event whose worker died is tried again when the lease runs out. Each event is
sent on its own: a failing one waits out its backoff while newer ones flow, and after
`webhook_attempts_max` sends it is dead (listed and re-driven through the admin API).

Receivers drop repeats by the event's `id`: a send whose answer was lost is sent again.
The body is `{id, type, data}` as canonical JSON (RFC 8785, JCS), and with a secret set the
`Rafiki-Signature` header signs it as Rafiki does: `t=<unix ms>, v1=<hex HMAC-SHA256 of
"<t>.<canonical body>">`, so receivers written for Rafiki verify opase's events unchanged.
Rafiki counts only 200 as success; opase counts any 2xx.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import math
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

import httpx
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from opase.settings import Settings
from opase.storage.tables import (
    WEBHOOK_ENDPOINT_ID,
    WEBHOOK_EVENT_ERROR_LENGTH_MAX,
    WebhookEndpoint,
    WebhookEvent,
    utc_now,
)

log = logging.getLogger("opase.webhooks")

SIGNATURE_HEADER: Final = "Rafiki-Signature"
SIGNATURE_VERSION: Final = 1
BACKOFF_STEPS_MAX: Final = 6
"""The wait after a failure grows with the attempts, up to this many times the base."""
LEASE_MARGIN_S: Final = 5.0
"""A claimed event is left alone for its send (bounded by `webhook_timeout_s`) plus this,
which covers writing the outcome; only a worker that died leaves it to the next."""


# --- canonical JSON and the signature ---------------------------------------------------


def _number(value: float) -> str:
    """An ECMAScript Number's string (ES2015 7.1.12.1), which JCS prescribes."""
    if not math.isfinite(value):
        raise ValueError(f"{value!r} is not a JSON number")
    if value == 0:
        return "0"
    sign = "-" if value < 0 else ""
    # repr gives the shortest digits that round-trip, as ECMAScript does; only the layout
    # of those digits differs.
    mantissa, _, exponent_text = repr(abs(value)).partition("e")
    whole, _, fraction = mantissa.partition(".")
    digits = (whole + fraction).lstrip("0")
    point = len(whole) + int(exponent_text or 0) - (len(whole + fraction) - len(digits))
    digits = digits.rstrip("0")
    count = len(digits)
    if count <= point <= 21:
        text = digits + "0" * (point - count)
    elif 0 < point <= 21:
        text = f"{digits[:point]}.{digits[point:]}"
    elif -6 < point <= 0:
        text = "0." + "0" * -point + digits
    else:
        exponent = point - 1
        mantissa = digits if count == 1 else f"{digits[0]}.{digits[1:]}"
        text = f"{mantissa}e{'+' if exponent >= 0 else '-'}{abs(exponent)}"
    return sign + text


def _canonical(value: Any) -> str:
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _number(value)
    if isinstance(value, str):
        # Python escapes exactly what JSON.stringify escapes, with the same short forms.
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list | tuple):
        return "[" + ",".join(_canonical(item) for item in value) + "]"
    if isinstance(value, dict):
        # JCS orders keys by their UTF-16 code units.
        keys = sorted(value, key=lambda key: key.encode("utf-16-be"))
        members = (f"{_canonical(key)}:{_canonical(value[key])}" for key in keys)
        return "{" + ",".join(members) + "}"
    raise TypeError(f"{type(value).__name__} is not JSON")


def canonical_json(value: Any) -> bytes:
    """RFC 8785 (JCS): the one serialisation of a JSON value both ends can recompute."""
    return _canonical(value).encode("utf-8")


def event_body(event_id: uuid.UUID, event_type: str, data: dict[str, Any]) -> bytes:
    """What is POSTed for an event, and what its signature covers."""
    return canonical_json({"id": str(event_id), "type": event_type, "data": data})


def signature_header(secret: str, body: bytes, timestamp_unix_ms: int) -> str:
    """The `Rafiki-Signature` value for a canonical body."""
    message = f"{timestamp_unix_ms}.".encode() + body
    digest = hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
    return f"t={timestamp_unix_ms}, v{SIGNATURE_VERSION}={digest}"


# --- one pass -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Claimed:
    id: uuid.UUID
    type: str
    data: dict[str, Any]
    attempts: int
    """The attempt this send is: the claim counted it."""


def backoff_s(settings: Settings, attempts: int) -> float:
    """The wait before the next send of an event that failed `attempts` times."""
    assert attempts >= 1
    return min(attempts, BACKOFF_STEPS_MAX) * settings.webhook_backoff_s


def _lease(settings: Settings) -> timedelta:
    return timedelta(seconds=settings.webhook_timeout_s + LEASE_MARGIN_S)


async def _bury_abandoned(session: AsyncSession, settings: Settings, now: datetime) -> None:
    """Dead-letter events whose last attempt never recorded an outcome (its worker died
    after the claim) or that have used up a lowered `webhook_attempts_max`."""
    await session.execute(
        sa.update(WebhookEvent)
        .where(
            col(WebhookEvent.status) == "pending",
            col(WebhookEvent.attempts) >= settings.webhook_attempts_max,
            col(WebhookEvent.next_attempt_at) <= now,
        )
        .values(
            status="dead",
            last_error=sa.func.coalesce(
                col(WebhookEvent.last_error), "no outcome was recorded for the last attempt"
            ),
        )
        .execution_options(synchronize_session=False)
    )


async def _claim(session: AsyncSession, settings: Settings, now: datetime) -> list[_Claimed]:
    due = (
        col(WebhookEvent.status) == "pending",
        col(WebhookEvent.next_attempt_at) <= now,
        col(WebhookEvent.attempts) < settings.webhook_attempts_max,
    )
    # Longest waiting first. On PostgreSQL the rows are locked until the commit, and rows
    # another worker is claiming are skipped; SQLite runs one writer at a time. Either way
    # the UPDATE re-checks `due`, so an event claimed meanwhile is not claimed again. Two
    # statements: PostgreSQL may run a LIMIT subquery inside an UPDATE more than once.
    candidates = (
        (
            await session.execute(
                sa.select(col(WebhookEvent.id))
                .where(*due)
                .order_by(col(WebhookEvent.next_attempt_at), col(WebhookEvent.id))
                .limit(settings.webhook_batch_count_max)
                .with_for_update(skip_locked=True)
            )
        )
        .scalars()
        .all()
    )
    if not candidates:
        return []
    rows = await session.execute(
        sa.update(WebhookEvent)
        .where(col(WebhookEvent.id).in_(candidates), *due)
        .values(attempts=col(WebhookEvent.attempts) + 1, next_attempt_at=now + _lease(settings))
        .returning(
            col(WebhookEvent.id),
            col(WebhookEvent.type),
            col(WebhookEvent.data),
            col(WebhookEvent.attempts),
        )
        .execution_options(synchronize_session=False)
    )
    claimed = [_Claimed(*row) for row in rows.all()]
    assert len(claimed) <= settings.webhook_batch_count_max
    return claimed


async def _send(
    http: httpx.AsyncClient, settings: Settings, url: str, secret: str | None, event: _Claimed
) -> str | None:
    """Send one event; None when the endpoint took it, else why not."""
    body = event_body(event.id, event.type, event.data)
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers[SIGNATURE_HEADER] = signature_header(secret, body, time.time_ns() // 1_000_000)
    try:
        # httpx times each phase; the outer bound caps the whole send, which the lease needs.
        async with asyncio.timeout(settings.webhook_timeout_s):
            # Streamed and never read: an endpoint's answer body is of no interest, and it
            # could be large.
            async with http.stream(
                "POST",
                url,
                content=body,
                headers=headers,
                timeout=settings.webhook_timeout_s,
                follow_redirects=False,
            ) as response:
                status = response.status_code
    except TimeoutError:
        return f"no answer within {settings.webhook_timeout_s} s"
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__}: {exc}"
    if not 200 <= status < 300:
        return f"answered HTTP {status}"
    return None


async def _record(
    session: AsyncSession,
    settings: Settings,
    event: _Claimed,
    error: str | None,
    now: datetime,
) -> None:
    values: dict[str, Any]
    if error is None:
        values = {"status": "delivered", "delivered_at": now, "last_error": None}
    elif event.attempts >= settings.webhook_attempts_max:
        values = {"status": "dead", "last_error": error[:WEBHOOK_EVENT_ERROR_LENGTH_MAX]}
    else:
        next_attempt_at = now + timedelta(seconds=backoff_s(settings, event.attempts))
        values = {
            "next_attempt_at": next_attempt_at,
            "last_error": error[:WEBHOOK_EVENT_ERROR_LENGTH_MAX],
        }
    # Only while this claim holds: a worker whose lease ran out records nothing over the
    # attempt that followed it.
    recorded = await session.execute(
        sa.update(WebhookEvent)
        .where(
            col(WebhookEvent.id) == event.id,
            col(WebhookEvent.status) == "pending",
            col(WebhookEvent.attempts) == event.attempts,
        )
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if recorded.rowcount != 1:  # type: ignore[attr-defined]
        log.warning("webhook event %s: the claim ran out before its outcome was recorded", event.id)
    elif error is not None:
        log.warning("webhook event %s, attempt %d: %s", event.id, event.attempts, error)


async def deliver_due(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    *,
    http: httpx.AsyncClient,
    now: datetime | None = None,
) -> int:
    """One pass: claim the due events (at most `webhook_batch_count_max`), send them at once,
    record each outcome. Returns how many were sent. Without an endpoint nothing is claimed,
    so events wait without using up attempts."""
    at = now or utc_now()
    async with sessions() as session:
        endpoint = await session.get(WebhookEndpoint, WEBHOOK_ENDPOINT_ID)
        if endpoint is None:
            return 0
        url, secret = endpoint.url, endpoint.secret
        await _bury_abandoned(session, settings, at)
        claimed = await _claim(session, settings, at)
        await session.commit()
    if not claimed:
        return 0
    errors = await asyncio.gather(*(_send(http, settings, url, secret, event) for event in claimed))
    finished_at = now or utc_now()
    async with sessions() as session:
        for event, error in zip(claimed, errors, strict=True):
            await _record(session, settings, event, error, finished_at)
        await session.commit()
    return len(claimed)


# --- the worker ---------------------------------------------------------------------------


async def deliver_forever(
    sessions: async_sessionmaker[AsyncSession], settings: Settings, stop: asyncio.Event
) -> None:
    """Deliver the outbox, pass after pass, until `stop` is set. A full batch is followed
    at once by the next pass; otherwise the worker sleeps `webhook_poll_s`. A failing pass
    (the database away, say) is logged and the next one tried after the same sleep: the
    worker outlives every error."""
    async with httpx.AsyncClient(timeout=settings.webhook_timeout_s) as http:
        while not stop.is_set():
            sent = 0
            try:
                sent = await deliver_due(sessions, settings, http=http)
            except Exception:
                log.exception("webhook delivery pass failed; trying again")
            if sent < settings.webhook_batch_count_max:
                try:
                    await asyncio.wait_for(stop.wait(), timeout=settings.webhook_poll_s)
                except TimeoutError:
                    pass
