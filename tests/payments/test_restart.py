"""kill -9 of the server process while outgoing payments are in flight, then a restart: every
payment ends completed or failed, the ledger audit is clean, and the balances, the grant's
spent sums and the receiver's receivedAmount agree with the completed payments exactly.

The server is uvicorn in a child process on 127.0.0.1, on the test's database (SQLite file
or PostgreSQL); the test signs its requests with a client key stored in that database, and
is killed once the first payments have been created, mid-burst."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from sqlmodel import col
from starlette.applications import Starlette

from opase.ledger import audit, balance_minor, deposit
from opase.settings import Settings
from opase.storage.tables import (
    GrantSpending,
    IncomingPayment,
    LedgerAccount,
    OutgoingPayment,
    Quote,
    WalletAddress,
)
from opase.wallets.directory import create_wallet_address
from tests.actors import ClientApp, outgoing_access
from tests.money import usd
from tests.servers import free_port_pair
from tests.signing import register_client
from tests.world import seed

pytestmark = pytest.mark.slow  # starts servers: one xdist worker runs these in turn

BURST_COUNT = 60
KILL_AFTER_CREATED = 8
EACH_MINOR = 100
FUNDS_MINOR = 1_000_000
LEASE_S = 1
READY_TIMEOUT_S = 30
SETTLE_TIMEOUT_S = 60
PORT = free_port_pair()


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings(
        public_url=f"http://127.0.0.1:{PORT}",
        data_dir=tmp_path,
        database_url=database_url,
        outgoing_payment_lease_s=LEASE_S,
    )


class Server:
    """`uvicorn opase.app:create_app` in a child process, on the test's settings."""

    def __init__(self, settings: Settings) -> None:
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("OPASE_")} | {
            "OPASE_PUBLIC_URL": settings.public_url,
            "OPASE_DATA_DIR": str(settings.data_dir),
            "OPASE_DATABASE_URL": settings.database_url_resolved,
            "OPASE_OUTGOING_PAYMENT_LEASE_S": str(LEASE_S),
        }
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        command = [
            sys.executable, "-m", "uvicorn", "opase.app:create_app", "--factory",
            "--host", "127.0.0.1", "--port", str(PORT), "--no-access-log",
            "--log-level", "warning",
        ]  # fmt: skip
        self.process = subprocess.Popen(command, env=self.env)
        started_s = time.monotonic()
        while True:
            assert self.process.poll() is None, "the server exited"
            try:
                httpx.get(f"http://127.0.0.1:{PORT}/alice", timeout=1)
                return
            except httpx.TransportError:
                assert time.monotonic() - started_s < READY_TIMEOUT_S, "the server did not start"
                time.sleep(0.05)

    def kill_9(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture
def server(settings: Settings, app: Starlette) -> Iterator[Server]:
    running = Server(settings)
    yield running
    running.stop()


async def states(app: Starlette) -> dict[str, int]:
    async with app.state.services.sessions() as session:
        rows = await session.execute(
            sa.select(OutgoingPayment.state, sa.func.count()).group_by(OutgoingPayment.state)
        )
        return {state: count for state, count in rows.all()}


async def burst_then_kill(client: ClientApp, token: str, receiver: str, server: Server) -> int:
    """Send the burst; kill -9 the server once KILL_AFTER_CREATED payments were created.
    The count of 201s seen."""
    created = 0
    sends = [
        asyncio.ensure_future(
            client.pay(token, incomingPayment=receiver, debitAmount=usd(EACH_MINOR))
        )
        for _ in range(BURST_COUNT)
    ]
    for send in asyncio.as_completed(sends):
        try:
            response = await send
        except httpx.TransportError:
            continue  # cut off by the kill
        assert response.status_code == 201, response.text
        created += 1
        if created == KILL_AFTER_CREATED:
            server.kill_9()
    return created


@pytest.mark.parametrize("round_", range(2))
async def test_payments_in_flight_at_kill_9_end_cleanly_after_restart(
    app: Starlette, server: Server, round_: int
) -> None:
    seeded = await seed(app)
    async with app.state.services.sessions() as session:
        alice_asset_id = (
            await session.execute(
                sa.select(WalletAddress.asset_id).where(WalletAddress.path == "/alice")
            )
        ).scalar_one()
        await create_wallet_address(session, "/dave", alice_asset_id, "Dave")
        await deposit(session, seeded.alice_id, FUNDS_MINOR, "fund-alice")
        await session.commit()
    identity = await register_client(app)
    server.start()
    async with httpx.AsyncClient(timeout=30) as http:
        client = ClientApp(http, identity, app)  # acting for /alice
        receiver = await client.receiver(f"{app.state.settings.public_url}/dave")
        outgoing = outgoing_access(client.wallet_address, debitAmount=usd(FUNDS_MINOR))
        token = (await client.interactive_token(outgoing))["value"]
        created = await burst_then_kill(client, token, receiver, server)
    assert created >= KILL_AFTER_CREATED
    at_kill = await states(app)
    stored = sum(at_kill.values())
    assert stored >= created  # every 201 was durably stored; more may have committed unseen
    # Killed right after a response: the payments created last were still being settled.
    assert at_kill.get("sending", 0) >= 1, at_kill

    server.start()  # the worker of the new process takes up what the old one left
    started_s = time.monotonic()
    while (await states(app)).get("sending", 0):
        assert time.monotonic() - started_s < SETTLE_TIMEOUT_S, await states(app)
        await asyncio.sleep(0.1)
    server.stop()

    final = await states(app)
    assert set(final) <= {"completed", "failed"} and sum(final.values()) == stored, final
    completed = final.get("completed", 0)
    async with app.state.services.sessions() as session:
        assert await audit(session) == []
        alice_id, dave_id = [
            (
                await session.execute(sa.select(WalletAddress.id).where(WalletAddress.path == path))
            ).scalar_one()
            for path in ("/alice", "/dave")
        ]
        assert await balance_minor(session, alice_id) == FUNDS_MINOR - completed * EACH_MINOR
        assert await balance_minor(session, dave_id) == completed * EACH_MINOR
        pending_minor = (
            await session.execute(sa.select(sa.func.sum(LedgerAccount.debits_pending_minor)))
        ).scalar()
        assert pending_minor == 0  # no reservation outlives its payment
        spent_minor = (
            await session.execute(sa.select(GrantSpending.debit_spent_minor))
        ).scalar_one()
        assert spent_minor == completed * EACH_MINOR
        incoming_id = uuid.UUID(receiver.rsplit("/", 1)[1])
        incoming = await session.get(IncomingPayment, incoming_id)
        assert incoming is not None and incoming.received_amount_minor == completed * EACH_MINOR
        used = (
            await session.execute(
                sa.select(sa.func.count()).select_from(Quote).where(col(Quote.used_at).is_not(None))
            )
        ).scalar()
        assert used == stored
    print(
        f"round {round_}: {created} seen created, {stored} stored, at kill {at_kill}, final {final}"
    )
