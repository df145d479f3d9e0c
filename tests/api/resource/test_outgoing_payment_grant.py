"""GET /outgoing-payment-grant: what payments under the token's grant have spent in the
current interval, read from the same sums the reservations keep."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from opase.authorization.spending import reserve
from opase.storage.tables import utc_now
from tests.api.auth.test_grants import (
    FINISH,
    Gnap,
    approve,
    grant_id_of,
    incoming,
    outgoing,
)
from tests.client import CheckedClient
from tests.conftest import PUBLIC_URL, Seeded
from tests.signing import GnapAuth, register_client

GRANT_SPENT = f"{PUBLIC_URL}/op/outgoing-payment-grant"


@pytest.fixture
async def gnap(client: CheckedClient, app: Starlette, seeded: Seeded) -> Gnap:
    return Gnap(client, await register_client(app))


async def outgoing_token(gnap: Gnap, app: Starlette, **limits: Any) -> tuple[dict[str, Any], str]:
    grant = await gnap.grant(outgoing(**limits), interact={"start": ["redirect"], "finish": FINISH})
    issued = await gnap.continue_(grant, await approve(app, grant))
    assert issued.status_code == 200, issued.text
    return grant, issued.json()["access_token"]["value"]


async def spent_of(gnap: Gnap, token: str) -> httpx.Response:
    return await gnap.client.get(GRANT_SPENT, auth=GnapAuth(gnap.identity, token))


async def test_spent_amounts_follow_reservations_in_the_current_interval(
    gnap: Gnap, app: Starlette
) -> None:
    debit = {"value": "2500", "assetCode": "USD", "assetScale": 2}
    grant, token = await outgoing_token(
        gnap, app, debitAmount=debit, interval="R/2026-01-01T00:00:00Z/P1M"
    )
    response = await spent_of(gnap, token)
    assert response.status_code == 200, response.text
    assert response.json() == {
        "spentDebitAmount": {"value": "0", "assetCode": "USD", "assetScale": 2},
        "spentReceiveAmount": None,  # no receiveAmount limit: no asset to state it in
    }
    async with app.state.services.sessions() as session:
        await reserve(session, grant_id_of(grant), at=utc_now(), debit_minor=700, receive_minor=650)
        await session.commit()
    assert (await spent_of(gnap, token)).json()["spentDebitAmount"]["value"] == "700"


async def test_a_receive_limit_reports_the_receive_amount_and_the_wallets_debit_asset(
    gnap: Gnap, app: Starlette
) -> None:
    receive = {"value": "9000", "assetCode": "EUR", "assetScale": 3}
    grant, token = await outgoing_token(gnap, app, receiveAmount=receive)
    async with app.state.services.sessions() as session:
        await reserve(
            session, grant_id_of(grant), at=utc_now(), debit_minor=120, receive_minor=1100
        )
        await session.commit()
    assert (await spent_of(gnap, token)).json() == {
        "spentDebitAmount": {"value": "120", "assetCode": "USD", "assetScale": 2},
        "spentReceiveAmount": {"value": "1100", "assetCode": "EUR", "assetScale": 3},
    }


async def test_a_token_without_outgoing_payments_is_forbidden(gnap: Gnap) -> None:
    token = (await gnap.grant(incoming()))["access_token"]["value"]
    response = await spent_of(gnap, token)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "forbidden"


async def test_a_revoked_token_is_refused(gnap: Gnap, app: Starlette) -> None:
    grant, token = await outgoing_token(gnap, app)
    assert (await gnap.cancel(grant)).status_code == 204
    assert (await spent_of(gnap, token)).status_code == 401
