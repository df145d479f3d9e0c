"""Browser sessions, CSRF tokens and login attempt limits of the built-in identity provider.

Sessions live in the database (`idp_sessions`), so every worker process sees the same ones
and logging out ends a session everywhere at once:

- The cookie `opase_idp_session` carries SESSION_TOKEN_BYTES random bytes; the table stores
  only their SHA-256, so a copy of the database opens no session. The cookie is HttpOnly,
  SameSite=Lax, Secure when the public URL is https, and scoped to the pages' path.
- A browser gets an anonymous session (no owner) the first time it shows the login form: it
  carries the CSRF token of that form. Logging in ends it and starts a new one with a new
  cookie value (no session fixation: a value planted before the login is worth nothing after).
- Every session ends SESSION_LIFETIME_S after it starts, logged in or not; expired rows are
  deleted whenever a session is created.
- Each session has its own CSRF token (CSRF_TOKEN_BYTES random bytes) that every form
  carries; a POST is honoured only when the form's token equals the session's, compared in
  constant time. SameSite=Lax already keeps the cookie off cross-site POSTs; the token is the
  second lock.

Login attempts are counted in the database (`idp_login_failures`), per username and per
client address, in fixed windows of LOGIN_WINDOW_S that start at the first attempt:

- Every attempt is counted *before* the password is checked, and a successful one takes its
  count back. So a burst of parallel guesses cannot all slip through between a check and its
  count; and the argon2 work an attacker can cause is bounded too.
- A username with more than LOGIN_ATTEMPTS_PER_USERNAME_MAX failed attempts in its window is
  locked until the window ends (429, `Retry-After`), even for the right password. Unknown
  usernames are counted the same way, so the answers do not tell which usernames exist.
  Anyone can lock an owner out for a window this way: the price of stopping password
  guessing without CAPTCHAs; the window is short.
- One client address may make at most LOGIN_ATTEMPTS_PER_ADDRESS_MAX failed attempts per
  window, whatever the usernames (password spraying). opase does not trust X-Forwarded-For;
  behind a proxy every browser shares the proxy's address, hence the generous bound.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from opase.storage.tables import IdpLoginFailure, IdpSession, Owner, UtcDateTime, sa_table
from opase.storage.upsert import dialect_insert

SESSION_COOKIE: Final = "opase_idp_session"
SESSION_TOKEN_BYTES: Final = 32
SESSION_TOKEN_LENGTH_MAX: Final = 64
"""A longer cookie value is not one of ours: refused before hashing."""
CSRF_TOKEN_BYTES: Final = 32
SESSION_LIFETIME_S: Final = 30 * 60
LOGIN_WINDOW_S: Final = 15 * 60
LOGIN_ATTEMPTS_PER_USERNAME_MAX: Final = 5
LOGIN_ATTEMPTS_PER_ADDRESS_MAX: Final = 100


def _sha256(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class BrowserSession:
    id_sha256: str
    owner_id: uuid.UUID | None
    """None: anonymous (the login form's session)."""
    username: str | None
    csrf_token: str
    expires_at: datetime

    def csrf_matches(self, given: str | None) -> bool:
        """The form's token is this session's, compared in constant time."""
        if not given:
            return False
        return secrets.compare_digest(given.encode(), self.csrf_token.encode())


async def load_session(
    db: AsyncSession, cookie_value: str | None, now: datetime
) -> BrowserSession | None:
    """The live session of this cookie value, or None (no cookie, unknown, or expired)."""
    if not cookie_value or len(cookie_value) > SESSION_TOKEN_LENGTH_MAX:
        return None
    query = (
        sa.select(IdpSession, col(Owner.username))
        .outerjoin(Owner, col(Owner.id) == col(IdpSession.owner_id))
        .where(col(IdpSession.id) == _sha256(cookie_value), col(IdpSession.expires_at) > now)
    )
    row = (await db.execute(query)).one_or_none()
    if row is None:
        return None
    stored, username = row
    return BrowserSession(
        stored.id, stored.owner_id, username, stored.csrf_token, stored.expires_at
    )


async def create_session(
    db: AsyncSession, owner_id: uuid.UUID | None, now: datetime
) -> tuple[str, BrowserSession]:
    """A new session with a new cookie value and CSRF token; the value, for the cookie, and
    the session. Expired sessions of anyone are deleted on the way."""
    sessions = sa_table(IdpSession)
    await _purge(db, sessions.c.id, sessions.c.expires_at <= now)
    cookie_value = secrets.token_urlsafe(SESSION_TOKEN_BYTES)
    stored = IdpSession(
        id=_sha256(cookie_value),
        owner_id=owner_id,
        csrf_token=secrets.token_urlsafe(CSRF_TOKEN_BYTES),
        created_at=now,
        expires_at=now + timedelta(seconds=SESSION_LIFETIME_S),
    )
    db.add(stored)
    await db.flush()
    username = None
    if owner_id is not None:
        owner = await db.get(Owner, owner_id)
        username = None if owner is None else owner.username
    session = BrowserSession(stored.id, owner_id, username, stored.csrf_token, stored.expires_at)
    return cookie_value, session


async def end_session(db: AsyncSession, id_sha256: str) -> None:
    await db.execute(sa.delete(IdpSession).where(col(IdpSession.id) == id_sha256))


async def _purge(db: AsyncSession, key: sa.Column[Any], stale: sa.ColumnElement[bool]) -> None:
    """Delete the stale rows nobody else is writing: rows another transaction holds are
    skipped (PostgreSQL; SQLite writes one at a time), so a purge never waits for a login
    in progress, and two cannot deadlock. What is skipped goes next time."""
    table = key.table
    stale_keys = sa.select(key).where(stale).with_for_update(skip_locked=True)
    await db.execute(sa.delete(table).where(key.in_(stale_keys.scalar_subquery())))


async def purge_login_attempts(db: AsyncSession, now: datetime) -> None:
    """Forget the counts of windows that have passed (their own transaction: see _purge)."""
    failures = sa_table(IdpLoginFailure)
    window_over = failures.c.window_started_at <= now - timedelta(seconds=LOGIN_WINDOW_S)
    await _purge(db, failures.c.key_sha256, window_over)


def _attempt_keys(username: str, address: str) -> tuple[str, str]:
    return _sha256(f"username:{username}"), _sha256(f"address:{address}")


async def _count(db: AsyncSession, key_sha256: str, now: datetime) -> tuple[int, datetime]:
    """One more attempt under `key_sha256`, in one statement (two racing attempts both
    count); the count and the start of its window."""
    table = sa_table(IdpLoginFailure)
    window_over = table.c.window_started_at <= now - timedelta(seconds=LOGIN_WINDOW_S)
    insert = dialect_insert(db, table).values(
        key_sha256=key_sha256, failure_count=1, window_started_at=now
    )
    await db.execute(
        insert.on_conflict_do_update(
            index_elements=["key_sha256"],
            set_={
                "failure_count": sa.case((window_over, 1), else_=table.c.failure_count + 1),
                "window_started_at": sa.case(
                    (window_over, sa.literal(now, UtcDateTime())),
                    else_=table.c.window_started_at,
                ),
            },
        )
    )
    query = sa.select(table.c.failure_count, table.c.window_started_at).where(
        table.c.key_sha256 == key_sha256
    )
    count, started_at = (await db.execute(query)).one()
    return int(count), started_at


async def count_login_attempt(
    db: AsyncSession, username: str, address: str, now: datetime
) -> int | None:
    """Count this attempt against the username and the address before the password is
    checked. None: go on; otherwise the seconds until the attempt may be made again.
    The username's row first, then the address's, always in that order (no deadlock)."""
    window = timedelta(seconds=LOGIN_WINDOW_S)
    username_key, address_key = _attempt_keys(username, address)
    retry_after_s = None
    for key, count_max in (
        (username_key, LOGIN_ATTEMPTS_PER_USERNAME_MAX),
        (address_key, LOGIN_ATTEMPTS_PER_ADDRESS_MAX),
    ):
        count, started_at = await _count(db, key, now)
        if count > count_max:
            wait_s = max(1, -(-(started_at + window - now) // timedelta(seconds=1)))
            retry_after_s = max(retry_after_s or 0, wait_s)
    return retry_after_s


async def forget_login_attempt(db: AsyncSession, username: str, address: str) -> None:
    """A successful login: the username starts afresh, and the address's count takes this
    attempt back (it counts failures, not owners logging in behind one proxy)."""
    username_key, address_key = _attempt_keys(username, address)
    await db.execute(
        sa.delete(IdpLoginFailure).where(col(IdpLoginFailure.key_sha256) == username_key)
    )
    await db.execute(
        sa.update(IdpLoginFailure)
        .where(
            col(IdpLoginFailure.key_sha256) == address_key,
            col(IdpLoginFailure.failure_count) > 0,
        )
        .values(failure_count=col(IdpLoginFailure.failure_count) - 1)
    )
