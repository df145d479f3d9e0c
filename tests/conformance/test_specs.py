"""schemathesis, with every check, over our specs against a running sandbox: no server
errors, no schema violations."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers import RunningSandbox, sandbox

REPO = Path(__file__).resolve().parent.parent.parent
SPECS = REPO / "generated" / "specs"
SCHEMATHESIS_TIMEOUT_S = 300


@pytest.fixture(scope="module")
def running_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSandbox]:
    with sandbox(tmp_path_factory.mktemp("conformance")) as running:
        yield running


def run_schemathesis(spec: Path, url: str, report: Path, *extra: str) -> str:
    """The JUnit report of a schemathesis run that must find nothing."""
    completed = subprocess.run(
        [
            sys.executable, "-m", "schemathesis.cli", "run", str(spec), "--url", url,
            "--checks", "all", "--max-examples", "60", "--seed", "1", "--workers", "1",
            "--report", "junit", "--report-junit-path", str(report), *extra,
        ],
        capture_output=True, text=True, timeout=SCHEMATHESIS_TIMEOUT_S, check=False,
        env=os.environ | {"SCHEMATHESIS_HOOKS": "tests.conformance.hooks", "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    assert completed.returncode == 0, completed.stdout + completed.stderr
    junit = report.read_text()
    assert 'failures="0"' in junit and 'errors="0"' in junit, junit
    return junit


def test_schemathesis_finds_nothing_on_the_wallet_address_server(
    running_sandbox: RunningSandbox, tmp_path: Path
) -> None:
    wallet_url = running_sandbox.manifest["ases"][0]["walletAddresses"][0]["url"]
    junit = run_schemathesis(SPECS / "wallet-address-server.json", wallet_url, tmp_path / "j.xml")
    assert junit.count("<testcase") >= 3, "all three wallet address operations were exercised"


def test_schemathesis_finds_nothing_on_the_admin_api(
    running_sandbox: RunningSandbox, tmp_path: Path
) -> None:
    ase = running_sandbox.manifest["ases"][0]
    junit = run_schemathesis(
        SPECS / "admin.json", ase["adminApi"], tmp_path / "j.xml",
        "--header", f"Authorization: Bearer {ase['adminApiKey']}",
    )  # fmt: skip
    assert junit.count("<testcase") >= 11, "every admin operation was exercised"
