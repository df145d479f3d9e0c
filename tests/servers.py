"""Start opase the way a user does (a subprocess on loopback) and stop it cleanly."""

from __future__ import annotations

import json
import os
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


def free_port_pair() -> int:
    """A port P such that P, P+1 (the two ASEs) and P+100, P+101 (their admin APIs) are
    free on 127.0.0.1."""
    for _ in range(50):
        with socket.socket() as first:
            first.bind(("127.0.0.1", 0))
            port = int(first.getsockname()[1])
        if port + 101 <= 65535 and all(_free(port + offset) for offset in (0, 1, 100, 101)):
            return port
    raise RuntimeError("no free port set on 127.0.0.1")


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
