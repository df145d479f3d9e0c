"""Settings: derived server URLs and the wallet address paths they reserve."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from opase.settings import Settings


def test_server_urls_default_under_the_public_url_and_reserve_their_paths() -> None:
    settings = Settings(public_url="https://bank.example/")
    assert settings.auth_server_url == "https://bank.example/auth"
    assert settings.resource_server_url == "https://bank.example/op"
    assert settings.reserved_wallet_address_paths == ("/auth", "/op")


def test_servers_on_other_hosts_reserve_nothing() -> None:
    settings = Settings(
        public_url="https://bank.example",
        auth_server_url="https://auth.bank.example",
        resource_server_url="https://op.bank.example/v1",
    )
    assert settings.reserved_wallet_address_paths == ()


@pytest.mark.parametrize(
    "url", ["ftp://bank.example", "https://bank.example/?q=1", "https://u:p@bank.example", "bank"]
)
def test_public_urls_must_be_plain_http_bases(url: str) -> None:
    with pytest.raises(ValidationError):
        Settings(public_url=url)


def test_several_workers_need_postgresql(tmp_path: object) -> None:
    # SQLite's replay cache lives in its one process: a second would accept a replay.
    with pytest.raises(ValidationError, match="workers > 1 needs PostgreSQL"):
        Settings(data_dir=tmp_path, workers=2)
    assert Settings(data_dir=tmp_path, workers=1).workers == 1
    on_postgres = Settings(database_url="postgresql://u@127.0.0.1/db", workers=4)
    assert on_postgres.workers == 4
