"""A PostgreSQL server for the test session (a pytest plugin: register with `pytest_plugins`).

`postgres_url` is `OPASE_TEST_PG_URL` when set; otherwise a throwaway cluster is made with
the local PostgreSQL binaries (Debian's /usr/lib/postgresql/<version>/bin), listening on
127.0.0.1 only, with durability off for speed, and removed after the session. Without
binaries the tests that need it are skipped, saying why.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.servers import free_port

PG_URL_ENV = "OPASE_TEST_PG_URL"
SUPERUSER = "postgres"
START_TIMEOUT_S = 60
# initdb and postgres refuse to run as root; root runs them as this user.
UNPRIVILEGED_USER = "nobody"


def _postgres_bin_dir() -> Path | None:
    """The newest installed server's binaries, or None."""
    candidates = [Path(p) for p in glob.glob("/usr/lib/postgresql/*/bin")]
    candidates = [p for p in candidates if (p / "initdb").is_file() and (p / "pg_ctl").is_file()]
    if not candidates:
        on_path = shutil.which("initdb")
        return Path(on_path).parent if on_path and shutil.which("pg_ctl") else None
    return max(candidates, key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)


class PostgresUnavailable(Exception):
    """No server can be had here; the message says what is missing."""


def _as_server_user() -> list[str]:
    if os.geteuid() != 0:
        return []
    runuser = shutil.which("runuser")
    if runuser:
        return [runuser, "-u", UNPRIVILEGED_USER, "--"]
    setpriv = shutil.which("setpriv")
    if setpriv:
        entry = pwd.getpwnam(UNPRIVILEGED_USER)
        return [setpriv, f"--reuid={entry.pw_uid}", f"--regid={entry.pw_gid}", "--clear-groups"]
    raise PostgresUnavailable("running as root without runuser or setpriv")


def _run(command: list[str], cwd: Path) -> None:
    completed = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        raise RuntimeError(
            f"{' '.join(command)} failed ({completed.returncode}):\n"
            f"{completed.stdout}\n{completed.stderr}"
        )


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A superuser `postgresql://` URL of a server tests may create databases on."""
    from_env = os.environ.get(PG_URL_ENV)
    if from_env:
        yield from_env
        return
    try:
        with throwaway_postgres() as url:
            yield url
    except PostgresUnavailable as exc:
        pytest.skip(f"PostgreSQL tests need {PG_URL_ENV} or a local server: {exc}")


@contextmanager
def throwaway_postgres(*, durable: bool = False) -> Iterator[str]:
    """A new cluster on 127.0.0.1, removed on exit. Tests run it without durability (fsync
    off) for speed; benchmarks ask for a durable one, as a real deployment runs."""
    bin_dir = _postgres_bin_dir()
    if bin_dir is None:
        raise PostgresUnavailable("no PostgreSQL server binaries (initdb, pg_ctl)")
    as_server_user = _as_server_user()
    root = Path(tempfile.mkdtemp(prefix="opase-pg-"))
    if as_server_user:
        entry = pwd.getpwnam(UNPRIVILEGED_USER)
        os.chown(root, entry.pw_uid, entry.pw_gid)
    data_dir = root / "data"
    port = free_port()
    durability = (
        "" if durable else "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
    )
    server_options = (
        f"-c listen_addresses=127.0.0.1 -p {port} -k {root} {durability}-c max_connections=200"
    )
    pg_ctl = [*as_server_user, str(bin_dir / "pg_ctl"), "-D", str(data_dir)]
    try:
        _run(
            [
                *as_server_user,
                str(bin_dir / "initdb"),
                "-D",
                str(data_dir),
                "-U",
                SUPERUSER,
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ],
            cwd=root,
        )
        _run(
            [
                *pg_ctl,
                "-l",
                str(root / "server.log"),
                "-o",
                server_options,
                "-w",
                "-t",
                str(START_TIMEOUT_S),
                "start",
            ],
            cwd=root,
        )
    except BaseException:
        log = root / "server.log"
        if log.is_file():
            print(log.read_text())
        shutil.rmtree(root, ignore_errors=True)
        raise
    try:
        yield f"postgresql://{SUPERUSER}@127.0.0.1:{port}/postgres"
    finally:
        # immediate: nothing in it is worth a clean shutdown.
        subprocess.run(
            [*pg_ctl, "-m", "immediate", "stop"], cwd=root, capture_output=True, check=False
        )
        shutil.rmtree(root, ignore_errors=True)
