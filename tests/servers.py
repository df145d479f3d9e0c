"""Start opase the way a user does (a subprocess on loopback) and stop it cleanly."""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SANDBOX_START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0


PORT_FLOOR = 10_000
_handed_out: set[int] = set()


def _port_range() -> range:
    """The ports this process hands out: below the kernel's ephemeral range, where client
    connections take their local ports (so none can take a server's port between the check
    here and the server's bind, or while a killed server is down), and a slice of that per
    pytest-xdist worker, so that two workers never pick the same port."""
    try:
        text = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text()
        ceiling = int(text.split()[0])
    except (OSError, ValueError, IndexError):
        ceiling = 32_768
    ceiling = max(ceiling, PORT_FLOOR + 2_000)
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    index = int(worker) if worker.isdigit() else 0
    count = max(int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")), index + 1)
    size = (ceiling - PORT_FLOOR) // count
    return range(PORT_FLOOR + index * size, PORT_FLOOR + (index + 1) * size)


def free_port(offsets: tuple[int, ...] = (0,)) -> int:
    """A port P such that P + each offset is free on 127.0.0.1 and was never handed out
    before in this process (a port chosen early may be bound only later)."""
    ports = _port_range()
    chooser = random.SystemRandom()
    for _ in range(200):
        port = chooser.randrange(ports.start, ports.stop - max(offsets))
        wanted = [port + offset for offset in offsets]
        if not _handed_out.intersection(wanted) and all(_free(p) for p in wanted):
            _handed_out.update(wanted)
            return port
    raise RuntimeError(f"no free port set on 127.0.0.1 in {ports}")


def free_port_pair() -> int:
    """A port P such that P, P+1 (the two ASEs) and P+100, P+101 (their admin APIs) are
    free on 127.0.0.1."""
    return free_port((0, 1, 100, 101))


def _free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@dataclass
class RunningSandbox:
    process: subprocess.Popen[str]
    manifest: dict[str, Any]
    started_in_s: float

    def stop(self) -> tuple[int, str]:
        """SIGINT (Ctrl-C), then the exit code and everything the sandbox printed."""
        self.process.send_signal(signal.SIGINT)
        try:
            output, _ = self.process.communicate(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            output, _ = self.process.communicate()
        return self.process.returncode, output


@contextmanager
def sandbox(tmp_dir: Path) -> Iterator[RunningSandbox]:
    port = free_port_pair()
    manifest_path = tmp_dir / "manifest.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPASE_")}
    started_s = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-m", "opase", "sandbox", "--port", str(port),
         "--data-dir", str(tmp_dir / "data"), "--manifest", str(manifest_path)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )  # fmt: skip
    running = None
    try:
        while not manifest_path.exists():
            if process.poll() is not None:
                raise RuntimeError(f"sandbox exited: {process.communicate()[0]}")
            if time.monotonic() - started_s > SANDBOX_START_TIMEOUT_S:
                raise RuntimeError("sandbox did not start in time")
            time.sleep(0.02)
        running = RunningSandbox(
            process, json.loads(manifest_path.read_text()), time.monotonic() - started_s
        )
        yield running
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
