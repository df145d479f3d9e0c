"""Delivery of the outbox to a real receiver on 127.0.0.1: a receiver that fails the first
sends of each event gets each event exactly once; an event past its last try is dead and
the next events still flow; the admin API lists and re-drives it; two passes at once never
send one event twice; no endpoint uses up no attempt; the worker outlives a database blip;
the signature verifies with the secret only."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col
from starlette.applications import Starlette

from opase.settings import Settings
from opase.storage.tables import IncomingPayment, WebhookEvent
from opase.webhooks.delivery import canonical_json, deliver_due, deliver_forever, event_body
from opase.webhooks.endpoint import set_webhook
from opase.webhooks.outbox import enqueue
from opase.workers import background_loops
from tests.client import CheckedClient
from tests.responses import error_code
from tests.webhooks.receiver import SECRET, Receiver, verify_signature
from tests.world import PUBLIC_URL, seed

DEADLINE_S = 15.0


async def enqueue_events(sessions: async_sessionmaker[AsyncSession], count: int) -> list[str]:
    async with sessions() as session:
        ids = [
            str(await enqueue(session, "wallet_address.not_found", {"walletAddressUrl": f"/{n}"}))
            for n in range(count)
        ]
        await session.commit()
    return ids


async def stored(sessions: async_sessionmaker[AsyncSession]) -> dict[str, WebhookEvent]:
    async with sessions() as session:
        events = (await session.execute(sa.select(WebhookEvent))).scalars().all()
    return {str(event.id): event for event in events}


async def deliver_until(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    http: httpx.AsyncClient,
    done: Callable[[dict[str, WebhookEvent]], bool],
) -> dict[str, WebhookEvent]:
    """Run passes, as the worker does, until `done` holds for the stored events."""
    async with asyncio.timeout(DEADLINE_S):
        while not done(events := await stored(sessions)):
            await deliver_due(sessions, settings, http=http)
            await asyncio.sleep(settings.webhook_backoff_s)
    return events


def all_settled(events: dict[str, WebhookEvent]) -> bool:
    return all(event.status != "pending" for event in events.values())


async def test_a_failing_receiver_gets_each_event_exactly_once(
    endpoint: Receiver,
    sessions: async_sessionmaker[AsyncSession],
    webhook_settings: Settings,
    http: httpx.AsyncClient,
) -> None:
    # Two failures of each event, three attempts allowed: every event gets through on its
    # last try, and no success is ever repeated.
    endpoint.fail_first_count = 2
    ids = await enqueue_events(sessions, 5)
    events = await deliver_until(sessions, webhook_settings, http, all_settled)
    assert {i: e.status for i, e in events.items()} == dict.fromkeys(ids, "delivered")
    assert all(event.attempts == 3 and event.last_error is None for event in events.values())
    assert all(event.delivered_at is not None for event in events.values())
    assert endpoint.sends == dict.fromkeys(ids, 3)
    assert endpoint.accepted == dict.fromkeys(ids, 1)
    assert endpoint.overlaps == 0
    for event_id in ids:
        body = endpoint.events[event_id]
        assert body == {
            "id": event_id,
            "type": "wallet_address.not_found",
            "data": events[event_id].data,
        }
    # More passes send nothing: delivered is final.
    assert await deliver_due(sessions, webhook_settings, http=http) == 0
    assert sum(endpoint.sends.values()) == 15


async def test_an_event_past_its_last_try_is_dead_and_the_next_events_flow(
    endpoint: Receiver,
    sessions: async_sessionmaker[AsyncSession],
    webhook_settings: Settings,
    http: httpx.AsyncClient,
    admin: CheckedClient,
) -> None:
    # The oldest event always fails; the two after it must not wait for it.
    poison, *rest = await enqueue_events(sessions, 3)
    endpoint.fail_ids.add(poison)
    events = await deliver_until(sessions, webhook_settings, http, all_settled)
    assert events[poison].status == "dead" and events[poison].attempts == 3
    assert events[poison].last_error == "answered HTTP 500"
    assert [events[i].status for i in rest] == ["delivered", "delivered"]
    assert endpoint.sends[poison] == 3 and endpoint.accepted == dict.fromkeys(rest, 1)

    # The dead letters, through the admin API.
    dead = await admin.get("/webhook-events", params={"status": "dead"})
    assert dead.status_code == 200, dead.text
    assert [e["id"] for e in dead.json()["result"]] == [poison]
    assert dead.json()["result"][0]["lastError"] == "answered HTTP 500"
    assert "nextAttemptAt" not in dead.json()["result"][0]
    every = (await admin.get("/webhook-events")).json()
    assert [e["id"] for e in every["result"]] == [poison, *rest]

    # Re-driven once the receiver is fixed, it arrives, once.
    endpoint.fail_ids.clear()
    redriven = await admin.post(f"/webhook-events/{poison}/redrive")
    assert redriven.status_code == 200, redriven.text
    assert (redriven.json()["status"], redriven.json()["attempts"]) == ("pending", 0)
    assert "lastError" not in redriven.json()
    again = await admin.post(f"/webhook-events/{poison}/redrive")
    assert again.status_code == 409 and again.json()["error"]["code"] == "conflict"
    unknown = await admin.post(f"/webhook-events/{uuid.uuid4()}/redrive")
    assert error_code(unknown, 404) == "not_found"
    events = await deliver_until(sessions, webhook_settings, http, all_settled)
    assert events[poison].status == "delivered" and events[poison].attempts == 1
    assert endpoint.accepted == dict.fromkeys([poison, *rest], 1)
    delivered = await admin.post(f"/webhook-events/{poison}/redrive")
    assert error_code(delivered, 409) == "conflict"


async def test_events_are_listed_a_page_at_a_time(
    sessions: async_sessionmaker[AsyncSession], admin: CheckedClient
) -> None:
    ids = await enqueue_events(sessions, 5)
    seen: list[str] = []
    params: dict[str, Any] = {"first": 2}
    while True:
        page = await admin.get("/webhook-events", params=params)
        assert page.status_code == 200, page.text
        seen += [event["id"] for event in page.json()["result"]]
        if not page.json()["pageInfo"]["hasNextPage"]:
            break
        params["cursor"] = page.json()["pageInfo"]["endCursor"]
    assert sorted(seen) == sorted(ids) and len(seen) == 5
    # The last cursor stays valid: it sees the events added after it.
    newer = await enqueue_events(sessions, 1)
    last = await admin.get("/webhook-events", params=params | {"first": 20})
    assert [event["id"] for event in last.json()["result"]][-1] == newer[0]
    pending = await admin.get("/webhook-events", params={"status": "pending"})
    assert all(event["status"] == "pending" for event in pending.json()["result"])
    assert all("nextAttemptAt" in event for event in pending.json()["result"])
    bad = await admin.get("/webhook-events", params={"cursor": "bm90LWEtY3Vyc29y"})
    assert error_code(bad, 400) == "invalid_request"
    assert (
        error_code(await admin.get("/webhook-events", params={"status": "lost"}), 400)
        == "invalid_request"
    )


async def test_two_passes_at_once_never_send_one_event_twice(
    endpoint: Receiver,
    sessions: async_sessionmaker[AsyncSession],
    webhook_settings: Settings,
    http: httpx.AsyncClient,
) -> None:
    # Slow answers keep both passes' sends open together; the claims must split the events.
    endpoint.delay_s = 0.2
    ids = await enqueue_events(sessions, 10)
    first, second = await asyncio.gather(
        deliver_due(sessions, webhook_settings, http=http),
        deliver_due(sessions, webhook_settings, http=http),
    )
    assert first + second == 10
    assert endpoint.sends == dict.fromkeys(ids, 1) and endpoint.overlaps == 0
    assert {event.status for event in (await stored(sessions)).values()} == {"delivered"}


async def test_without_an_endpoint_events_wait_and_use_no_attempt(
    receiver: Receiver,
    sessions: async_sessionmaker[AsyncSession],
    webhook_settings: Settings,
    http: httpx.AsyncClient,
) -> None:
    ids = await enqueue_events(sessions, 2)
    for _ in range(webhook_settings.webhook_attempts_max + 1):
        assert await deliver_due(sessions, webhook_settings, http=http) == 0
    events = await stored(sessions)
    assert {(e.status, e.attempts) for e in events.values()} == {("pending", 0)}
    async with sessions() as session:
        await set_webhook(session, receiver.url, None)
        await session.commit()
    events = await deliver_until(sessions, webhook_settings, http, all_settled)
    assert {e.status for e in events.values()} == {"delivered"}
    assert receiver.accepted == dict.fromkeys(ids, 1)
    # No secret, no signature.
    assert all("rafiki-signature" not in headers for headers, _ in receiver.requests)


async def test_the_signature_verifies_with_the_secret_and_not_another(
    endpoint: Receiver,
    sessions: async_sessionmaker[AsyncSession],
    webhook_settings: Settings,
    http: httpx.AsyncClient,
) -> None:
    async with sessions() as session:
        data = {"b": {"z": [1, True, None], "a": "x"}, "a": "caf\\u00e9"}
        await enqueue(session, "incoming_payment.created", data)
        await session.commit()
    sent_after_ms = time.time_ns() // 1_000_000
    await deliver_until(sessions, webhook_settings, http, all_settled)
    ((headers, body),) = endpoint.requests
    assert headers["content-type"] == "application/json"
    assert verify_signature(SECRET, headers, body)
    assert not verify_signature("another-secret-0123456789", headers, body)
    timestamp_ms = int(headers["rafiki-signature"].split(",")[0].removeprefix("t="))
    assert sent_after_ms <= timestamp_ms <= time.time_ns() // 1_000_000
    # The body is already canonical: what is signed is what is sent.
    event = endpoint.events[next(iter(endpoint.events))]
    assert body == canonical_json(event) == event_body(uuid.UUID(event["id"]), event["type"], data)


async def test_the_worker_outlives_a_database_blip(
    endpoint: Receiver,
    sessions: async_sessionmaker[AsyncSession],
    webhook_settings: Settings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    (event_id,) = await enqueue_events(sessions, 1)
    calls = 0

    def flaky() -> AsyncSession:
        # The first two sessions cannot reach the database.
        nonlocal calls
        calls += 1
        if calls <= 2:
            raise OperationalError("SELECT 1", {}, Exception("connection refused"))
        return sessions()

    stop = asyncio.Event()
    with caplog.at_level(logging.ERROR, logger="opase.webhooks"):
        flaky_sessions = cast("async_sessionmaker[AsyncSession]", flaky)
        worker = asyncio.create_task(deliver_forever(flaky_sessions, webhook_settings, stop))
        await asyncio.wait_for(endpoint.any_accepted.wait(), timeout=DEADLINE_S)
        stop.set()
        await asyncio.wait_for(worker, timeout=DEADLINE_S)
    assert endpoint.accepted == {event_id: 1}
    assert "webhook delivery pass failed" in caplog.text


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_canonical_json_refuses_what_json_cannot_hold(value: float) -> None:
    with pytest.raises(ValueError):
        canonical_json({"x": value})


@pytest.mark.parametrize(
    ("value", "text"),
    [
        # RFC 8785's own examples (section 3.2.2.3 and Appendix B).
        ({"numbers": [333333333.33333329, 1e30, 4.50, 2e-3, 0.000000000000000000000000001]},
         '{"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27]}'),
        ({"\u20ac": "Euro Sign", "\r": "Carriage Return", "1": "One", "\U0001f600": "Emoji",
          "\u0080": "Control", "\u00f6": "Latin"},
         '{"\\r":"Carriage Return","1":"One","\u0080":"Control","\u00f6":"Latin",'
         '"\u20ac":"Euro Sign","\U0001f600":"Emoji"}'),
        ({"literals": [None, True, False], "string": "\u20ac$\u000f\nA'B\"\\\\\"/"},
         '{"literals":[null,true,false],"string":"\u20ac$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}'),
        ([1e21, 1e20, 1e-6, 1e-7, -0.0, 100.0, 5e-324],
         "[1e+21,100000000000000000000,0.000001,1e-7,0,100,5e-324]"),
    ],
)  # fmt: skip
def test_canonical_json_is_rfc_8785(value: Any, text: str) -> None:
    assert canonical_json(value) == text.encode()


async def test_a_pass_claims_at_most_a_batch(
    endpoint: Receiver,
    sessions: async_sessionmaker[AsyncSession],
    webhook_settings: Settings,
    http: httpx.AsyncClient,
) -> None:
    settings = Settings(**(webhook_settings.model_dump() | {"webhook_batch_count_max": 3}))
    await enqueue_events(sessions, 7)
    assert [await deliver_due(sessions, settings, http=http) for _ in range(4)] == [3, 3, 1, 0]
    async with sessions() as session:
        statuses = (await session.execute(sa.select(col(WebhookEvent.status)))).scalars().all()
    assert set(statuses) == {"delivered"}


async def test_the_worker_sweeps_expired_incoming_payments_into_the_outbox(
    endpoint: Receiver,
    apps: tuple[Starlette, Starlette],
    sessions: async_sessionmaker[AsyncSession],
    webhook_settings: Settings,
) -> None:
    seeded = await seed(apps[0])
    async with sessions() as session:
        payment = IncomingPayment(
            wallet_address_id=seeded.alice_id,
            client_wallet_address=f"{PUBLIC_URL}/client-app",
            expires_at=datetime.now(UTC) - timedelta(seconds=1),
            shared_secret="s" * 43,
        )
        session.add(payment)
        await session.commit()
    # The loops every public process runs, as the app starts them: the expiry sweep puts
    # the event in the outbox, delivery sends it.
    stop = asyncio.Event()
    loops = background_loops(apps[0].state.services, webhook_settings, roles=("wallet",))
    workers = [asyncio.create_task(loop(stop)) for loop in loops]
    await asyncio.wait_for(endpoint.any_accepted.wait(), timeout=DEADLINE_S)
    stop.set()
    await asyncio.wait_for(asyncio.gather(*workers), timeout=DEADLINE_S)
    ((event_type, data),) = [(e["type"], e["data"]) for e in endpoint.events.values()]
    assert event_type == "incoming_payment.expired"
    assert data["id"] == f"{PUBLIC_URL}/op/incoming-payments/{payment.id}"
