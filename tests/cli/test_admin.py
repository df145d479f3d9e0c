"""`opase admin ...`: the back office from a shell on the same services, with clear errors
and non-zero exits, and nothing changed by a refused command."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.cli.shell import clean_env, opase
from tests.world import KEY_X


def admin(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return opase("admin", *args, env=clean_env(OPASE_DATA_DIR=str(tmp_path)))


def ok(tmp_path: Path, *args: str) -> dict[str, object]:
    completed = admin(tmp_path, *args)
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout)  # type: ignore[no-any-return]


def test_the_back_office_from_a_shell(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "opase", "migrate"],
        env=clean_env(OPASE_DATA_DIR=str(tmp_path)),
        check=True,
        capture_output=True,
    )
    ok(tmp_path, "asset", "create", "USD:2")
    wallet = ok(
        tmp_path, "wallet-address", "create", "/alice", "--asset", "USD:2", "--public-name", "Alice"
    )
    assert wallet["url"] == "http://127.0.0.1:4000/alice" and wallet["status"] == "active"
    first = ok(tmp_path, "deposit", "/alice", "2500", "--idempotency-key", "d1")
    again = ok(tmp_path, "deposit", "/alice", "2500", "--idempotency-key", "d1")
    assert first == again == {"id": first["id"], "balance": "2500"}
    short = admin(tmp_path, "withdraw", "/alice", "2501", "--idempotency-key", "w1")
    assert short.returncode == 1 and "short" in short.stderr
    assert ok(tmp_path, "withdraw", "/alice", "500", "--idempotency-key", "w2")["balance"] == "2000"
    assert ok(tmp_path, "balance", "/alice") == {"balance": "2000", "available": "2000"}
    jwk_file = tmp_path / "key.json"
    jwk_file.write_text(json.dumps({"kid": "k1", "kty": "OKP", "crv": "Ed25519", "x": KEY_X}))
    assert ok(tmp_path, "key", "add", "/alice", "--jwk", str(jwk_file))["jwk"]["kid"] == "k1"  # type: ignore[index]
    generated = ok(tmp_path, "key", "add", "/alice", "--key-id", "k2")
    assert str(generated["privateKeyPem"]).startswith("-----BEGIN PRIVATE KEY-----")
    assert ok(tmp_path, "key", "revoke", "/alice", "k1") == {"revoked": "k1"}
    assert ok(tmp_path, "audit") == {"audit": "clean"}
    assert ok(tmp_path, "wallet-address", "deactivate", "/alice")["status"] == "inactive"


def test_refused_commands_exit_non_zero_and_change_nothing(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "opase", "migrate"],
        env=clean_env(OPASE_DATA_DIR=str(tmp_path)),
        check=True,
        capture_output=True,
    )
    ok(tmp_path, "asset", "create", "USD:2")
    ok(tmp_path, "wallet-address", "create", "/alice", "--asset", "USD:2")
    refusals = [
        (("asset", "create", "USD"), 2, "CODE:SCALE"),
        (("asset", "create", "USD:2"), 1, "conflicts"),
        (("wallet-address", "create", "/alice", "--asset", "USD:2"), 1, "conflicts"),
        (("wallet-address", "create", "/bob", "--asset", "EUR:2"), 1, "no asset EUR"),
        (("wallet-address", "create", "/bob/", "--asset", "USD:2"), 1, "path"),
        (("deposit", "/alice", "-5", "--idempotency-key", "x"), 2, "positive whole number"),
        (("deposit", "/alice", "1.5", "--idempotency-key", "x"), 2, "positive whole number"),
        (("deposit", "/alice", "9223372036854775808", "--idempotency-key", "x"), 1, ""),
        (("deposit", "/nobody", "5", "--idempotency-key", "x"), 1, "no wallet address"),
        (("key", "add", "/alice", "--jwk", str(tmp_path / "missing.json")), 2, "not a readable"),
    ]
    for args, code, message in refusals:
        completed = admin(tmp_path, *args)
        assert completed.returncode == code, (args, completed.stderr)
        assert message in completed.stderr, (args, completed.stderr)
    assert ok(tmp_path, "balance", "/alice") == {"balance": "0", "available": "0"}
    assert len(ok(tmp_path, "asset", "list")) == 1  # type: ignore[arg-type]
