"""The servers under test, started as a user starts them: opase with `opase serve --workers N`
(one SO_REUSEPORT socket per worker, `opase.cli.serve`), the bare baseline with the same
serving code (`python -m tests.bench.bare_app`), so the two differ only in the app.

`running(spec, workers, work_dir, database_url)` prepares the server's data (opase:
migrations, wallet addresses, a client and its grant, by `python -m tests.bench.seed` with
the server's own environment; the client's credentials land in `credentials_path`), starts
it in its own process group, waits until it answers its readiness request, and on leaving,
even after an error, Ctrl-C or SIGTERM, stops it: SIGTERM, then SIGKILL after a timeout.
The servers get only the `OPASE_*` settings set here: inherited ones (a database URL, a
config file) are dropped, so the benchmark never writes to a configured database.
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tests.bench.workloads import BARE, JSON_HEADERS, OPASE, WALLET_ADDRESS_PATH

REPO_ROOT = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
PREPARE_TIMEOUT_S = 120.0
LOG_TAIL_CHARS = 4000


@dataclass(frozen=True)
class ServerSpec:
    name: str
    command: tuple[str, ...]
    """The command after `python -m`; `--host`, `--port` and `--workers` are added."""
    ready_path: str
    """A path that answers 200 once the server (and its data) is ready."""
    ready_headers: dict[str, str] = field(default_factory=dict)
    seed: bool = False
    """Run `python -m tests.bench.seed` (migrations + one wallet address) before starting."""


SERVERS: dict[str, ServerSpec] = {
    BARE: ServerSpec(BARE, ("tests.bench.bare_app",), "/", JSON_HEADERS),
    OPASE: ServerSpec(
        OPASE, ("opase", "serve", "--no-migrate"), WALLET_ADDRESS_PATH, JSON_HEADERS, seed=True
    ),
}


@dataclass(frozen=True)
class RunningServer:
    spec: ServerSpec
    host: str
    port: int
    pid: int
    log_path: Path
    env: dict[str, str]
    """The server's environment: what `tests.bench.seed` and the runner's database reads use."""
    credentials_path: Path | None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"


class ServerError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


def server_command(spec: ServerSpec, port: int, workers: int) -> list[str]:
    return [
        sys.executable, "-m", *spec.command,
        "--host", HOST, "--port", str(port), "--workers", str(workers),
    ]  # fmt: skip


def server_env(data_dir: Path, public_url: str, database_url: str | None = None) -> dict[str, str]:
    # Inherited OPASE_* settings (a database URL, a config file) must not point the seeding
    # at a real database: the benchmark's server has only the settings set here.
    env = {name: value for name, value in os.environ.items() if not name.startswith("OPASE_")}
    env["OPASE_DATA_DIR"] = str(data_dir)
    env["OPASE_PUBLIC_URL"] = public_url
    if database_url:
        env["OPASE_DATABASE_URL"] = database_url
    # `tests.bench.*` must be importable by the bare app's workers and the seed script.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    return env


def _tail(path: Path) -> str:
    try:
        return path.read_text(errors="replace")[-LOG_TAIL_CHARS:]
    except OSError:
        return ""


def seed(env: dict[str, str], log_path: Path, credentials_path: Path) -> str:
    """Migrations and the seeded data, in a process with the server's environment."""
    run = subprocess.run(
        [sys.executable, "-m", "tests.bench.seed", str(credentials_path)],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True,
        timeout=PREPARE_TIMEOUT_S, check=False,
    )  # fmt: skip
    log_path.write_text(run.stdout + run.stderr)
    if run.returncode != 0:
        raise ServerError(f"seeding opase failed ({run.returncode}):\n{_tail(log_path)}")
    return run.stdout.strip()


def _answers(port: int, path: str, headers: dict[str, str]) -> int | None:
    connection = http.client.HTTPConnection(HOST, port, timeout=2)
    try:
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        response.read()
        return response.status
    except OSError:
        return None
    finally:
        connection.close()


def wait_ready(process: subprocess.Popen[bytes], spec: ServerSpec, port: int, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    status = None
    while time.monotonic() < deadline:
        if _exited(process.pid):
            raise ServerError(f"{spec.name} exited while starting:\n{_tail(log)}")
        status = _answers(port, spec.ready_path, spec.ready_headers)
        if status == 200:
            return
        time.sleep(0.1)
    raise ServerError(
        f"{spec.name} did not answer GET {spec.ready_path} with 200 within {START_TIMEOUT_S} s "
        f"(last status {status}):\n{_tail(log)}"
    )


def _exited(pid: int) -> bool:
    """Whether the process has exited, without reaping it: its id, which is also its
    process group's, stays ours until `wait()`."""
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM (uvicorn shuts down its workers), then SIGKILL the process group if need be."""
    if process.returncode is None and not _exited(process.pid):
        process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while not _exited(process.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
    if process.returncode is None:
        # The server runs in its own session: its group holds only processes it started,
        # and the unreaped leader keeps the group's id from being reused.
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    process.wait()


@contextmanager
def running(
    spec: ServerSpec, workers: int, work_dir: Path, database_url: str | None = None
) -> Iterator[RunningServer]:
    port = free_port()
    data_dir = work_dir / spec.name
    data_dir.mkdir(parents=True, exist_ok=True)
    env = server_env(data_dir, f"http://{HOST}:{port}", database_url)
    credentials_path = None
    if spec.seed:
        credentials_path = work_dir / f"{spec.name}-credentials.json"
        seed(env, work_dir / f"{spec.name}-seed.log", credentials_path)
    log_path = work_dir / f"{spec.name}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            server_command(spec, port, workers),
            cwd=REPO_ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
            start_new_session=True,
        )  # fmt: skip
    try:
        wait_ready(process, spec, port, log_path)
        yield RunningServer(spec, HOST, port, process.pid, log_path, env, credentials_path)
    finally:
        stop(process)
