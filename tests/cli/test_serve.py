"""`opase serve --workers N` (`opase.cli.serve`): a burst of keep-alive connections opened at
once is spread over the workers (with one shared socket, the first worker awake takes them
all), and a worker killed with SIGKILL is replaced on its own socket."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.servers import free_port_pair

pytestmark = pytest.mark.slow  # starts servers: one xdist worker runs these in turn

REPO_ROOT = Path(__file__).resolve().parents[2]
WORKERS = 2
CONNECTIONS = 16
START_TIMEOUT_S = 30.0


@pytest.fixture
def server() -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    port = free_port_pair()
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.cli.pid_app", str(port), str(WORKERS)],
        cwd=REPO_ROOT, env=env, start_new_session=True,
    )  # fmt: skip
    try:
        deadline_s = time.monotonic() + START_TIMEOUT_S
        while len(_pids_of_burst(port)) < 1:
            assert time.monotonic() < deadline_s, "the server did not start"
            time.sleep(0.2)
        yield port, process
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _pids_of_burst(port: int) -> list[int]:
    """The worker that answered on each of CONNECTIONS connections opened at once."""

    async def one() -> int | None:
        # A client per connection: each request on a connection of its own.
        async with httpx.AsyncClient(trust_env=False, timeout=5) as client:
            try:
                return int((await client.get(f"http://127.0.0.1:{port}/")).text)
            except httpx.HTTPError:
                return None

    async def burst() -> list[int]:
        answers = await asyncio.gather(*(one() for _ in range(CONNECTIONS)))
        return [pid for pid in answers if pid is not None]

    return asyncio.run(burst())


def test_a_burst_of_connections_reaches_every_worker(
    server: tuple[int, subprocess.Popen[bytes]],
) -> None:
    port, _ = server
    pids = _pids_of_burst(port)
    assert len(pids) == CONNECTIONS
    # The kernel hashes connections over the sockets: all 16 on one has odds of 2 in 65536.
    assert len(set(pids)) == WORKERS, pids


def test_a_killed_worker_is_replaced_on_its_socket(
    server: tuple[int, subprocess.Popen[bytes]],
) -> None:
    port, _ = server
    before = set(_pids_of_burst(port))
    assert len(before) == WORKERS
    victim = min(before)
    os.kill(victim, signal.SIGKILL)
    deadline_s = time.monotonic() + START_TIMEOUT_S
    while True:
        pids = _pids_of_burst(port)
        if len(pids) == CONNECTIONS and len(set(pids)) == WORKERS and victim not in pids:
            break  # every connection answered, by the survivor and the replacement
        assert time.monotonic() < deadline_s, f"no replacement for worker {victim}: {pids}"
        time.sleep(0.3)
