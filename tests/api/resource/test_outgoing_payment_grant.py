"""GET /outgoing-payment-grant: what payments under the token's grant have spent in the
current interval, read from the same sums the reservations keep."""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette

from opase.authorization.spending import reserve
from opase.storage.tables import utc_now
from tests.actors import ClientApp, grant_id_of, incoming_access, outgoing_access
from tests.money import eur, usd
from tests.responses import error_code
from tests.world import ALICE


async def outgoing_grant(client_app: ClientApp, **limits: Any) -> tuple[dict[str, Any], str]:
    """An approved outgoing-payment grant for Alice within `limits`, and its token's value."""
    grant, token = await client_app.interactive_grant(outgoing_access(ALICE, **limits))
    return grant, token["value"]


async def test_spent_amounts_follow_reservations_in_the_current_interval(
    client_app: ClientApp, app: Starlette
) -> None:
    grant, token = await outgoing_grant(
        client_app, debitAmount=usd(2500), interval="R/2026-01-01T00:00:00Z/P1M"
    )
    response = await client_app.spent(token)
    assert response.status_code == 200, response.text
    assert response.json() == {
        "spentDebitAmount": usd(0),
        "spentReceiveAmount": None,  # no receiveAmount limit: no asset to state it in
    }
    async with app.state.services.sessions() as session:
        await reserve(session, grant_id_of(grant), at=utc_now(), debit_minor=700, receive_minor=650)
        await session.commit()
    assert (await client_app.spent(token)).json()["spentDebitAmount"]["value"] == "700"


async def test_a_receive_limit_reports_the_receive_amount_and_the_wallets_debit_asset(
    client_app: ClientApp, app: Starlette
) -> None:
    grant, token = await outgoing_grant(client_app, receiveAmount=eur(9000))
    async with app.state.services.sessions() as session:
        await reserve(
            session, grant_id_of(grant), at=utc_now(), debit_minor=120, receive_minor=1100
        )
        await session.commit()
    assert (await client_app.spent(token)).json() == {
        "spentDebitAmount": usd(120),
        "spentReceiveAmount": eur(1100),
    }


async def test_a_token_without_outgoing_payments_is_forbidden(client_app: ClientApp) -> None:
    token = (await client_app.grant(incoming_access()))["access_token"]["value"]
    assert error_code(await client_app.spent(token), 403) == "forbidden"


async def test_a_revoked_token_is_refused(client_app: ClientApp, app: Starlette) -> None:
    grant, token = await outgoing_grant(client_app)
    assert (await client_app.cancel(grant)).status_code == 204
    assert error_code(await client_app.spent(token), 401) == "unauthorized"
