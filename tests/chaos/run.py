"""The chaos engine: load, faults, then the audit, for one database per run.

One run (`run_chaos`):

1. Prepares a database (a SQLite file, or a database on a PostgreSQL cluster of its own, so
   restarting that cluster harms no other test), seeds wallet addresses /w0../w3 in USD and
   a client app, and starts `python -m opase serve` on 127.0.0.1 as a user runs it: two
   workers on PostgreSQL (they share the database), one process on SQLite (its replay cache
   lives in memory). The admin API runs beside it; a webhook receiver runs in this process
   and answers 500 to the first send of about one event in five, to exercise retries.
2. Loads it from several concurrent clients doing random signed operations: incoming
   payments (some capped, some expiring within seconds), quotes, outgoing payments from
   quotes and from incomingPayment + debitAmount (some beyond the balance or the grant's
   limit), completions of incoming payments, reads, deposits and withdrawals through the
   admin API. Every operation is counted by outcome; faults make connection errors and 5xx
   expected, never failures.
3. Meanwhile injects faults at seeded random moments: kill -9 of one uvicorn worker (which
   uvicorn replaces), kill -9 of the whole server (its process group) then a restart, and on
   PostgreSQL `pg_ctl restart -m immediate`.
4. Restarts the server cleanly, waits (bounded) until no payment is sending and the outbox
   has nothing pending, stops it, and checks the stored state: the ledger audit, units
   conserved against the deposits and withdrawals the clients made, no reservation left,
   every payment completed or failed with a reason, incoming payments' receivedAmount,
   grants' spent sums, every wallet's balance, and every outbox event delivered, received by
   the webhook receiver, and present once per payment. The report names every difference.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Final, Literal

import asyncpg  # type: ignore[import-untyped]
import httpx
import sqlalchemy as sa
from sqlmodel import col

from opase.app import build_app
from opase.ledger import audit, fees_account, wallet_account
from opase.services import Services
from opase.settings import Settings
from opase.storage.migrate import upgrade
from opase.storage.tables import (
    GrantSpending,
    IncomingPayment,
    LedgerAccount,
    OutgoingPayment,
    Quote,
    WebhookEvent,
)
from opase.wallets.directory import create_asset, create_wallet_address
from tests import servers
from tests.actors import ClientApp, incoming_access, outgoing_access, quote_access
from tests.money import usd
from tests.postgres_server import _as_server_user, _postgres_bin_dir, throwaway_postgres
from tests.signing import ClientIdentity, GnapAuth, register_client

Database = Literal["sqlite", "postgresql"]
DATABASES: Final[tuple[Database, ...]] = ("sqlite", "postgresql")

HOST: Final = "127.0.0.1"
ADMIN_KEY: Final = "chaos-admin-key-0123456789"
WALLET_PATHS: Final = ("/w0", "/w1", "/w2", "/w3")
LIMITED_WALLET_PATH: Final = "/w2"
"""Its outgoing-payment grant allows little, so payments past the limit are refused (403)."""
LIMITED_DEBIT_MINOR: Final = 20_000
UNLIMITED_DEBIT_MINOR: Final = 10**12
INITIAL_DEPOSIT_MINOR: Final = 200_000
BEYOND_ANY_BALANCE_MINOR: Final = 10**11
SENDING_FEE: Final = {"fixed": "1", "basisPoints": 50}
RECEIVING_FEE: Final = {"fixed": "0", "basisPoints": 20}

CLIENT_TASK_COUNT: Final = 6
REQUEST_TIMEOUT_S: Final = 10.0
AFTER_ERROR_PAUSE_S: Final = (0.05, 0.3)
"""A client that met a fault waits a little before its next operation, as a real one would."""
THINK_TIME_S: Final = (0.0, 0.02)
SHORT_EXPIRY_S: Final = (2.0, 6.0)
"""Some incoming payments expire this soon, so payments into them fail with a reason."""
RECENT_COUNT_MAX: Final = 40

FIRST_FAULT_AFTER_S: Final = (1.5, 3.0)
FAULT_INTERVAL_S: Final = (1.5, 4.0)
PLANNED_FAULT_INTERVAL_S: Final = (1.0, 2.5)
FAULT_END_MARGIN_S: Final = 2.0
"""No fault starts this close to the end of the load."""
SERVER_DOWN_S: Final = (0.0, 1.0)
"""How long the whole server stays dead before it is started again."""

SERVER_READY_TIMEOUT_S: Final = 60.0
SERVER_STOP_TIMEOUT_S: Final = 15.0
WORKER_REPLACED_TIMEOUT_S: Final = 30.0
POSTGRES_RESTART_TIMEOUT_S: Final = 60
SETTLE_TIMEOUT_S: Final = 60.0
POLL_S: Final = 0.2
LOG_TAIL_CHARS: Final = 6000
EXAMPLES_MAX: Final = 5
"""Named examples per kind of problem in the report."""

SERVER_ENV: Final = {
    # Stranded payments are taken up fast; webhook retries and polls are quick.
    "OPASE_OUTGOING_PAYMENT_LEASE_S": "1",
    "OPASE_WEBHOOK_BACKOFF_S": "0.2",
    "OPASE_WEBHOOK_TIMEOUT_S": "1.0",
    "OPASE_WEBHOOK_POLL_S": "0.2",
    # Tokens outlive even long runs.
    "OPASE_ACCESS_TOKEN_LIFETIME_S": str(7 * 24 * 3600),
}

# Which answers each operation may give: success, or a clean refusal. Anything else (other
# than a connection error or a 5xx, which faults cause) is an unexpected response.
EXPECTED_STATUSES: Final[dict[str, tuple[set[int], set[int]]]] = {
    "create_incoming_payment": ({201}, set()),
    # One with a short expiresAt whose answer came only after that time: held up by a fault
    # or a busy CPU, the server may have read it late, and then rightly refuses it.
    "create_incoming_payment_answered_late": ({201}, {400}),
    "complete_incoming_payment": ({200}, {400, 409}),
    "create_quote": ({201}, {400, 403}),
    "create_outgoing_payment_from_quote": ({201}, {400, 403}),
    "reuse_quote": (set(), {400, 403}),
    "create_outgoing_payment_direct": ({201}, {400, 403}),
    "create_outgoing_payment_beyond_balance": (set(), {403}),
    "create_outgoing_payment_beyond_limit": (set(), {403}),
    "read_outgoing_payment": ({200}, set()),
    "deposit": ({201}, set()),
    "withdraw": ({201}, {409}),
    "withdraw_beyond_balance": (set(), {409}),
}
OPERATION_WEIGHTS: Final = {
    "create_incoming_payment": 14,
    "complete_incoming_payment": 2,
    "create_quote": 16,
    "create_outgoing_payment_from_quote": 18,
    "reuse_quote": 2,
    "create_outgoing_payment_direct": 22,
    "create_outgoing_payment_beyond_balance": 2,
    "create_outgoing_payment_beyond_limit": 2,
    "read_outgoing_payment": 6,
    "deposit": 5,
    "withdraw": 4,
    "withdraw_beyond_balance": 1,
}


class ChaosError(RuntimeError):
    """The run could not be carried out (a server that does not start, say): no verdict."""


@dataclass(frozen=True)
class ChaosConfig:
    database: Database
    duration_s: float
    """How long the load (and the faults) last; setup and the final checks come on top."""
    seed: int
    work_dir: Path


@dataclass
class ChaosReport:
    database: str
    seed: int
    duration_s: float
    server_workers: int
    operations: dict[str, dict[str, int]] = field(default_factory=dict)
    """Per operation kind, counts by outcome: ok, refused, server_error, connection_error,
    unexpected."""
    worker_kills: int = 0
    worker_replacements: int = 0
    server_kills: int = 0
    server_restarts: int = 0
    postgres_restarts: int = 0
    payments_completed: int = 0
    payments_failed: int = 0
    payments_resumed: int = 0
    """Payments the worker took up: their first executor died, failed (the database was
    away) or was slower than the lease."""
    failure_reasons: dict[str, int] = field(default_factory=dict)
    incoming_payments: int = 0
    webhook_events: dict[str, int] = field(default_factory=dict)
    """Outbox events by type."""
    webhook_events_delivered: int = 0
    webhook_sends_received: int = 0
    webhook_sends_refused: int = 0
    """Sends the receiver answered 500 on purpose (each retried later)."""
    settle_s: float = 0.0
    wall_s: float = 0.0
    audit: dict[str, int] = field(default_factory=dict)
    """Every figure must be zero."""
    fault_log: list[str] = field(default_factory=list)
    """When each fault came, in seconds from the start of the load."""
    problems: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.problems and not any(self.audit.values())

    @property
    def operation_count(self) -> int:
        return sum(sum(outcomes.values()) for outcomes in self.operations.values())

    def as_json(self) -> dict[str, Any]:
        return asdict(self) | {"clean": self.clean, "operation_count": self.operation_count}

    def render(self) -> str:
        outcomes = ("ok", "refused", "server_error", "connection_error", "unexpected")
        lines = [
            f"chaos report: {self.database}, {self.duration_s:.0f} s of load, seed {self.seed}, "
            f"{self.server_workers} server worker(s), {self.wall_s:.1f} s wall",
            f"  operations: {self.operation_count}",
            f"    {'kind':<40}" + "".join(f"{name:>18}" for name in outcomes),
        ]
        for kind, counts in sorted(self.operations.items()):
            cells = "".join(f"{counts.get(name, 0):>18}" for name in outcomes)
            lines.append(f"    {kind:<40}{cells}")
        lines += [
            f"  faults: {self.worker_kills} worker kill(s) ({self.worker_replacements} replaced "
            f"by uvicorn), {self.server_kills} server kill(s), {self.server_restarts} server "
            f"restart(s), {self.postgres_restarts} PostgreSQL restart(s)",
            f"  payments: {self.payments_completed} completed, {self.payments_failed} failed; "
            f"{self.payments_resumed} taken up by the worker; "
            f"{self.incoming_payments} incoming payments; settled {self.settle_s:.1f} s after "
            "the load",
        ]
        for reason, count in sorted(self.failure_reasons.items()):
            lines.append(f"    failed {count:>5} x {reason}")
        lines.append(
            f"  webhooks: {self.webhook_events_delivered} events delivered, "
            f"{self.webhook_sends_received} sends received, {self.webhook_sends_refused} "
            "refused on purpose (500) and retried"
        )
        for event_type, count in sorted(self.webhook_events.items()):
            lines.append(f"    {count:>6} x {event_type}")
        lines.append("  fault log:")
        lines += [f"    {entry}" for entry in self.fault_log]
        lines.append("  audit (every figure must be 0):")
        for name, value in self.audit.items():
            lines.append(f"    {name:<44}{value:>8}")
        verdict = "CLEAN" if self.clean else "NOT CLEAN"
        lines.append(f"  verdict: {verdict}")
        lines += [f"  problem: {problem}" for problem in self.problems]
        return "\n".join(lines)


# --- helpers ---------------------------------------------------------------------------------


def free_port() -> int:
    """A free port below the kernel's ephemeral range: while the killed server is down, no
    client connection can take its port as a local one, so the restart can always bind it
    (and, under pytest-xdist, in this worker's slice of that range: no other test takes it)."""
    return servers.free_port()


def wire_time(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def last_segment_uuid(url: str) -> uuid.UUID:
    return uuid.UUID(url.rstrip("/").rsplit("/", 1)[1])


def tail(path: Path) -> str:
    try:
        return path.read_text(errors="replace")[-LOG_TAIL_CHARS:]
    except OSError:
        return ""


# --- the webhook receiver --------------------------------------------------------------------


class _ListeningServer(ThreadingHTTPServer):
    # A delivery pass sends a whole batch at once; the default backlog (5) would drop
    # connections, and the sends would time out for reasons of the receiver's own.
    request_queue_size = 256


class WebhookReceiver:
    """An HTTP endpoint in a thread of this process that records every event id it takes.
    The first send of about one event in five is answered 500 (chosen by a hash of the seed
    and the id, so it does not depend on timing); every later send of it is taken."""

    REFUSE_FIRST_SEND_PER_MILLE: Final = 200

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.lock = threading.Lock()
        self.taken_ids: set[str] = set()
        self.refused_ids: set[str] = set()
        self.sends_received = 0
        self.sends_refused = 0
        self.malformed = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                status = receiver.take(body)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass  # quiet: the report counts what matters

        self.server = _ListeningServer((HOST, 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.server.server_address[1]}/webhooks"

    def _refuses_first_send(self, event_id: str) -> bool:
        digest = hashlib.sha256(f"{self.seed}:{event_id}".encode()).digest()
        return int.from_bytes(digest[:4], "big") % 1000 < self.REFUSE_FIRST_SEND_PER_MILLE

    def take(self, body: bytes) -> int:
        try:
            event_id = str(json.loads(body)["id"])
        except (ValueError, KeyError, TypeError):
            with self.lock:
                self.malformed += 1
            return 400
        with self.lock:
            self.sends_received += 1
            if event_id not in self.refused_ids and self._refuses_first_send(event_id):
                self.refused_ids.add(event_id)
                self.sends_refused += 1
                return 500
            self.taken_ids.add(event_id)
            return 200

    def __enter__(self) -> WebhookReceiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


# --- PostgreSQL ------------------------------------------------------------------------------


class PostgresCluster:
    """A throwaway cluster of this run's own (`tests.postgres_server.throwaway_postgres`,
    durable: an immediate restart is a crash, and a committed transaction must survive it)
    that the engine may restart at will."""

    def __init__(self, server_url: str, data_dir: Path) -> None:
        self.server_url = server_url
        self.data_dir = data_dir

    def restart_immediate(self) -> None:
        """`pg_ctl restart -m immediate`: every backend dies at once, crash recovery follows;
        the previous options (port, socket directory) are reused from postmaster.opts."""
        bin_dir = _postgres_bin_dir()
        assert bin_dir is not None
        command = [
            *_as_server_user(), str(bin_dir / "pg_ctl"), "-D", str(self.data_dir),
            "-l", str(self.data_dir.parent / "server.log"), "-m", "immediate",
            "-w", "-t", str(POSTGRES_RESTART_TIMEOUT_S), "restart",
        ]  # fmt: skip
        # The server started by pg_ctl keeps no pipe of ours open: its output goes to -l.
        completed = subprocess.run(
            command, cwd=self.data_dir.parent, capture_output=True, text=True, check=False
        )
        if completed.returncode != 0:
            raise ChaosError(
                f"pg_ctl restart failed ({completed.returncode}): {completed.stdout}"
                f"{completed.stderr}\n{tail(self.data_dir.parent / 'server.log')}"
            )


@asynccontextmanager
async def postgres_database() -> AsyncIterator[tuple[str, PostgresCluster]]:
    """A database URL on a new cluster, and the cluster. PostgresUnavailable without one."""
    with throwaway_postgres(durable=True) as server_url:
        connection = await asyncpg.connect(server_url)
        try:
            data_dir = Path(await connection.fetchval("SHOW data_directory"))
            await connection.execute('CREATE DATABASE "opase_chaos"')
        finally:
            await connection.close()
        database_url = server_url.rsplit("/", 1)[0] + "/opase_chaos"
        yield database_url, PostgresCluster(server_url, data_dir)


# --- the server under test -------------------------------------------------------------------


def _children(pid: int) -> list[int]:
    found = []
    for children_file in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            found += [int(child) for child in children_file.read_text().split()]
        except OSError:
            continue  # the thread ended meanwhile
    return found


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


class OpaseServer:
    """`python -m opase serve` in its own process group: the uvicorn supervisor (or the one
    worker), its worker processes and the admin listener, all killed at once by the group."""

    def __init__(self, settings: Settings, workers: int, log_path: Path) -> None:
        self.settings = settings
        self.workers = workers
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("OPASE_")} | {
            "OPASE_PUBLIC_URL": settings.public_url,
            "OPASE_DATA_DIR": str(settings.data_dir),
            "OPASE_DATABASE_URL": settings.database_url,
            "OPASE_ADMIN_HOST": settings.admin_host,
            "OPASE_ADMIN_PORT": str(settings.admin_port),
            "OPASE_ADMIN_API_KEYS": json.dumps([ADMIN_KEY]),
            **SERVER_ENV,
        }

    @property
    def public_port(self) -> int:
        return self.settings.port

    def start(self) -> None:
        command = [
            sys.executable, "-m", "opase", "serve", "--host", HOST,
            "--port", str(self.settings.port), "--workers", str(self.workers),
        ]  # fmt: skip
        with self.log_path.open("ab") as log:
            log.write(f"\n--- {time.strftime('%H:%M:%S')} start: {' '.join(command)}\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                command,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # its own process group, for kill -9 of all of it
            )
        self._wait_ready()

    def _answers(self, url: str, headers: dict[str, str]) -> bool:
        try:
            return httpx.get(url, headers=headers, timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def _wait_ready(self) -> None:
        assert self.process is not None
        deadline_s = time.monotonic() + SERVER_READY_TIMEOUT_S
        public = f"{self.settings.public_url}{WALLET_PATHS[0]}"
        admin = f"{self.settings.admin_url}/assets"
        while True:
            if self.process.poll() is not None:
                raise ChaosError(f"opase serve exited while starting:\n{tail(self.log_path)}")
            ready = self._answers(public, {"Accept": "application/json"}) and self._answers(
                admin, {"Authorization": f"Bearer {ADMIN_KEY}"}
            )
            if ready and len(self.worker_pids()) >= self.workers:
                return
            if time.monotonic() > deadline_s:
                raise ChaosError(
                    f"opase serve was not ready within {SERVER_READY_TIMEOUT_S} s:\n"
                    f"{tail(self.log_path)}"
                )
            time.sleep(POLL_S)

    def worker_pids(self) -> list[int]:
        """The processes that serve requests: uvicorn's spawned workers, or with one worker
        the server process itself."""
        assert self.process is not None
        if self.workers == 1:
            return [self.process.pid]
        return [
            child
            for child in _children(self.process.pid)
            if "spawn_main" in _cmdline(child) and "resource_tracker" not in _cmdline(child)
        ]

    def kill_worker(self, rng: random.Random) -> tuple[bool, bool]:
        """kill -9 of one worker; (killed, replaced by uvicorn within the timeout)."""
        assert self.workers > 1, "with one worker, a worker kill is a server kill"
        before = self.worker_pids()
        if not before:
            return False, False
        victim = rng.choice(sorted(before))
        try:
            os.kill(victim, signal.SIGKILL)
        except ProcessLookupError:
            return False, False
        deadline_s = time.monotonic() + WORKER_REPLACED_TIMEOUT_S
        while time.monotonic() < deadline_s:
            now = self.worker_pids()
            if victim not in now and len(now) >= self.workers:
                return True, True
            time.sleep(POLL_S)
        return True, False

    def kill_all(self) -> None:
        """kill -9 of the whole process group, and wait until none of it is left."""
        assert self.process is not None
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait()
        self._wait_group_gone()

    def _wait_group_gone(self) -> None:
        assert self.process is not None
        deadline_s = time.monotonic() + SERVER_STOP_TIMEOUT_S
        while time.monotonic() < deadline_s:
            try:
                os.killpg(self.process.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)
        raise ChaosError("processes of the killed server are still alive")

    def stop(self) -> None:
        """SIGTERM, as a service manager stops it; SIGKILL of the group if it hangs."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=SERVER_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.kill_all()
            return
        try:
            os.killpg(self.process.pid, signal.SIGKILL)  # leftovers, if any
        except ProcessLookupError:
            pass
        self._wait_group_gone()


# --- the load --------------------------------------------------------------------------------


@dataclass
class MoneyMove:
    """A deposit or withdrawal through the admin API, as the client knows it."""

    kind: Literal["deposit", "withdraw"]
    wallet_path: str
    amount_minor: int
    idempotency_key: str
    outcome: Literal["done", "refused", "unknown"] = "unknown"


@dataclass
class World:
    """What the clients know and share: tokens, recent resources, money moved, counts."""

    base_url: str
    admin_url: str
    identity: ClientIdentity
    """The client app's key, stored in the database."""
    incoming_token: str
    quote_token: str
    outgoing_tokens: dict[str, str]
    wallet_ids: dict[str, uuid.UUID]
    sink_incoming_payment: str
    """Never capped, expiring or completed: payments refused for the balance or the grant's
    limit go here, so that nothing else about the receiver refuses them first."""
    incoming_payments: list[str] = field(default_factory=list)
    quotes: list[tuple[str, str]] = field(default_factory=list)
    """Unused quotes: (sender path, quote URL)."""
    used_quotes: list[tuple[str, str]] = field(default_factory=list)
    outgoing_payments: list[tuple[str, str]] = field(default_factory=list)
    money_moves: list[MoneyMove] = field(default_factory=list)
    counts: defaultdict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    unexpected: list[str] = field(default_factory=list)
    short_expiry_latest: datetime = field(default_factory=lambda: datetime.now(UTC))

    def auth(self, token: str) -> GnapAuth:
        return GnapAuth(self.identity, token)

    def remember(self, items: list[Any], item: Any) -> None:
        items.append(item)
        del items[:-RECENT_COUNT_MAX]


Answer = httpx.Response | httpx.HTTPError


async def _request(
    http: httpx.AsyncClient, method: str, url: str, **kwargs: Any
) -> httpx.Response | httpx.HTTPError:
    try:
        return await http.request(method, url, **kwargs)
    except httpx.HTTPError as error:
        return error


def _classify(world: World, kind: str, answer: Answer) -> str:
    """Count the answer; its outcome."""
    if isinstance(answer, httpx.HTTPError):
        outcome = "connection_error"
    elif answer.status_code >= 500:
        outcome = "server_error"
    else:
        ok, refused = EXPECTED_STATUSES[kind]
        if answer.status_code in ok:
            outcome = "ok"
        elif answer.status_code in refused:
            outcome = "refused"
        else:
            outcome = "unexpected"
            if len(world.unexpected) < 50:
                world.unexpected.append(
                    f"{kind}: HTTP {answer.status_code} {answer.request.method} "
                    f"{answer.request.url}: {answer.text[:300]}"
                )
    world.counts[kind][outcome] += 1
    return outcome


async def _create_incoming_payment(
    world: World, http: httpx.AsyncClient, rng: random.Random
) -> None:
    body: dict[str, Any] = {"walletAddress": world.base_url + rng.choice(WALLET_PATHS)}
    if rng.random() < 0.3:
        body["incomingAmount"] = usd(rng.randint(200, 3_000))
    expires_at = None
    if rng.random() < 0.15:
        expires_at = datetime.now(UTC) + timedelta(seconds=rng.uniform(*SHORT_EXPIRY_S))
        body["expiresAt"] = wire_time(expires_at)
        world.short_expiry_latest = max(world.short_expiry_latest, expires_at)
    answer = await _request(
        http, "POST", f"{world.base_url}/op/incoming-payments", json=body,
        auth=world.auth(world.incoming_token),
    )  # fmt: skip
    late = expires_at is not None and datetime.now(UTC) >= expires_at
    kind = "create_incoming_payment_answered_late" if late else "create_incoming_payment"
    if _classify(world, kind, answer) == "ok":
        assert isinstance(answer, httpx.Response)
        world.remember(world.incoming_payments, answer.json()["id"])


async def _complete_incoming_payment(
    world: World, http: httpx.AsyncClient, rng: random.Random
) -> None:
    if not world.incoming_payments:
        return
    url = rng.choice(world.incoming_payments)
    answer = await _request(http, "POST", f"{url}/complete", auth=world.auth(world.incoming_token))
    _classify(world, "complete_incoming_payment", answer)


def _payment_amount_minor(rng: random.Random) -> int:
    return rng.randint(5, 800)


async def _create_quote(world: World, http: httpx.AsyncClient, rng: random.Random) -> None:
    if not world.incoming_payments:
        return
    sender = rng.choice(WALLET_PATHS)
    body: dict[str, Any] = {
        "walletAddress": world.base_url + sender,
        "receiver": rng.choice(world.incoming_payments),
        "method": "ilp",
    }
    fixed = "debitAmount" if rng.random() < 0.6 else "receiveAmount"
    body[fixed] = usd(_payment_amount_minor(rng))
    answer = await _request(
        http, "POST", f"{world.base_url}/op/quotes", json=body, auth=world.auth(world.quote_token)
    )
    if _classify(world, "create_quote", answer) == "ok":
        assert isinstance(answer, httpx.Response)
        world.remember(world.quotes, (sender, answer.json()["id"]))


async def _create_outgoing_payment_from_quote(
    world: World, http: httpx.AsyncClient, rng: random.Random, *, reuse: bool = False
) -> None:
    pool = world.used_quotes if reuse else world.quotes
    if not pool:
        return
    sender, quote_url = pool.pop(rng.randrange(len(pool)))
    body = {"walletAddress": world.base_url + sender, "quoteId": quote_url}
    answer = await _request(
        http, "POST", f"{world.base_url}/op/outgoing-payments", json=body,
        auth=world.auth(world.outgoing_tokens[sender]),
    )  # fmt: skip
    kind = "reuse_quote" if reuse else "create_outgoing_payment_from_quote"
    if _classify(world, kind, answer) == "ok":
        assert isinstance(answer, httpx.Response)
        world.remember(world.outgoing_payments, (sender, answer.json()["id"]))
        # Known to be used only now: a use cut off by a fault may never have happened.
        world.remember(world.used_quotes, (sender, quote_url))


async def _create_outgoing_payment_direct(
    world: World, http: httpx.AsyncClient, rng: random.Random, *, kind: str
) -> None:
    if not world.incoming_payments:
        return
    sender = LIMITED_WALLET_PATH if kind.endswith("beyond_limit") else rng.choice(WALLET_PATHS)
    amount_minor = {
        "create_outgoing_payment_direct": _payment_amount_minor(rng),
        "create_outgoing_payment_beyond_balance": BEYOND_ANY_BALANCE_MINOR,
        "create_outgoing_payment_beyond_limit": LIMITED_DEBIT_MINOR + 1,
    }[kind]
    body = {
        "walletAddress": world.base_url + sender,
        "incomingPayment": (
            rng.choice(world.incoming_payments)
            if kind == "create_outgoing_payment_direct"
            else world.sink_incoming_payment
        ),
        "debitAmount": usd(amount_minor),
    }
    answer = await _request(
        http, "POST", f"{world.base_url}/op/outgoing-payments", json=body,
        auth=world.auth(world.outgoing_tokens[sender]),
    )  # fmt: skip
    if _classify(world, kind, answer) == "ok":
        assert isinstance(answer, httpx.Response)
        world.remember(world.outgoing_payments, (sender, answer.json()["id"]))


async def _read_outgoing_payment(world: World, http: httpx.AsyncClient, rng: random.Random) -> None:
    if not world.outgoing_payments:
        return
    sender, url = rng.choice(world.outgoing_payments)
    answer = await _request(http, "GET", url, auth=world.auth(world.outgoing_tokens[sender]))
    _classify(world, "read_outgoing_payment", answer)


async def send_money_move(world: World, http: httpx.AsyncClient, move: MoneyMove) -> str:
    """POST the deposit or withdrawal with its idempotency key; its outcome. A repeat with
    the same key moves money at most once, so an unknown outcome is resolved by repeating."""
    kind = "deposit" if move.kind == "deposit" else "withdraw"
    if move.kind == "withdraw" and move.amount_minor >= BEYOND_ANY_BALANCE_MINOR:
        kind = "withdraw_beyond_balance"
    collection = "deposits" if move.kind == "deposit" else "withdrawals"
    answer = await _request(
        http, "POST",
        f"{world.admin_url}/wallet-addresses/{world.wallet_ids[move.wallet_path]}/{collection}",
        json={"amount": str(move.amount_minor)},
        headers={"Authorization": f"Bearer {ADMIN_KEY}", "Idempotency-Key": move.idempotency_key},
    )  # fmt: skip
    outcome = _classify(world, kind, answer)
    if outcome == "ok":
        move.outcome = "done"
    elif outcome == "refused":
        move.outcome = "refused"
    return outcome


async def _money_move(
    world: World, http: httpx.AsyncClient, rng: random.Random, *, kind: str
) -> None:
    amount_minor = {
        "deposit": rng.randint(1_000, 50_000),
        "withdraw": rng.randint(100, 20_000),
        "withdraw_beyond_balance": BEYOND_ANY_BALANCE_MINOR,
    }[kind]
    move = MoneyMove(
        "deposit" if kind == "deposit" else "withdraw",
        rng.choice(WALLET_PATHS),
        amount_minor,
        f"chaos-{kind}-{uuid.UUID(int=rng.getrandbits(128))}",
    )
    world.money_moves.append(move)
    await send_money_move(world, http, move)


async def _operate(world: World, http: httpx.AsyncClient, rng: random.Random, kind: str) -> None:
    if kind == "create_incoming_payment":
        await _create_incoming_payment(world, http, rng)
    elif kind == "complete_incoming_payment":
        await _complete_incoming_payment(world, http, rng)
    elif kind == "create_quote":
        await _create_quote(world, http, rng)
    elif kind == "create_outgoing_payment_from_quote":
        await _create_outgoing_payment_from_quote(world, http, rng)
    elif kind == "reuse_quote":
        await _create_outgoing_payment_from_quote(world, http, rng, reuse=True)
    elif kind.startswith("create_outgoing_payment_"):
        await _create_outgoing_payment_direct(world, http, rng, kind=kind)
    elif kind == "read_outgoing_payment":
        await _read_outgoing_payment(world, http, rng)
    else:
        await _money_move(world, http, rng, kind=kind)


async def client_loop(world: World, rng: random.Random, deadline_s: float) -> None:
    kinds, weights = list(OPERATION_WEIGHTS), list(OPERATION_WEIGHTS.values())
    limits = httpx.Limits(max_connections=4, max_keepalive_connections=4)
    async with httpx.AsyncClient(timeout=REQUEST_TIMEOUT_S, limits=limits) as http:
        while time.monotonic() < deadline_s:
            kind = rng.choices(kinds, weights)[0]
            before = sum(world.counts[kind][name] for name in ("server_error", "connection_error"))
            await _operate(world, http, rng, kind)
            after = sum(world.counts[kind][name] for name in ("server_error", "connection_error"))
            pause_s = AFTER_ERROR_PAUSE_S if after > before else THINK_TIME_S
            await asyncio.sleep(rng.uniform(*pause_s))


# --- the faults ------------------------------------------------------------------------------


@dataclass
class FaultCounts:
    worker_kills: int = 0
    worker_replacements: int = 0
    server_kills: int = 0
    server_restarts: int = 0
    postgres_restarts: int = 0
    log: list[str] = field(default_factory=list)


async def inject_faults(
    server: OpaseServer,
    cluster: PostgresCluster | None,
    rng: random.Random,
    deadline_s: float,
    counts: FaultCounts,
    started_s: float,
) -> None:
    """Faults one after another at random moments until the load ends. Every kind this
    database has comes at least once, first, in a random order."""
    kinds = ["kill_server"]
    if server.workers > 1:
        kinds.append("kill_worker")
    if cluster is not None:
        kinds.append("restart_postgres")
    plan = rng.sample(kinds, len(kinds))
    await asyncio.sleep(rng.uniform(*FIRST_FAULT_AFTER_S))
    # The planned faults come closer together and only need the load still running, so
    # that even a short run has each of them.
    while time.monotonic() < deadline_s - (0.0 if plan else FAULT_END_MARGIN_S):
        kind = plan.pop(0) if plan else rng.choices(kinds, [3, 4, 2][: len(kinds)])[0]
        at_s = time.monotonic() - started_s
        if kind == "kill_worker":
            killed, replaced = await asyncio.to_thread(server.kill_worker, rng)
            counts.worker_kills += killed
            counts.worker_replacements += replaced
            counts.log.append(f"{at_s:6.1f} s kill -9 of a worker (replaced: {replaced})")
        elif kind == "kill_server":
            await asyncio.to_thread(server.kill_all)
            counts.server_kills += 1
            down_s = rng.uniform(*SERVER_DOWN_S)
            await asyncio.sleep(down_s)
            await asyncio.to_thread(server.start)
            counts.server_restarts += 1
            counts.log.append(
                f"{at_s:6.1f} s kill -9 of the server, restarted after {down_s:.1f} s"
            )
        else:
            assert cluster is not None
            await asyncio.to_thread(cluster.restart_immediate)
            counts.postgres_restarts += 1
            counts.log.append(f"{at_s:6.1f} s PostgreSQL restart -m immediate")
        await asyncio.sleep(rng.uniform(*(PLANNED_FAULT_INTERVAL_S if plan else FAULT_INTERVAL_S)))


# --- setup -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Seeded:
    usd_asset_id: uuid.UUID
    wallet_ids: dict[str, uuid.UUID]


async def seed_database(settings: Settings) -> tuple[Seeded, ClientIdentity]:
    """Migrations, USD wallet addresses /w0../w3 and a client app whose key is stored here."""
    await upgrade(settings)
    app = build_app(settings)
    try:
        async with app.state.services.sessions() as session:
            asset = await create_asset(session, "USD", 2)
            wallet_ids = {}
            for path in WALLET_PATHS:
                wallet = await create_wallet_address(session, path, asset.id, f"Wallet {path}")
                wallet_ids[path] = wallet.id
            await session.commit()
        identity = await register_client(app)
    finally:
        await app.state.services.close()
    return Seeded(asset.id, wallet_ids), identity


async def admin_call(http: httpx.AsyncClient, method: str, url: str, body: Any) -> Any:
    response = await http.request(
        method, url, json=body, headers={"Authorization": f"Bearer {ADMIN_KEY}"}
    )
    if response.status_code not in (200, 201):
        raise ChaosError(f"{method} {url}: HTTP {response.status_code} {response.text}")
    return response.json()


async def prepare_world(
    settings: Settings, seeded: Seeded, identity: ClientIdentity, receiver: WebhookReceiver
) -> World:
    """Through the running server: the webhook endpoint, fees, funding, and the grants."""
    admin_url = settings.admin_url
    async with httpx.AsyncClient(timeout=REQUEST_TIMEOUT_S) as http:
        await admin_call(http, "PUT", f"{admin_url}/webhook", {"url": receiver.url})
        for kind, fee in (("sending", SENDING_FEE), ("receiving", RECEIVING_FEE)):
            await admin_call(
                http, "PUT", f"{admin_url}/assets/{seeded.usd_asset_id}/fees/{kind}", fee
            )
    # The grants, through the authorization server; the owner's consent to an outgoing
    # payment grant is given in the database, as the consent tests do.
    app = build_app(settings)
    try:
        async with httpx.AsyncClient(timeout=REQUEST_TIMEOUT_S) as http:
            client = ClientApp(http, identity, app, settings.public_url + WALLET_PATHS[0])
            incoming_token = await client.token(incoming_access(["create", "read", "complete"]))
            quote_token = await client.token(quote_access())
            outgoing_tokens = {}
            for path in WALLET_PATHS:
                limit_minor = LIMITED_DEBIT_MINOR if path == LIMITED_WALLET_PATH else None
                access = outgoing_access(
                    settings.public_url + path,
                    debitAmount=usd(limit_minor or UNLIMITED_DEBIT_MINOR),
                )
                outgoing_tokens[path] = (await client.interactive_token(access))["value"]
            sink = await client.incoming_payment(incoming_token)
    finally:
        await app.state.services.close()
    world = World(
        base_url=settings.public_url,
        admin_url=admin_url,
        identity=identity,
        incoming_token=incoming_token["value"],
        quote_token=quote_token["value"],
        outgoing_tokens=outgoing_tokens,
        wallet_ids=seeded.wallet_ids,
        sink_incoming_payment=sink["id"],
    )
    async with httpx.AsyncClient(timeout=REQUEST_TIMEOUT_S) as http:
        for path in WALLET_PATHS:
            move = MoneyMove("deposit", path, INITIAL_DEPOSIT_MINOR, f"chaos-initial-{path}")
            world.money_moves.append(move)
            if await send_money_move(world, http, move) != "ok":
                raise ChaosError(f"the initial deposit into {path} failed")
    world.counts.clear()  # the report counts the load only
    return world


# --- after the load --------------------------------------------------------------------------


async def resolve_money_moves(world: World) -> None:
    """Repeat every deposit and withdrawal whose answer was lost, with its key, until it
    has a definite one (the server is up and stable now)."""
    async with httpx.AsyncClient(timeout=REQUEST_TIMEOUT_S) as http:
        for move in world.money_moves:
            for _ in range(20):
                if move.outcome != "unknown":
                    break
                await send_money_move(world, http, move)
                if move.outcome == "unknown":
                    await asyncio.sleep(0.5)


@dataclass(frozen=True)
class Backlog:
    sending_payments: int
    pending_events: int
    unreported_expiries: int

    @property
    def empty(self) -> bool:
        return not (self.sending_payments or self.pending_events or self.unreported_expiries)


async def backlog(services: Services) -> Backlog:
    now = datetime.now(UTC)
    async with services.sessions() as session:
        sending = (
            await session.execute(
                sa.select(sa.func.count())
                .select_from(OutgoingPayment)
                .where(col(OutgoingPayment.state) == "sending")
            )
        ).scalar_one()
        pending = (
            await session.execute(
                sa.select(sa.func.count())
                .select_from(WebhookEvent)
                .where(col(WebhookEvent.status) == "pending")
            )
        ).scalar_one()
        capped_full = sa.and_(
            col(IncomingPayment.incoming_amount_minor).is_not(None),
            col(IncomingPayment.received_amount_minor)
            >= col(IncomingPayment.incoming_amount_minor),
        )
        unreported = (
            await session.execute(
                sa.select(sa.func.count())
                .select_from(IncomingPayment)
                .where(
                    col(IncomingPayment.expires_at) <= now,
                    col(IncomingPayment.expiry_reported_at).is_(None),
                    col(IncomingPayment.completed_at).is_(None),
                    sa.not_(capped_full),
                )
            )
        ).scalar_one()
    return Backlog(sending, pending, unreported)


async def wait_until_settled(services: Services, world: World) -> tuple[float, Backlog]:
    """Bounded poll: every short-lived incoming payment has expired, no payment is sending,
    no expiry is unreported and the outbox has nothing pending. (seconds waited, backlog)."""
    started_s = time.monotonic()
    expiries_over_s = (world.short_expiry_latest - datetime.now(UTC)).total_seconds() + 1.5
    deadline_s = started_s + SETTLE_TIMEOUT_S + max(0.0, expiries_over_s)
    while True:
        found = await backlog(services)
        expired_all = datetime.now(UTC) > world.short_expiry_latest + timedelta(seconds=1.5)
        if expired_all and found.empty:
            return time.monotonic() - started_s, found
        if time.monotonic() > deadline_s:
            return time.monotonic() - started_s, found
        await asyncio.sleep(POLL_S)


def _examples(items: list[str]) -> str:
    shown = "; ".join(items[:EXAMPLES_MAX])
    return shown + (f"; and {len(items) - EXAMPLES_MAX} more" if len(items) > EXAMPLES_MAX else "")


async def check_state(
    services: Services,
    seeded: Seeded,
    world: World,
    receiver: WebhookReceiver,
    report: ChaosReport,
) -> None:
    """Compare the stored state with what must hold; fill the report's audit figures and
    name every problem."""
    figures: dict[str, int] = {}
    problems = report.problems

    def finding(name: str, found: list[str], what: str) -> None:
        figures[name] = len(found)
        if found:
            problems.append(f"{what} ({len(found)}): {_examples(found)}")

    async with services.sessions() as session:
        # The ledger: the running sums against the transfer history, double entry per asset.
        differences = await audit(session)
        finding(
            "ledger_audit_differences",
            [
                f"account {d.account_id} {d.check}: found {d.found_minor}, "
                f"expected {d.expected_minor}"
                for d in differences
            ],
            "ledger audit differences",
        )
        accounts = (await session.execute(sa.select(LedgerAccount))).scalars().all()
        pending_minor = sum(a.debits_pending_minor + a.credits_pending_minor for a in accounts)
        figures["ledger_pending_minor"] = pending_minor
        if pending_minor:
            problems.append(f"{pending_minor} minor units are still reserved (pending)")

        payments = (
            await session.execute(
                sa.select(OutgoingPayment, Quote).join(
                    Quote, col(Quote.id) == col(OutgoingPayment.quote_id)
                )
            )
        ).all()
        incoming = {
            row.id: row for row in (await session.execute(sa.select(IncomingPayment))).scalars()
        }
        spendings = (await session.execute(sa.select(GrantSpending))).scalars().all()
        events = (await session.execute(sa.select(WebhookEvent))).scalars().all()
        used_quote_count = (
            await session.execute(
                sa.select(sa.func.count()).select_from(Quote).where(col(Quote.used_at).is_not(None))
            )
        ).scalar_one()
        balances_minor = {}
        for path, wallet_id in seeded.wallet_ids.items():
            account = await wallet_account(session, wallet_id)
            balances_minor[path] = account.credits_posted_minor - account.debits_posted_minor
        fees = await fees_account(session, seeded.usd_asset_id)
        fees_minor = fees.credits_posted_minor - fees.debits_posted_minor

    # Every payment ended, and a failed one says why.
    states = Counter(payment.state for payment, _ in payments)
    report.payments_completed = states.get("completed", 0)
    report.payments_failed = states.get("failed", 0)
    report.payments_resumed = sum(payment.attempts > 0 for payment, _ in payments)
    report.failure_reasons = dict(
        Counter(p.failure_reason or "" for p, _ in payments if p.state == "failed")
    )
    finding(
        "payments_not_finished",
        [
            f"{p.id} {p.state} (attempts {p.attempts}, next {p.next_attempt_at})"
            for p, _ in payments
            if p.state not in ("completed", "failed")
        ],
        "outgoing payments neither completed nor failed",
    )
    finding(
        "payments_failed_without_reason",
        [str(p.id) for p, _ in payments if p.state == "failed" and not p.failure_reason],
        "failed outgoing payments without a reason",
    )
    finding(
        "payments_sent_amount_mismatches",
        [
            f"{p.id} {p.state}: sentAmount {p.sent_amount_minor}"
            for p, q in payments
            if p.sent_amount_minor
            != (q.debit_amount_minor - q.sending_fee_minor if p.state == "completed" else 0)
        ],
        "outgoing payments whose sentAmount is not the debit less the sending fee (0 if failed)",
    )
    finding(
        "quotes_used_without_payment",
        [f"{used_quote_count} quotes used, {len(payments)} payments"]
        if used_quote_count != len(payments)
        else [],
        "quotes used and payments differ",
    )

    # Money: what the clients moved in and out, and what the completed payments moved.
    net_deposits_minor: Counter[str] = Counter()
    unresolved = []
    for move in world.money_moves:
        if move.outcome == "done":
            sign = 1 if move.kind == "deposit" else -1
            net_deposits_minor[move.wallet_path] += sign * move.amount_minor
        elif move.outcome == "unknown":
            unresolved.append(f"{move.kind} {move.idempotency_key}")
    finding("money_moves_unresolved", unresolved, "deposits or withdrawals without an answer")
    wallet_by_id = {wallet_id: path for path, wallet_id in seeded.wallet_ids.items()}
    expected_minor = Counter(net_deposits_minor)
    expected_fees_minor = 0
    received_by_incoming: Counter[uuid.UUID] = Counter()
    spent_by_grant: defaultdict[uuid.UUID, list[int]] = defaultdict(lambda: [0, 0])
    for payment, quote in payments:
        if payment.state in ("completed", "sending"):
            spent_by_grant[payment.grant_id][0] += quote.debit_amount_minor
            spent_by_grant[payment.grant_id][1] += quote.receive_amount_minor
        if payment.state != "completed":
            continue
        expected_minor[wallet_by_id[payment.wallet_address_id]] -= quote.debit_amount_minor
        receiver_wallet = incoming[quote.incoming_payment_id].wallet_address_id
        expected_minor[wallet_by_id[receiver_wallet]] += quote.receive_amount_minor
        expected_fees_minor += quote.sending_fee_minor + quote.receiving_fee_minor
        received_by_incoming[quote.incoming_payment_id] += quote.receive_amount_minor
    figures["units_created_or_lost_minor"] = (
        sum(balances_minor.values()) + fees_minor - sum(net_deposits_minor.values())
    )
    if figures["units_created_or_lost_minor"]:
        problems.append(
            f"wallets hold {sum(balances_minor.values())} and fees {fees_minor} minor units, "
            f"but the clients deposited {sum(net_deposits_minor.values())} net"
        )
    finding(
        "wallet_balance_mismatches",
        [
            f"{path}: balance {balances_minor[path]}, expected {expected_minor[path]}"
            for path in WALLET_PATHS
            if balances_minor[path] != expected_minor[path]
        ]
        + (
            [f"fees account: {fees_minor}, expected {expected_fees_minor}"]
            if fees_minor != expected_fees_minor
            else []
        ),
        "balances differ from the deposits, withdrawals and completed payments",
    )
    finding(
        "incoming_received_mismatches",
        [
            f"{payment_id}: receivedAmount {row.received_amount_minor}, completed payments "
            f"into it {received_by_incoming[payment_id]}"
            for payment_id, row in incoming.items()
            if row.received_amount_minor != received_by_incoming[payment_id]
            or (
                row.incoming_amount_minor is not None
                and row.received_amount_minor > row.incoming_amount_minor
            )
        ],
        "incoming payments whose receivedAmount differs from their completed payments",
    )
    finding(
        "grant_spent_mismatches",
        [
            f"grant {s.grant_id}: spent debit {s.debit_spent_minor} receive "
            f"{s.receive_spent_minor}, payments {spent_by_grant[s.grant_id]}"
            for s in spendings
            if [s.debit_spent_minor, s.receive_spent_minor] != spent_by_grant[s.grant_id]
        ],
        "grants whose spent sums differ from their completed payments",
    )

    # Webhooks: every event delivered and received; each payment's events present once.
    report.incoming_payments = len(incoming)
    report.webhook_events = dict(Counter(event.type for event in events))
    report.webhook_events_delivered = sum(event.status == "delivered" for event in events)
    with receiver.lock:
        taken_ids = set(receiver.taken_ids)
        report.webhook_sends_received = receiver.sends_received
        report.webhook_sends_refused = receiver.sends_refused
        malformed = receiver.malformed
    finding(
        "webhook_events_not_delivered",
        [f"{e.id} {e.type} {e.status} ({e.last_error})" for e in events if e.status != "delivered"],
        "webhook events not delivered",
    )
    outbox_ids = {str(event.id) for event in events}
    finding(
        "webhook_events_lost",
        [f"{e.id} {e.type}" for e in events if str(e.id) not in taken_ids],
        "outbox events the webhook receiver never took",
    )
    finding(
        "webhook_events_unknown_received",
        sorted(taken_ids - outbox_ids) + ([f"{malformed} malformed sends"] if malformed else []),
        "webhook sends of events the outbox does not hold",
    )
    events_by_subject: defaultdict[uuid.UUID, Counter[str]] = defaultdict(Counter)
    for event in events:
        if event.type.startswith(("outgoing_payment.", "incoming_payment.")):
            events_by_subject[last_segment_uuid(event.data["id"])][event.type] += 1
    wrong_payment_events = []
    for payment, _ in payments:
        found = events_by_subject[payment.id]
        wanted = Counter({"outgoing_payment.created": 1, f"outgoing_payment.{payment.state}": 1})
        if found != wanted:
            wrong_payment_events.append(f"{payment.id} {payment.state}: {dict(found)}")
    finding("payment_event_mismatches", wrong_payment_events, "outgoing payments with wrong events")
    wrong_incoming_events = []
    for payment_id, row in incoming.items():
        found = events_by_subject[payment_id]
        if found["incoming_payment.created"] != 1:
            wrong_incoming_events.append(f"{payment_id}: {dict(found)}")
        elif found["incoming_payment.completed"] != (row.completed_at is not None):
            wrong_incoming_events.append(
                f"{payment_id} completed {row.completed_at}: {dict(found)}"
            )
        elif found["incoming_payment.expired"] != (
            # Only the short-lived ones expire, all before the state settled.
            row.completed_at is None and row.expires_at <= world.short_expiry_latest
        ):
            wrong_incoming_events.append(
                f"{payment_id} expires {row.expires_at}, completed {row.completed_at}: "
                f"{dict(found)}"
            )
    finding(
        "incoming_event_mismatches", wrong_incoming_events, "incoming payments with wrong events"
    )
    finding("unexpected_responses", world.unexpected, "unexpected responses")
    report.audit = figures


# --- one run ---------------------------------------------------------------------------------


@contextmanager
def _timer(report: ChaosReport) -> Iterator[None]:
    started_s = time.monotonic()
    try:
        yield
    finally:
        report.wall_s = time.monotonic() - started_s


async def run_chaos(config: ChaosConfig) -> ChaosReport:
    """One run on one database; the report (its `clean` is the verdict). ChaosError when the
    run itself could not be carried out; PostgresUnavailable without PostgreSQL binaries."""
    workers = 2 if config.database == "postgresql" else 1
    report = ChaosReport(config.database, config.seed, config.duration_s, workers)
    with _timer(report):
        if config.database == "postgresql":
            async with postgres_database() as (database_url, cluster):
                await _run(config, report, database_url, cluster)
        else:
            await _run(config, report, "", None)
    return report


async def _run(
    config: ChaosConfig,
    report: ChaosReport,
    database_url: str,
    cluster: PostgresCluster | None,
) -> None:
    rng = random.Random(config.seed)
    config = ChaosConfig(config.database, config.duration_s, config.seed, config.work_dir.resolve())
    config.work_dir.mkdir(parents=True, exist_ok=True)
    # A fresh database and log at every run, also in a work dir kept from an earlier one.
    shutil.rmtree(config.work_dir / "data", ignore_errors=True)
    (config.work_dir / "server.log").unlink(missing_ok=True)
    port = free_port()
    settings = Settings(
        public_url=f"http://{HOST}:{port}",
        port=port,
        data_dir=config.work_dir / "data",
        database_url=database_url,
        admin_port=free_port(),
        admin_api_keys=[ADMIN_KEY],
    )
    seeded, identity = await seed_database(settings)
    server = OpaseServer(settings, report.server_workers, config.work_dir / "server.log")
    faults = FaultCounts()
    with WebhookReceiver(config.seed) as receiver:
        try:
            await asyncio.to_thread(server.start)
            world = await prepare_world(settings, seeded, identity, receiver)
            started_s = time.monotonic()
            deadline_s = started_s + config.duration_s
            client_rngs = [random.Random(rng.getrandbits(64)) for _ in range(CLIENT_TASK_COUNT)]
            fault_rng = random.Random(rng.getrandbits(64))
            await asyncio.gather(
                inject_faults(server, cluster, fault_rng, deadline_s, faults, started_s),
                *(client_loop(world, client_rng, deadline_s) for client_rng in client_rngs),
            )
            # A clean restart, as after a deployment, then let the backlog drain.
            await asyncio.to_thread(server.stop)
            await asyncio.to_thread(server.start)
            faults.server_restarts += 1
            await resolve_money_moves(world)
            services = Services.create(settings)
            try:
                report.settle_s, left = await wait_until_settled(services, world)
            finally:
                await services.close()
            await asyncio.to_thread(server.stop)
        except BaseException:
            await asyncio.to_thread(server.stop)
            raise
        # The server is stopped: nothing changes any more while the state is checked.
        services = Services.create(settings)
        try:
            await check_state(services, seeded, world, receiver, report)
        finally:
            await services.close()
    if not left.empty:
        report.problems.append(f"not settled within {SETTLE_TIMEOUT_S:.0f} s: {left}")
    report.operations = {kind: dict(counts) for kind, counts in sorted(world.counts.items())}
    report.worker_kills = faults.worker_kills
    report.worker_replacements = faults.worker_replacements
    report.server_kills = faults.server_kills
    report.server_restarts = faults.server_restarts
    report.postgres_restarts = faults.postgres_restarts
    report.fault_log = faults.log
    if not report.clean:
        report.problems.append(f"server log tail:\n{tail(server.log_path)}")
