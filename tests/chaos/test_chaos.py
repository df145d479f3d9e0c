"""The bounded CI form of the reliability suite: one short chaos run per database (see
`tests.chaos.run`). The PostgreSQL run starts a cluster of its own, which it restarts
mid-load, so the session's shared server is never touched.

The seed is new every run and printed (set OPASE_CHAOS_SEED to replay one); the closing
report is printed (`pytest -s` shows it) and kept in test-artifacts/chaos-<database>.json."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import pytest

from tests.chaos.run import ChaosConfig, run_chaos
from tests.postgres_server import PostgresUnavailable

LOAD_S = 25.0
"""Seconds of load and faults per database: both runs together stay within ~2.5 minutes."""
SEED_ENV = "OPASE_CHAOS_SEED"
ARTIFACTS = Path(
    os.environ.get("OPASE_TEST_ARTIFACTS", Path(__file__).resolve().parents[2] / "test-artifacts")
)


def keep_artifact(name: str, text: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / name).write_text(text)


@pytest.mark.slow
@pytest.mark.parametrize(
    "database", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
async def test_payments_survive_kills_and_restarts_with_a_clean_audit(
    database: str, tmp_path: Path
) -> None:
    seed = int(os.environ.get(SEED_ENV) or random.SystemRandom().randrange(2**32))
    print(f"\nchaos on {database}: seed {seed} ({SEED_ENV}={seed} replays it)")
    config = ChaosConfig(database, LOAD_S, seed, tmp_path)  # type: ignore[arg-type]
    try:
        report = await run_chaos(config)
    except PostgresUnavailable as exc:
        pytest.skip(f"chaos on PostgreSQL needs local PostgreSQL binaries: {exc}")
    print(report.render())
    keep_artifact(f"chaos-{database}.json", json.dumps(report.as_json(), indent=2))

    assert report.clean, "\n".join(report.problems)
    assert all(value == 0 for value in report.audit.values()), report.audit
    assert report.server_kills >= 1 and report.server_restarts >= 1, report.fault_log
    if database == "postgresql":
        assert report.worker_kills >= 1 and report.postgres_restarts >= 1, report.fault_log
    assert report.payments_completed > 0, report.failure_reasons
    assert report.webhook_sends_refused > 0  # retries were exercised
