"""Who the client is, for the consent page: the public name of its wallet address.

A wallet address of this ASE is read from the database; another is fetched with one bounded
GET (https, or loopback http where the settings allow it, as for client keys; a total time
limit, a size limit, no redirects, no proxy from the environment). Any failure shows as an
unknown name: the owner still sees the client's URL, and a client's broken server must never
break the consent page.
"""

from __future__ import annotations

import asyncio
import logging
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import httpx
import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from opase.bounded_read import read_ok_answer
from opase.settings import Settings
from opase.wallets.directory import find_active_wallet_address

log = logging.getLogger("opase.idp.pages")

PUBLIC_NAME_LENGTH_MAX: Final = 255
"""Longer names are cut: a name is a label, not a message."""
KEY_ONLY_NAME: Final = "an app that identifies itself by key only"


@dataclass(frozen=True, slots=True)
class ClientView:
    """The client as the consent page names it."""

    name: str | None
    """The public name of its wallet address; None when unknown."""
    url: str | None
    """Its wallet address; None for a client known by its key alone (directed identity)."""
    key_id: str | None = None


def clean_public_name(value: Any) -> str | None:
    """A displayable name: control and format characters dropped (they could reorder or
    hide text), whitespace collapsed, at most PUBLIC_NAME_LENGTH_MAX characters."""
    if not isinstance(value, str):
        return None
    kept = "".join(
        " " if char.isspace() else char
        for char in value
        if char.isspace() or not unicodedata.category(char).startswith("C")
    )
    cleaned = " ".join(kept.split())[:PUBLIC_NAME_LENGTH_MAX]
    return cleaned or None


async def describe_client(
    db: AsyncSession,
    settings: Settings,
    client: Mapping[str, Any],
    *,
    fetchable: Callable[[str], bool],
    transport: httpx.AsyncBaseTransport | None = None,
) -> ClientView:
    """The client of `grant_details(grant)["client"]`, with its public name if it has one."""
    url = client.get("walletAddress")
    if not isinstance(url, str):
        jwk = client.get("jwk")
        key_id = jwk.get("kid") if isinstance(jwk, Mapping) else None
        return ClientView(KEY_ONLY_NAME, None, key_id if isinstance(key_id, str) else None)
    if url.startswith(settings.public_url + "/"):
        record = await find_active_wallet_address(db, url[len(settings.public_url) :])
        return ClientView(None if record is None else clean_public_name(record.public_name), url)
    if not fetchable(url):
        return ClientView(None, url)
    return ClientView(await fetch_public_name(settings, url, transport=transport), url)


async def fetch_public_name(
    settings: Settings, url: str, *, transport: httpx.AsyncBaseTransport | None = None
) -> str | None:
    """`publicName` of the wallet address document at `url`, or None on any failure."""
    try:
        async with asyncio.timeout(settings.client_keys_fetch_timeout_s):
            return await _fetch_public_name(settings, url, transport)
    except Exception as exc:  # a display name is never worth a failed page
        log.info("client wallet address %s: no public name (%s)", url, exc)
        return None


async def _fetch_public_name(
    settings: Settings, url: str, transport: httpx.AsyncBaseTransport | None
) -> str | None:
    async with (
        httpx.AsyncClient(
            transport=transport,
            timeout=httpx.Timeout(settings.client_keys_fetch_timeout_s),
            follow_redirects=False,
            trust_env=False,  # where the document comes from is the client's claim
            headers={"Accept": "application/json"},
        ) as http,
        http.stream("GET", url) as response,
    ):
        body = await read_ok_answer(
            response, size_bytes_max=settings.client_keys_bytes_max, what="wallet address"
        )
    document = orjson.loads(body)
    return clean_public_name(document.get("publicName") if isinstance(document, dict) else None)
