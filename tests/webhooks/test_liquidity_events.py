"""`wallet_address.liquidity_low`: an outgoing payment that takes the sender's available
balance below `liquidity_low_threshold_minor` reports it once, in the payment's transaction."""

from __future__ import annotations

import pytest
from starlette.applications import Starlette

from opase.settings import Settings
from tests.actors import ClientApp
from tests.money import usd
from tests.state import events, settled
from tests.world import ALICE, DAVE

THRESHOLD_MINOR = 45_000


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"liquidity_low_threshold_minor": THRESHOLD_MINOR})


async def test_a_payment_crossing_the_threshold_reports_low_liquidity_once(
    app: Starlette, payer: ClientApp
) -> None:
    receiver = await payer.receiver(DAVE)
    token = await payer.outgoing_token()
    await payer.paid(token, incomingPayment=receiver, debitAmount=usd(4_000))  # 46000 left
    assert await events(app, "wallet_address.liquidity_low") == []
    await payer.paid(token, incomingPayment=receiver, debitAmount=usd(2_000))  # 44000 left
    await payer.paid(token, incomingPayment=receiver, debitAmount=usd(2_000))  # still below
    await settled(app)
    reported = await events(app, "wallet_address.liquidity_low")
    assert len(reported) == 1, reported  # once, when the threshold was crossed
    assert reported[0]["walletAddress"] == ALICE
    assert reported[0]["available"] == usd(44_000)
