"""schemathesis, with every check, over our specs against a running sandbox: no server
errors, no schema violations."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from tests.servers import RunningSandbox, sandbox

pytestmark = pytest.mark.slow  # starts servers: one xdist worker runs these in turn

REPO = Path(__file__).resolve().parent.parent.parent
SPECS = REPO / "generated" / "opase_generated" / "specs"
SCHEMATHESIS_TIMEOUT_S = 300
AUTH_SERVER_OPERATIONS = (
    "POST /", "POST /continue/{id}", "DELETE /continue/{id}", "POST /token/{id}",
    "DELETE /token/{id}",
)  # fmt: skip
RESOURCE_SERVER_OPERATIONS = (
    "POST /incoming-payments", "GET /incoming-payments", "GET /incoming-payments/{id}",
    "POST /incoming-payments/{id}/complete", "POST /quotes", "GET /quotes/{id}",
    "POST /outgoing-payments", "GET /outgoing-payments", "GET /outgoing-payments/{id}",
    "GET /outgoing-payment-grant",
)  # fmt: skip
POSITIVE_DATA_ACCEPTANCE = """\
# The grant operations answer schema-valid requests with 400 where GNAP and Open Payments
# rules the schema cannot state say so: an outgoing-payment grant needs `interact`, access
# identifiers must be this ASE's wallet addresses, a limit's asset must be the wallet's, an
# interval must parse, a poll must wait (`too_fast`). The spec declares these 400s; every
# other status stays as schemathesis expects it for valid data.
[checks.positive_data_acceptance]
expected-statuses = ["2xx", "3xx", "400", "401", "403", "404", "409", "429", "5xx"]
"""

ADMIN_POSITIVE_DATA_ACCEPTANCE = """\
# Page cursors are opaque strings: the schema can only say "a token"; one the server did
# not make (such as "0") names no place in a list and is a 400, as the spec declares.
[checks.positive_data_acceptance]
expected-statuses = ["2xx", "400", "401", "404", "409"]
"""


@pytest.fixture(scope="module")
def running_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSandbox]:
    with sandbox(tmp_path_factory.mktemp("conformance")) as running:
        yield running


def run_schemathesis(
    spec: Path, url: str, report: Path, *extra: str,
    hooks: str = "tests.conformance.hooks", env: Mapping[str, str] | None = None,
    config: Path | None = None, checks: str | None = "all",
) -> str:  # fmt: skip
    """The JUnit report of a schemathesis run that must find nothing. `checks=None` leaves
    the checks to the config file (on the command line they would override its
    per-operation settings)."""
    config_option = ["--config-file", str(config)] if config is not None else []
    checks_option = ["--checks", checks] if checks is not None else []
    completed = subprocess.run(
        [
            sys.executable, "-m", "schemathesis.cli", *config_option, "run", str(spec),
            "--url", url, *checks_option, "--max-examples", "60", "--seed", "1",
            "--workers", "1", "--report", "junit", "--report-junit-path", str(report), *extra,
        ],
        capture_output=True, text=True, timeout=SCHEMATHESIS_TIMEOUT_S, check=False,
        env=os.environ | dict(env or {}) | {"SCHEMATHESIS_HOOKS": hooks, "PYTHONPATH": str(REPO)},
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
    config = tmp_path / "schemathesis.toml"
    config.write_text(ADMIN_POSITIVE_DATA_ACCEPTANCE)
    junit = run_schemathesis(
        SPECS / "admin.json", ase["adminApi"], tmp_path / "j.xml",
        "--header", f"Authorization: Bearer {ase['adminApiKey']}", config=config,
    )  # fmt: skip
    assert junit.count("<testcase") >= 11, "every admin operation was exercised"


def test_schemathesis_finds_nothing_on_the_auth_server(tmp_path: Path) -> None:
    # A sandbox of its own: the run makes hundreds of grants, and the admin API run may
    # change the wallet addresses this one signs with.
    with sandbox(tmp_path / "sandbox") as running:
        ase = running.manifest["ases"][0]
        the_client = ase["clients"][0]
        key = tmp_path / "client.pem"
        key.write_text(the_client["privateKey"])
        config = tmp_path / "schemathesis.toml"
        config.write_text(POSITIVE_DATA_ACCEPTANCE)
        statuses = tmp_path / "statuses.jsonl"
        junit = run_schemathesis(
            SPECS / "auth-server.json", ase["authServer"], tmp_path / "j.xml",
            # Cases found in earlier runs would change which cases this one makes.
            "--generation-database", "none",
            hooks="tests.conformance.signing_hooks", config=config,
            # Read by signing_hooks (not imported here: it registers schemathesis hooks).
            env={
                "CONFORMANCE_AUTH_SERVER": ase["authServer"],
                "CONFORMANCE_CLIENT_WALLET_ADDRESS": the_client["walletAddress"],
                "CONFORMANCE_CLIENT_KEY_ID": the_client["keyId"],
                "CONFORMANCE_CLIENT_KEY_PATH": str(key),
                "CONFORMANCE_OWNER_WALLET_ADDRESS": ase["walletAddresses"][0]["url"],
                "CONFORMANCE_STATUS_LOG": str(statuses),
            },
        )  # fmt: skip
    for operation in AUTH_SERVER_OPERATIONS:
        assert f'<testcase name="{operation}"' in junit, f"{operation} was exercised"
    counts: dict[str, Counter[int]] = {operation: Counter() for operation in AUTH_SERVER_OPERATIONS}
    for line in statuses.read_text().splitlines():
        entry = json.loads(line)
        counts[entry["operation"]][entry["status"]] += 1
    # Signed, with real clients and tokens: the handlers were reached, not only the 401s.
    for operation, by_status in counts.items():
        assert any(200 <= status < 300 for status in by_status), (operation, counts)
    total = sum(sum(by_status.values()) for by_status in counts.values())
    unauthorized = sum(by_status[401] for by_status in counts.values())
    assert unauthorized < total / 2, counts


RESOURCE_SERVER_CONFIG = f"""\
# Every check, with two changes the resource-server spec calls for (tests.conformance.
# resource_hooks has the custom checks):
# - status_code_conformance is replaced by `declared_status_or_error_response`: the spec
#   declares no 400 for most operations (a wallet address that is not this ASE's, a page
#   asking for both `first` and `last`), no 409 for completing a completed payment; opase
#   answers them with its error statuses and the spec's `error-response` body.
# - get-incoming-payment answers without a token (the public view, as its 200 response
#   `public-incoming-payment` and its optional signature headers say) although the spec
#   leaves it under the global GNAP security; `public_incoming_payment_without_token`
#   checks that such an answer is the public view and nothing more.
[checks]
enabled = true
status_code_conformance.enabled = false

{POSITIVE_DATA_ACCEPTANCE}
[[operations]]
include-operation-id = "get-incoming-payment"
checks.ignored_auth.enabled = false
checks.missing_required_header.enabled = false
checks.negative_data_rejection.expected-statuses = ["200", "400", "401", "403", "404"]
"""


def test_schemathesis_finds_nothing_on_the_resource_server(tmp_path: Path) -> None:
    # Signed, with a real token (one grant the owner approved through the consent pages) and
    # real wallet addresses, incoming payments, quotes and amounts in most cases; a sandbox
    # of its own, since the run spends from its payer.
    with sandbox(tmp_path / "sandbox") as running:
        manifest = tmp_path / "manifest.json"
        manifest.write_text(json.dumps(running.manifest))
        ase = running.manifest["ases"][0]
        config = tmp_path / "schemathesis.toml"
        config.write_text(RESOURCE_SERVER_CONFIG)
        statuses = tmp_path / "statuses.jsonl"
        junit = run_schemathesis(
            SPECS / "resource-server.json", ase["resourceServer"], tmp_path / "j.xml",
            "--generation-database", "none",
            hooks="tests.conformance.resource_hooks", config=config, checks=None,
            # Read by resource_hooks (not imported here: it registers schemathesis hooks).
            env={"CONFORMANCE_MANIFEST": str(manifest), "CONFORMANCE_STATUS_LOG": str(statuses)},
        )  # fmt: skip
    for operation in RESOURCE_SERVER_OPERATIONS:
        assert f'<testcase name="{operation}"' in junit, f"{operation} was exercised"
    counts: dict[str, Counter[int]] = {
        operation: Counter() for operation in RESOURCE_SERVER_OPERATIONS
    }
    for line in statuses.read_text().splitlines():
        entry = json.loads(line)
        counts[entry["operation"]][entry["status"]] += 1
    # The handlers were reached and succeeded, not only refused.
    for operation, by_status in counts.items():
        assert any(200 <= status < 300 for status in by_status), (operation, counts)
    total = sum(sum(by_status.values()) for by_status in counts.values())
    unauthorized = sum(by_status[401] for by_status in counts.values())
    assert unauthorized < total / 2, counts
