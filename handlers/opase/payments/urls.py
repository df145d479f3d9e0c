"""This ASE's resource URLs: built in one place, parsed in one place.

An incoming payment, a quote and an outgoing payment are each `<resource_server_url>/<kind>/
<uuid>`. Parsing answers the one question a payment needs of a URL a client names: is it a
resource of this ASE (and which), or somewhere else (a receiver at another ASE)?
"""

from __future__ import annotations

import uuid
from typing import Final, Literal

from opase.settings import Settings

Kind = Literal["incoming-payments", "quotes", "outgoing-payments"]
INCOMING_PAYMENTS: Final[Kind] = "incoming-payments"
QUOTES: Final[Kind] = "quotes"
OUTGOING_PAYMENTS: Final[Kind] = "outgoing-payments"


def resource_url(settings: Settings, kind: Kind, resource_id: uuid.UUID) -> str:
    return f"{settings.resource_server_url}/{kind}/{resource_id}"


def wallet_address_url(settings: Settings, path: str) -> str:
    """The URL of this ASE's wallet address at `path` (`/alice`)."""
    return settings.public_url + path


def local_id(settings: Settings, kind: Kind, url: str) -> uuid.UUID | None:
    """The id of the resource of `kind` that `url` names at this ASE; None for any other URL
    (another kind, a malformed id, or another ASE)."""
    prefix = f"{settings.resource_server_url}/{kind}/"
    if not url.startswith(prefix):
        return None
    try:
        return uuid.UUID(url[len(prefix) :])
    except ValueError:
        return None


def is_this_ase(settings: Settings, url: str) -> bool:
    """Whether `url` lies under one of this ASE's base URLs (its resource server, or its
    wallet addresses): a URL that is not another ASE's, whether or not it names anything."""
    bases = (settings.resource_server_url + "/", settings.public_url + "/")
    return url.startswith(bases)
