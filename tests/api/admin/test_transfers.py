"""A wallet address's transfers through the admin API: cursor pages that list every
transfer exactly once, reservations shown once with their outcome, bad cursors refused."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from starlette.applications import Starlette

from opase import ledger
from opase.ledger import TransferCursor
from tests.api.admin.back_office import SOME_ID, create_wallet, deposit
from tests.client import CheckedClient
from tests.responses import error_code


async def walk(admin: CheckedClient, wallet_id: str, first: int) -> list[dict[str, Any]]:
    """Every page from the start; checks each page's size and hasNextPage on the way."""
    seen: list[dict[str, Any]] = []
    params: dict[str, Any] = {"first": first}
    for _ in range(100):
        page = (await admin.get(f"/wallet-addresses/{wallet_id}/transfers", params=params)).json()
        seen += page["result"]
        if not page["pageInfo"]["hasNextPage"]:
            return seen
        assert len(page["result"]) == first
        params["cursor"] = page["pageInfo"]["endCursor"]
    raise AssertionError("the pages never ended")


async def test_pages_list_every_transfer_exactly_once(admin: CheckedClient) -> None:
    wallet = await create_wallet(admin)
    deposited = [await deposit(admin, wallet["id"], 100 + n, f"dep-{n}") for n in range(25)]
    url = f"/wallet-addresses/{wallet['id']}/transfers"

    pages = []
    params: dict[str, Any] = {"first": 10}
    while True:
        page = (await admin.get(url, params=params)).json()
        pages.append(page)
        if not page["pageInfo"]["hasNextPage"]:
            break
        params["cursor"] = page["pageInfo"]["endCursor"]
    assert [len(p["result"]) for p in pages] == [10, 10, 5]
    listed = [t for p in pages for t in p["result"]]
    assert [t["id"] for t in listed] == deposited  # oldest first, each once
    assert [t["amount"] for t in listed] == [str(100 + n) for n in range(25)]
    assert {(t["direction"], t["state"]) for t in listed} == {("credit", "posted")}
    assert [t["createdAt"] for t in listed] == sorted(t["createdAt"] for t in listed)

    # The default page is 20; the last endCursor stays valid for polling newer transfers.
    assert len((await admin.get(url)).json()["result"]) == 20
    last_cursor = pages[-1]["pageInfo"]["endCursor"]
    empty = (await admin.get(url, params={"cursor": last_cursor})).json()
    assert empty == {"result": [], "pageInfo": {"hasNextPage": False, "endCursor": last_cursor}}
    newer = await deposit(admin, wallet["id"], 7, "dep-newer")
    polled = (await admin.get(url, params={"cursor": last_cursor})).json()
    assert [t["id"] for t in polled["result"]] == [newer]


async def test_an_empty_listing_has_no_cursor(admin: CheckedClient) -> None:
    wallet = await create_wallet(admin)
    page = (await admin.get(f"/wallet-addresses/{wallet['id']}/transfers")).json()
    assert page == {"result": [], "pageInfo": {"hasNextPage": False}}


async def test_reservations_are_listed_once_with_their_outcome(
    admin: CheckedClient, apps: tuple[Starlette, Starlette]
) -> None:
    wallet = await create_wallet(admin)
    await deposit(admin, wallet["id"], 1000, "dep-1")
    response = await admin.post(
        f"/wallet-addresses/{wallet['id']}/withdrawals",
        json={"amount": "50"},
        headers={"Idempotency-Key": "wd-1"},
    )
    assert response.status_code == 201, response.text
    async with apps[0].state.services.sessions() as session:
        account = await ledger.wallet_account(session, uuid.UUID(wallet["id"]))
        fees = await ledger.fees_account(session, account.asset_id)

        async def reserve(amount_minor: int, key: str) -> uuid.UUID:
            reserved = await ledger.reserve(
                session,
                debit_account_id=account.id,
                credit_account_id=fees.id,
                amount_minor=amount_minor,
                idempotency_key=key,
                timeout_s=60,
                memo=f"hold {key}",
            )
            return reserved.id

        posted_id = await reserve(300, "hold-posted")
        voided_id = await reserve(200, "hold-voided")
        pending_id = await reserve(100, "hold-pending")
        await ledger.post_pending(session, posted_id, idempotency_key="post-1", amount_minor=250)
        await ledger.void_pending(session, voided_id, idempotency_key="void-1")
        await session.commit()

    # Walked one at a time, so a page boundary falls next to every resolving row.
    listed = await walk(admin, wallet["id"], first=1)
    shown = [(t["amount"], t["direction"], t["state"], t.get("memo")) for t in listed]
    assert shown == [
        ("1000", "credit", "posted", None),
        ("50", "debit", "posted", None),
        ("250", "debit", "posted", "hold hold-posted"),
        ("200", "debit", "voided", "hold hold-voided"),
        ("100", "debit", "pending", "hold hold-pending"),
    ]
    assert [t["id"] for t in listed[2:]] == [str(posted_id), str(voided_id), str(pending_id)]
    assert await walk(admin, wallet["id"], first=100) == listed


async def test_bad_cursors_and_page_sizes_are_refused(admin: CheckedClient) -> None:
    wallet = await create_wallet(admin)
    created = await admin.post(
        "/wallet-addresses", json={"path": "/bob", "assetId": wallet["assetId"]}
    )
    other = created.json()
    await deposit(admin, wallet["id"], 10, "dep-1")
    await deposit(admin, other["id"], 10, "dep-2")
    url = f"/wallet-addresses/{wallet['id']}/transfers"
    assert (await admin.get(url, params={"first": 1})).json()["pageInfo"]["hasNextPage"] is False
    others_cursor = (await admin.get(f"/wallet-addresses/{other['id']}/transfers")).json()[
        "pageInfo"
    ]["endCursor"]
    made_up = TransferCursor(
        TransferCursor.from_token(others_cursor).created_at, uuid.uuid4()
    ).to_token()
    for params in [
        {"cursor": "abc"},  # not base64 of a cursor
        {"cursor": "!!!"},  # not even base64url
        {"cursor": ""},
        {"cursor": others_cursor},  # another wallet address's listing
        {"cursor": made_up},  # well formed, but no such transfer
        {"first": 0},
        {"first": 101},
        {"first": "ten"},
        {"first": "1.5"},
    ]:
        response = await admin.get(url, params=params)
        assert error_code(response, 400) == "invalid_request", (params, response.text)
        assert response.json()["error"]["code"] == "invalid_request"


@pytest.mark.parametrize("params", [{}, {"cursor": "abc"}])
async def test_an_unknown_wallet_address_is_404(
    admin: CheckedClient, params: dict[str, str]
) -> None:
    response = await admin.get(f"/wallet-addresses/{SOME_ID}/transfers", params=params)
    assert error_code(response, 404) == "not_found"
