"""Local transfers per second through the ledger, on SQLite and on PostgreSQL, from several
worker processes at once (as several uvicorn workers would write).

Each worker moves small random amounts between random pairs of funded wallet accounts, one
transfer per transaction, for a fixed time. Afterwards the audit must be clean and the total
of the wallet balances unchanged: a fast figure that lost money would be worthless.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from opase import ledger
from opase.services import Services
from opase.settings import Settings
from opase.storage.migrate import upgrade
from opase.wallets.directory import create_asset, create_wallet_address, wallet_address_id_by_path
from tests.postgres_server import PostgresUnavailable, throwaway_postgres

ACCOUNT_COUNT = 32
OPENING_BALANCE_MINOR = 10**12
TRANSFER_AMOUNT_MINOR_MAX = 100


async def _seed(settings: Settings) -> list[str]:
    await upgrade(settings)
    services = Services.create(settings)
    try:
        async with services.sessions() as session:
            asset = await create_asset(session, "USD", 2)
            account_ids = []
            for index in range(ACCOUNT_COUNT):
                wallet = await create_wallet_address(session, f"/bench-{index}", asset.id, None)
                await ledger.deposit(session, wallet.id, OPENING_BALANCE_MINOR, f"open-{index}")
                account_ids.append(str((await ledger.wallet_account(session, wallet.id)).id))
            await session.commit()
        return account_ids
    finally:
        await services.close()


async def _work(settings: Settings, account_ids: list[str], duration_s: float) -> list[float]:
    services = Services.create(settings)
    latencies_s = []
    ids = [uuid.UUID(a) for a in account_ids]
    try:
        deadline_s = time.monotonic() + duration_s
        while time.monotonic() < deadline_s:
            debit, credit = random.sample(ids, 2)
            started_s = time.perf_counter()
            async with services.sessions() as session:
                await ledger.transfer(
                    session,
                    debit_account_id=debit,
                    credit_account_id=credit,
                    amount_minor=random.randint(1, TRANSFER_AMOUNT_MINOR_MAX),
                    idempotency_key=f"bench-{uuid.uuid4()}",
                )
                await session.commit()
            latencies_s.append(time.perf_counter() - started_s)
    finally:
        await services.close()
    return latencies_s


def _worker(settings_json: str, account_ids: list[str], duration_s: float) -> list[float]:
    settings = Settings.model_validate_json(settings_json)
    return asyncio.run(_work(settings, account_ids, duration_s))


async def _check(settings: Settings) -> tuple[int, int]:
    """(audit difference count, total wallet balance)."""
    services = Services.create(settings)
    try:
        async with services.sessions() as session:
            differences = await ledger.audit(session)
            total_minor = 0
            for index in range(ACCOUNT_COUNT):
                wallet_id = await wallet_address_id_by_path(session, f"/bench-{index}")
                total_minor += await ledger.balance_minor(session, wallet_id)
        return len(differences), total_minor
    finally:
        await services.close()


def run_backend(name: str, settings: Settings, workers: int, duration_s: float) -> dict[str, Any]:
    account_ids = asyncio.run(_seed(settings))
    context = multiprocessing.get_context("spawn")
    settings_json = settings.model_dump_json()
    started_s = time.monotonic()
    with context.Pool(workers) as pool:
        results = pool.starmap(_worker, [(settings_json, account_ids, duration_s)] * workers)
    elapsed_s = time.monotonic() - started_s
    latencies_ms = sorted(s * 1000 for r in results for s in r)
    difference_count, total_minor = asyncio.run(_check(settings))
    return {
        "backend": name,
        "workers": workers,
        "transfers": len(latencies_ms),
        "transfers_per_s": len(latencies_ms) / duration_s,
        "p50_ms": statistics.median(latencies_ms),
        "p99_ms": latencies_ms[int(len(latencies_ms) * 0.99) - 1],
        "elapsed_s": elapsed_s,
        "audit_clean": difference_count == 0,
        "money_conserved": total_minor == ACCOUNT_COUNT * OPENING_BALANCE_MINOR,
    }


@contextmanager
def _backends(tmp: Path) -> Iterator[list[tuple[str, Settings]]]:
    chosen = [("SQLite", Settings(data_dir=tmp / "sqlite", database_url=""))]
    try:
        with throwaway_postgres(durable=True) as url:
            chosen.append(("PostgreSQL", Settings(data_dir=tmp / "pg", database_url=url)))
            yield chosen
    except PostgresUnavailable as exc:
        print(f"# PostgreSQL skipped: {exc}")
        yield chosen


def run(workers: int, duration_s: float) -> list[dict[str, Any]]:
    with (
        tempfile.TemporaryDirectory(prefix="opase-bench-ledger-") as tmp,
        _backends(Path(tmp)) as backends,
    ):
        return [run_backend(name, settings, workers, duration_s) for name, settings in backends]


def render(results: list[dict[str, Any]]) -> str:
    lines = [
        "ledger        | workers | transfers/s | p50 ms | p99 ms | audit | money",
        "--------------+---------+-------------+--------+--------+-------+----------",
    ]
    for r in results:
        lines.append(
            f"{r['backend']:<13} | {r['workers']:>7} | {r['transfers_per_s']:>11,.0f} | "
            f"{r['p50_ms']:>6.2f} | {r['p99_ms']:>6.2f} | {'clean' if r['audit_clean'] else 'DIRTY'} | "
            f"{'conserved' if r['money_conserved'] else 'LOST'}"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    print(render(run(workers=2, duration_s=5)))
