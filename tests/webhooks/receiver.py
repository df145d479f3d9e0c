"""A webhook receiver as an ASE runs one (the `receiver` fixture serves it on 127.0.0.1),
and the signature check a receiver makes."""

from __future__ import annotations

import asyncio
import collections
import hashlib
import hmac
import json
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

SECRET = "whsec-0123456789abcdef0123456789"
"""The secret the `endpoint` fixture sets."""


@dataclass
class Receiver:
    """An ASE's webhook endpoint. It fails the first `fail_first_count` sends of each event,
    and every send of the events in `fail_ids`; it keeps each event once, by id, as a
    receiver must, and counts what happened."""

    fail_first_count: int = 0
    fail_ids: set[str] = field(default_factory=set)
    delay_s: float = 0.0
    url: str = ""
    sends: collections.Counter[str] = field(default_factory=collections.Counter)
    accepted: collections.Counter[str] = field(default_factory=collections.Counter)
    """2xx answers per event id: the acceptance is that each is exactly 1."""
    events: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    in_flight: set[str] = field(default_factory=set)
    overlaps: int = 0
    """Sends of an event that arrived while another send of it was still open."""
    any_accepted: asyncio.Event = field(default_factory=asyncio.Event)

    async def endpoint(self, request: Request) -> Response:
        body = await request.body()
        self.requests.append((dict(request.headers), body))
        event = json.loads(body)
        event_id = event["id"]
        self.sends[event_id] += 1
        if event_id in self.in_flight:
            self.overlaps += 1
        self.in_flight.add(event_id)
        try:
            await asyncio.sleep(self.delay_s)
        finally:
            self.in_flight.discard(event_id)
        if event_id in self.fail_ids or self.sends[event_id] <= self.fail_first_count:
            return Response("try again later", status_code=500)
        self.accepted[event_id] += 1
        self.any_accepted.set()
        self.events.setdefault(event_id, event)
        return Response(status_code=204)


def verify_signature(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """A receiver's check, written from Rafiki's description rather than opase's code:
    `t=<ms>, v1=<hex>` over `<t>.<JCS of the body>`; for the ASCII, float-free bodies of
    these tests JCS is sorted keys without spaces."""
    fields = dict(part.strip().split("=", 1) for part in headers["rafiki-signature"].split(","))
    canonical = json.dumps(json.loads(body), sort_keys=True, separators=(",", ":"))
    message = f"{fields['t']}.{canonical}".encode()
    expected = hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, fields["v1"])
