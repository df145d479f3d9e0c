"""The growth benchmark (`tests.bench.growth`) at tiny sizes on SQLite: what it measures is
real behaviour (pages of 20 in order, working cursors, every payment counted against the
grant's limit, plans on indexes). Timings are never asserted: a loaded CI machine says
nothing about growth."""

from __future__ import annotations

from typing import Any

import pytest

from tests.bench import growth

SIZES = (160, 400)


@pytest.fixture(scope="module")
def results() -> dict[str, Any]:
    # Synchronous: `run` owns its event loop, as the benchmark command runs it.
    return growth.run(sizes=SIZES, databases=("sqlite",), repetitions=3)


def test_every_size_and_operation_is_timed(results: dict[str, Any]) -> None:
    assert [(run["database"], run["size"]) for run in results["runs"]] == [
        ("sqlite", size) for size in SIZES
    ]
    for run in results["runs"]:
        names = [op["operation"] for op in run["operations"]]
        assert names == [*growth.OPERATIONS, growth.RESERVE]
        for op in run["operations"]:
            assert op["count"] == 3 and 0 < op["p50_ms"] <= op["p99_ms"]
    assert {r["operation"] for r in results["ratios"]} == {*growth.OPERATIONS, growth.RESERVE}


def test_lists_return_pages_of_20_in_order_with_working_cursors(results: dict[str, Any]) -> None:
    for run in results["runs"]:
        for kind in ("outgoing-payments", "incoming-payments"):
            checks = run["checks"][kind]
            assert checks["first_page_count"] == growth.PAGE_SIZE
            assert checks["first_page_in_order"], (run["size"], kind)
            assert checks["second_page_in_order"], (run["size"], kind)
            assert checks["middle_page_in_order"], (run["size"], kind)
            assert checks["has_next_page"]
            # The measured client owns about half of the stored payments, not all of them.
            assert 0.3 * run["size"] < checks["client_items"] < 0.7 * run["size"]


def test_every_created_payment_counts_against_the_grant(results: dict[str, Any]) -> None:
    assert all(run["checks"]["limit_counted_every_payment"] for run in results["runs"])


def test_list_pages_and_limit_checks_use_indexes(results: dict[str, Any]) -> None:
    for run in results["runs"]:
        plans = {plan["operation"]: plan for plan in run["plans"]}
        assert set(plans) == {
            growth.OUT_FIRST,
            growth.OUT_MIDDLE,
            growth.IN_FIRST,
            growth.IN_MIDDLE,
            growth.CREATE,
            growth.RESERVE,
        }
        for plan in plans.values():
            assert plan["uses_index"], plan["full_scan_tables"]
            assert plan["statements"], plan["operation"]
            assert all(s["plan"] for s in plan["statements"])
        for name in (growth.OUT_FIRST, growth.IN_FIRST):
            assert plans[name]["bounded"], name  # newest first straight off the index
            page = [s for s in plans[name]["statements"] if growth._is_page_query(s)]
            # The client's own payments: the index on (wallet address, client, created_at, id)
            # reads that client's rows only, whatever other clients stored.
            assert len(page) == 1 and "_own_by_wallet_address" in page[0]["plan"]
        for name in (growth.CREATE, growth.RESERVE):
            spending = [s for s in plans[name]["statements"] if "grant_spending" in s["sql"]]
            # By its primary key: one row whatever the grant's history.
            assert spending and all("SEARCH grant_spending" in s["plan"] for s in spending)


def test_the_report_has_one_row_per_database_size_and_operation(
    results: dict[str, Any],
) -> None:
    table = growth.render(results)
    rows = [line for line in table.splitlines() if line.startswith("sqlite ") and " | " in line]
    assert len(rows) == len(SIZES) * (len(growth.OPERATIONS) + 1)
    assert "p50 ratio" in table and ("within 1.5x" in table or "NOT within" in table)
