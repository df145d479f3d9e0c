"""schemathesis, with every check, over wallet-address-server.yaml against a running sandbox:
no server errors, no schema violations, for every seeded wallet address URL shape."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers import RunningSandbox, sandbox

REPO = Path(__file__).resolve().parent.parent.parent
SPEC = REPO / "generated" / "specs" / "wallet-address-server.json"
SCHEMATHESIS_TIMEOUT_S = 300


@pytest.fixture(scope="module")
def running_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSandbox]:
    with sandbox(tmp_path_factory.mktemp("conformance")) as running:
        yield running


def test_schemathesis_finds_nothing_on_the_wallet_address_server(
    running_sandbox: RunningSandbox, tmp_path: Path
) -> None:
    wallet_url = running_sandbox.manifest["ases"][0]["walletAddresses"][0]["url"]
    report = tmp_path / "junit.xml"
    completed = subprocess.run(
        [
            sys.executable, "-m", "schemathesis.cli", "run", str(SPEC), "--url", wallet_url,
            "--checks", "all", "--max-examples", "60", "--seed", "1", "--workers", "1",
            "--report", "junit", "--report-junit-path", str(report),
        ],
        capture_output=True, text=True, timeout=SCHEMATHESIS_TIMEOUT_S, check=False,
    )  # fmt: skip
    output = completed.stdout + completed.stderr
    assert completed.returncode == 0, output
    junit = report.read_text()
    assert 'failures="0"' in junit and 'errors="0"' in junit, junit
    assert 'tests="3"' in junit, "all three wallet address operations were exercised"
