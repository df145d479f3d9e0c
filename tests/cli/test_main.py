"""The `opase` command: migrate, serve with several workers, and clear failures on bad
settings."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.cli.shell import clean_env, opase
from tests.servers import free_port_pair

pytestmark = pytest.mark.slow  # starts servers: one xdist worker runs these in turn

SERVE_START_TIMEOUT_S = 30.0


def test_migrate_creates_the_database(tmp_path: Path) -> None:
    completed = opase("migrate", env=clean_env(OPASE_DATA_DIR=str(tmp_path)))
    assert completed.returncode == 0, completed.stderr
    assert "newest schema" in completed.stdout
    assert (tmp_path / "opase.db").is_file()


def test_migrate_reads_a_toml_settings_file(tmp_path: Path) -> None:
    config = tmp_path / "opase.toml"
    config.write_text(f'data_dir = "{tmp_path / "from-toml"}"\n')
    completed = opase("migrate", "--config", str(config), env=clean_env())
    assert completed.returncode == 0, completed.stderr
    assert (tmp_path / "from-toml" / "opase.db").is_file()


def test_bad_settings_exit_non_zero_with_a_message(tmp_path: Path) -> None:
    completed = opase("migrate", env=clean_env(OPASE_PUBLIC_URL="ftp://bank.example"))
    assert completed.returncode != 0
    assert "invalid settings" in completed.stderr and "public_url" in completed.stderr
    missing = opase("migrate", "--config", str(tmp_path / "nope.toml"), env=clean_env())
    assert missing.returncode != 0 and "does not exist" in missing.stderr


# Several workers share nothing but the database: PostgreSQL.
@pytest.mark.parametrize("backend", [pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_serve_answers_with_several_workers_and_stops_on_sigint(
    tmp_path: Path, empty_database_url: str
) -> None:
    port = free_port_pair()
    process = subprocess.Popen(
        [sys.executable, "-m", "opase", "serve", "--port", str(port), "--workers", "2"],
        env=clean_env(
            OPASE_DATA_DIR=str(tmp_path),
            OPASE_DATABASE_URL=empty_database_url,  # serve migrates it
            OPASE_PUBLIC_URL=f"http://127.0.0.1:{port}",
            OPASE_ADMIN_PORT=str(port + 100),
            OPASE_ADMIN_API_KEYS='["cli-test-key-123456"]',
        ),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        deadline_s = time.monotonic() + SERVE_START_TIMEOUT_S
        while True:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/nobody", timeout=1)
                break
            except httpx.TransportError:
                assert process.poll() is None, process.communicate()[0]
                assert time.monotonic() < deadline_s, "opase serve did not answer"
                time.sleep(0.1)
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"
        admin_url = f"http://127.0.0.1:{port + 100}/assets"
        while True:  # the admin listener starts beside the public workers
            try:
                admin = httpx.get(
                    admin_url, headers={"Authorization": "Bearer cli-test-key-123456"}
                )
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline_s, "the admin listener did not answer"
                time.sleep(0.1)
        assert admin.status_code == 200 and admin.json() == {"result": []}
        assert httpx.get(admin_url).status_code == 401
    finally:
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=30)
    assert process.returncode == 0, output


def test_serve_refuses_several_workers_on_sqlite(tmp_path: Path) -> None:
    completed = opase("serve", "--workers", "2", env=clean_env(OPASE_DATA_DIR=str(tmp_path)))
    assert completed.returncode != 0
    assert "workers > 1 needs PostgreSQL" in completed.stderr
    assert not (tmp_path / "opase.db").exists(), "refused before touching the database"


def test_serve_role_resource_without_introspection_url_exits_with_the_reason(
    tmp_path: Path,
) -> None:
    completed = opase(
        "serve", "--role", "resource", "--no-migrate", env=clean_env(OPASE_DATA_DIR=str(tmp_path))
    )
    assert completed.returncode != 0
    assert "--role resource" in completed.stderr
    assert "OPASE_INTROSPECTION_URL" in completed.stderr
    assert not (tmp_path / "opase.db").exists(), "refused before touching the database"
    bad_url = opase(
        "serve", "--role", "resource", "--no-migrate",
        env=clean_env(OPASE_DATA_DIR=str(tmp_path), OPASE_INTROSPECTION_URL="ftp://as.internal"),
    )  # fmt: skip
    assert bad_url.returncode != 0 and "not an http(s) URL" in bad_url.stderr


def _wait_for(
    url: str, process: subprocess.Popen[str], deadline_s: float, **kwargs: Any
) -> httpx.Response:
    while True:
        try:
            return httpx.request(url=url, timeout=1, **kwargs)
        except httpx.TransportError:
            assert process.poll() is None, process.communicate()[0]
            assert time.monotonic() < deadline_s, f"{url} did not answer"
            time.sleep(0.1)


def test_serve_role_auth_starts_the_introspection_listener(tmp_path: Path) -> None:
    port = free_port_pair()
    introspection_port = port + 101
    process = subprocess.Popen(
        [sys.executable, "-m", "opase", "serve", "--role", "auth", "--port", str(port)],
        env=clean_env(
            OPASE_DATA_DIR=str(tmp_path),
            OPASE_PUBLIC_URL=f"http://127.0.0.1:{port}",
            OPASE_INTROSPECTION_PORT=str(introspection_port),
        ),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        deadline_s = time.monotonic() + SERVE_START_TIMEOUT_S
        public = _wait_for(
            f"http://127.0.0.1:{port}/op/incoming-payments/abc", process, deadline_s, method="GET"
        )
        assert public.status_code == 404  # no resource server in this process
        introspection = _wait_for(
            f"http://127.0.0.1:{introspection_port}/", process, deadline_s,
            method="POST", json={"access_token": "not-a-token"},
        )  # fmt: skip
        assert introspection.status_code == 200
        assert introspection.json() == {"active": False}
        # Not routed from the public listener.
        assert httpx.post(f"http://127.0.0.1:{port}/", json={}).status_code == 404
    finally:
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=30)
    assert process.returncode == 0, output
