"""The webhook endpoint: one URL and an optional secret, replaced as a whole."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Final
from urllib.parse import urlsplit

from sqlalchemy.ext.asyncio import AsyncSession

from opase.storage.tables import (
    WEBHOOK_ENDPOINT_ID,
    WEBHOOK_SECRET_LENGTH_MAX,
    WEBHOOK_URL_LENGTH_MAX,
    WebhookEndpoint,
    sa_table,
    utc_now,
)
from opase.storage.upsert import upsert

WEBHOOK_SECRET_LENGTH_MIN: Final = 16
"""An HMAC key shorter than this is guessable."""
_SECRET: Final = re.compile(r"[\x21-\x7e]+")
_BAD_PERCENT_ENCODING: Final = re.compile(r"%(?![0-9A-Fa-f]{2})")


@dataclass(frozen=True, slots=True)
class Webhook:
    """The endpoint as the admin API shows it: whether there is a secret, never the secret."""

    url: str
    secret_set: bool
    updated_at: datetime


def check_webhook_url(url: str) -> str:
    """An absolute http(s) URL with a host, without user-info or fragment."""
    parts = urlsplit(url)
    if len(url) > WEBHOOK_URL_LENGTH_MAX:
        raise ValueError(f"webhook URL longer than {WEBHOOK_URL_LENGTH_MAX} characters")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{url!r} is not an absolute http(s) URL")
    # Credentials belong in the secret, not in a URL that shows up in logs.
    if parts.username is not None or parts.password is not None or parts.fragment:
        raise ValueError(f"{url!r} must not have user-info or a fragment")
    # A stray `%` makes a string that is not a URI: clients would each repair it their way.
    if _BAD_PERCENT_ENCODING.search(url):
        raise ValueError(f"{url!r} has a `%` that is not a percent-encoding")
    return url


def check_webhook_secret(secret: str) -> str:
    if not WEBHOOK_SECRET_LENGTH_MIN <= len(secret) <= WEBHOOK_SECRET_LENGTH_MAX:
        raise ValueError(
            f"webhook secret must have {WEBHOOK_SECRET_LENGTH_MIN}..{WEBHOOK_SECRET_LENGTH_MAX}"
            " characters"
        )
    if not _SECRET.fullmatch(secret):
        raise ValueError("webhook secret must be printable ASCII without spaces")
    return secret


def _webhook(row: WebhookEndpoint) -> Webhook:
    return Webhook(row.url, row.secret is not None, row.updated_at)


async def get_webhook(session: AsyncSession) -> Webhook:
    """The endpoint; LookupError when none is set."""
    row = await session.get(WebhookEndpoint, WEBHOOK_ENDPOINT_ID, populate_existing=True)
    if row is None:
        raise LookupError("no webhook endpoint is set")
    return _webhook(row)


async def webhook_secret(session: AsyncSession) -> str | None:
    """The signing key, for the sender of events only: never shown through the API."""
    row = await session.get(WebhookEndpoint, WEBHOOK_ENDPOINT_ID, populate_existing=True)
    return None if row is None else row.secret


async def set_webhook(session: AsyncSession, url: str, secret: str | None) -> Webhook:
    """Replace the endpoint: its URL and its secret (None: no secret). Both are checked
    before anything is written."""
    check_webhook_url(url)
    if secret is not None:
        check_webhook_secret(secret)
    await upsert(
        session,
        sa_table(WebhookEndpoint),
        {"id": WEBHOOK_ENDPOINT_ID, "url": url, "secret": secret, "updated_at": utc_now()},
        conflict_columns=["id"],
        update_columns=["url", "secret", "updated_at"],
    )
    stored = await get_webhook(session)
    assert stored.url == url and stored.secret_set == (secret is not None)
    return stored
