"""Every background loop starts from one list (`opase.workers`): what a process of each role
runs, and that a reservation nobody voided comes back through the scheduled ledger sweep."""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.applications import Starlette

from opase import ledger
from opase.workers import background_loops
from tests.world import Seeded

DEADLINE_S = 10.0


def _names(loops: list[Any]) -> list[str]:
    named = []
    for loop in loops:
        function = getattr(loop, "func", loop)
        args = getattr(loop, "args", ())
        named.append(args[0] if function.__name__ == "_every" else function.__qualname__)
    return named


def test_each_role_gets_its_loops(app: Starlette) -> None:
    services, settings = app.state.services, app.state.settings
    public = ["deliver_forever", "incoming payment expiry"]
    assert _names(background_loops(services, settings, ("wallet", "auth"))) == public
    assert _names(background_loops(services, settings, ("resource",))) == [
        *public,
        "PaymentRunner.run_forever",
        "ledger reservation sweep",
    ]


async def test_an_expired_reservation_is_voided_by_the_scheduled_sweep(
    app: Starlette, seeded: Seeded
) -> None:
    sessions = app.state.services.sessions
    async with sessions() as session:
        await ledger.deposit(session, seeded.alice_id, 500, "deposit-1")
        alice = await ledger.wallet_account(session, seeded.alice_id)
        settlement = await ledger.settlement_account(session, alice.asset_id)
        await ledger.reserve(
            session,
            debit_account_id=alice.id,
            credit_account_id=settlement.id,
            amount_minor=200,
            idempotency_key="reserve-1",
            timeout_s=1,
        )
        await session.commit()
        assert ledger.balance_of(alice).available_minor == 300
    await asyncio.sleep(1.1)  # past the reservation's timeout

    stop = asyncio.Event()
    loops = background_loops(app.state.services, app.state.settings, ("resource",))
    workers = [asyncio.create_task(loop(stop)) for loop in loops]
    try:
        async with asyncio.timeout(DEADLINE_S):
            while True:
                async with sessions() as session:
                    alice = await ledger.wallet_account(session, seeded.alice_id)
                    if ledger.balance_of(alice).available_minor == 500:
                        break
                await asyncio.sleep(0.05)
    finally:
        stop.set()
        await asyncio.gather(*workers)
    async with sessions() as session:
        assert await ledger.audit(session) == []
