"""How long `opase sandbox` takes from launch to answering a wallet address GET: the
time a developer waits after typing the command (the target is under 2 s)."""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from tests.servers import free_port_pair

STARTUP_TIMEOUT_S = 30.0
POLL_INTERVAL_S = 0.01


def sandbox_startup_s() -> float:
    """One launch: seconds until both ASEs answer their first wallet address."""
    port = free_port_pair()
    with tempfile.TemporaryDirectory(prefix="opase-bench-sandbox-") as tmp:
        started_s = time.monotonic()
        process = subprocess.Popen(
            [sys.executable, "-m", "opase", "sandbox", "--port", str(port),
             "--data-dir", str(Path(tmp) / "data")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            for url in (f"http://127.0.0.1:{port}/alice", f"http://127.0.0.1:{port + 1}/carol"):
                while True:
                    try:
                        if httpx.get(url, timeout=1).status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    if time.monotonic() - started_s > STARTUP_TIMEOUT_S:
                        raise RuntimeError("the sandbox did not answer in time")
                    time.sleep(POLL_INTERVAL_S)
            return time.monotonic() - started_s
        finally:
            process.terminate()
            process.wait(timeout=15)


def sandbox_startup_figures(launches: int = 3) -> dict[str, float]:
    samples = [sandbox_startup_s() for _ in range(launches)]
    return {"median_s": statistics.median(samples), "max_s": max(samples)}
