"""`new_row`: the rows hot paths insert without the ORM are the rows the models would make."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from opase.storage.tables import IncomingPayment, WebhookEvent, column_values, new_row

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def payment_values() -> dict[str, object]:
    return {
        "wallet_address_id": uuid.uuid4(),
        "client_wallet_address": "https://wallet.example/app",
        "expires_at": NOW,
        "shared_secret": "c2VjcmV0",
        "metadata_": {"invoice": "42"},
    }


def test_a_new_row_is_what_the_model_would_store() -> None:
    values = payment_values() | {"id": uuid.uuid4(), "created_at": NOW, "updated_at": NOW}
    row = new_row(IncomingPayment, **values)
    assert row == column_values(IncomingPayment(**values))
    # By column name: the model's `metadata_` is the table's `metadata`.
    assert row["metadata"] == {"invoice": "42"} and "metadata_" not in row
    assert row["received_amount_minor"] == 0 and row["completed_at"] is None


def test_defaults_made_by_factories_are_made_anew_for_each_row() -> None:
    first, second = (new_row(IncomingPayment, **payment_values()) for _ in range(2))
    assert first["id"] != second["id"]
    event = new_row(WebhookEvent, type="incoming_payment.created", data={})
    assert event["status"] == "pending" and event["attempts"] == 0
    assert event["created_at"].tzinfo is not None


def test_a_row_without_a_required_value_or_with_an_unknown_one_is_refused() -> None:
    values = payment_values()
    del values["shared_secret"]
    with pytest.raises(AssertionError, match="shared_secret"):
        new_row(IncomingPayment, **values)
    with pytest.raises(AssertionError, match="no column"):
        new_row(IncomingPayment, **payment_values(), colour="blue")
