"""The GNAP authorization server through HTTP: every operation and every GNAP error it
answers, each response checked against auth-server.yaml by the client (openapi-core)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import uuid
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from starlette.applications import Starlette

from opase.app import build_app
from opase.authorization.grants import approve_grant, deny_grant, finish_hash
from opase.settings import Settings
from opase.storage.migrate import upgrade
from opase.storage.tables import AccessToken, Grant, GrantSpending, utc_now
from tests.actors import FINISH, ClientApp, approve, grant_id_of, incoming_access, outgoing_access
from tests.client import CheckedClient
from tests.responses import error_code
from tests.rows import set_grant
from tests.signing import ClientIdentity, GnapAuth, register_client
from tests.world import ALICE, AUTH, AUTHENTICATED, OUTGOING_PAYMENTS, PUBLIC_URL, seed

RS_PROBE = f"{OUTGOING_PAYMENTS}/abc"
"""What `ClientApp.use` probes: AUTHENTICATED once a token is honoured, 401 if not."""


def outgoing(**limits: Any) -> dict[str, Any]:
    return outgoing_access(ALICE, **limits)


# --- POST / ---------------------------------------------------------------------------------


async def test_a_non_interactive_grant_gets_a_token_the_resource_server_honours(
    client_app: ClientApp, app: Starlette
) -> None:
    grant = await client_app.grant(
        incoming_access(), {"type": "quote", "actions": ["create", "read"]}
    )
    token = grant["access_token"]
    assert token["expires_in"] == app.state.settings.access_token_lifetime_s
    assert [item["type"] for item in token["access"]] == ["incoming-payment", "quote"]
    assert token["manage"].startswith(f"{AUTH}/token/")
    assert token["value"] not in token["manage"]
    assert grant["continue"]["uri"].startswith(f"{AUTH}/continue/")
    assert await client_app.use(token["value"]) == AUTHENTICATED
    async with app.state.services.sessions() as session:
        stored = (await session.execute(sa.select(AccessToken))).scalars().all()
    # Only the hash is stored.
    assert [row.value_sha256 for row in stored] == [
        hashlib.sha256(token["value"].encode()).hexdigest()
    ]


async def test_repeated_actions_are_refused_and_order_is_kept(client_app: ClientApp) -> None:
    body = client_app.grant_request(incoming_access(["read", "create", "read"]))
    assert error_code(await client_app.ask(body), 400) == "invalid_request"  # uniqueItems
    grant = await client_app.grant(incoming_access(["read", "create"]))
    assert grant["access_token"]["access"][0]["actions"] == ["read", "create"]


async def test_a_grant_asking_for_nothing_is_refused(client_app: ClientApp) -> None:
    body = {**client_app.grant_request(), "access_token": {"access": []}}
    assert error_code(await client_app.ask(body), 400) == "invalid_request"
    interactive = {**body, "interact": {"start": ["redirect"]}}
    assert error_code(await client_app.ask(interactive), 400) == "invalid_request"


async def test_an_identifier_must_be_a_wallet_address_of_this_ase(client_app: ClientApp) -> None:
    body = client_app.grant_request(incoming_access(identifier="https://elsewhere.example/bob"))
    assert error_code(await client_app.ask(body), 400) == "invalid_request"
    body = client_app.grant_request(
        incoming_access(identifier=f"{PUBLIC_URL}/carol")
    )  # deactivated
    assert error_code(await client_app.ask(body), 400) == "invalid_request"
    assert (await client_app.grant(incoming_access(identifier=ALICE)))["access_token"]


async def test_an_outgoing_payment_grant_is_interactive(client_app: ClientApp) -> None:
    grant = await client_app.grant(outgoing(), interact={"start": ["redirect"], "finish": FINISH})
    assert "access_token" not in grant
    redirect = grant["interact"]["redirect"]
    assert redirect.startswith(f"{AUTH}/interact/") and redirect.endswith(
        grant["interact"]["finish"]
    )
    assert "wait" not in grant["continue"]  # the finish redirect says when; no delay
    polled = await client_app.grant(outgoing(), interact={"start": ["redirect"]})
    assert polled["continue"]["wait"] == 5


async def test_an_interactive_grant_without_interact_is_refused(client_app: ClientApp) -> None:
    body = client_app.grant_request(outgoing())
    assert error_code(await client_app.ask(body), 400) == "invalid_request"
    list_all = client_app.grant_request(incoming_access(["list-all"]))
    assert error_code(await client_app.ask(list_all), 400) == "invalid_request"


async def test_the_interaction_policy_follows_the_settings(
    tmp_path: Any, database_url: str
) -> None:
    settings = Settings(
        public_url=PUBLIC_URL, data_dir=tmp_path, database_url=database_url,
        incoming_payment_interaction=True, list_all_interaction=False,
    )  # fmt: skip
    await upgrade(settings)
    app = build_app(settings)
    try:
        await seed(app)
        async with CheckedClient(app) as client:
            client_app = ClientApp(client, await register_client(app), app)
            response = await client_app.ask(client_app.grant_request(incoming_access()))
            assert error_code(response, 400) == "invalid_request"
            quote_list_all = {"type": "quote", "actions": ["read-all"]}
            assert (await client_app.grant(quote_list_all))["access_token"]
    finally:
        await app.state.services.close()


async def test_directed_identity_is_for_non_interactive_grants_only(
    client: CheckedClient, app: Starlette
) -> None:
    anonymous = ClientIdentity("https://never-fetched.example/x", "jwk-1")
    body = {"access_token": {"access": [incoming_access()]}, "client": {"jwk": anonymous.jwk}}
    response = await client.post(AUTH, json=body, auth=GnapAuth(anonymous))
    assert response.status_code == 200, response.text
    token = response.json()["access_token"]["value"]
    probe = await client.get(RS_PROBE, auth=GnapAuth(anonymous, token))
    assert probe.status_code == AUTHENTICATED
    body = {
        "access_token": {"access": [outgoing()]},
        "client": {"jwk": anonymous.jwk},
        "interact": {"start": ["redirect"]},
    }
    response = await client.post(AUTH, json=body, auth=GnapAuth(anonymous))
    assert error_code(response, 400) == "invalid_request"


@pytest.mark.parametrize(
    "limits",
    [
        {"debitAmount": {"value": "500", "assetCode": "EUR", "assetScale": 2}},
        {"debitAmount": {"value": "500", "assetCode": "USD", "assetScale": 3}},
        {"debitAmount": {"value": str(2**63), "assetCode": "USD", "assetScale": 2}},
        {"interval": "every month"},
        {"interval": "2026-01-01T00:00:00Z/P1M"},  # not repeating
    ],
    ids=["asset-code", "asset-scale", "over-ledger-bound", "interval-text", "not-repeating"],
)
async def test_bad_limits_are_refused(
    client_app: ClientApp, limits: dict[str, Any], app: Starlette
) -> None:
    body = client_app.grant_request(outgoing(**limits), interact={"start": ["redirect"]})
    assert error_code(await client_app.ask(body), 400) == "invalid_request"
    async with app.state.services.sessions() as session:
        assert (await session.execute(sa.select(sa.func.count()).select_from(Grant))).scalar() == 0


async def test_one_amount_limit_at_most(client_app: ClientApp) -> None:
    amount = {"value": "500", "assetCode": "USD", "assetScale": 2}
    body = client_app.grant_request(
        outgoing(debitAmount=amount, receiveAmount=amount), interact={"start": ["redirect"]}
    )
    assert error_code(await client_app.ask(body), 400) == "invalid_request"


async def test_limits_are_stored_for_spending(client_app: ClientApp, app: Starlette) -> None:
    limits = {
        "debitAmount": {"value": "2500", "assetCode": "USD", "assetScale": 2},
        "interval": "R/2026-12-01T00:00:00Z/P1M",
        "receiver": f"{PUBLIC_URL}/op/incoming-payments/{uuid.uuid4()}",
    }
    grant = await client_app.grant(outgoing(**limits), interact={"start": ["redirect"]})
    async with app.state.services.sessions() as session:
        spending = await session.get(GrantSpending, grant_id_of(grant))
    assert spending is not None
    assert (spending.debit_limit_minor, spending.receive_limit_minor) == (2500, None)
    assert spending.interval == "R/2026-12-01T00:00:00Z/P1M"


async def test_a_subject_grant_proves_ownership_after_consent(
    client_app: ClientApp, app: Starlette
) -> None:
    subject = {"sub_ids": [{"id": ALICE, "format": "uri"}]}
    body = {
        "client": {"walletAddress": client_app.identity.wallet_address_url},
        "subject": subject,
        "interact": {"start": ["redirect"], "finish": FINISH},
    }
    response = await client_app.ask(body)
    assert response.status_code == 200, response.text
    grant = response.json()
    assert "interact" in grant  # ownership is the owner's to confirm
    issued = await client_app.continue_(grant, await approve(app, grant))
    assert issued.status_code == 200, issued.text
    assert issued.json()["subject"] == subject and "access_token" not in issued.json()
    elsewhere = {**body, "subject": {"sub_ids": [{"id": "https://x.example/a", "format": "uri"}]}}
    assert error_code(await client_app.ask(elsewhere), 400) == "invalid_request"


# --- POST /continue/{id} --------------------------------------------------------------------


async def test_polling_too_early_is_too_fast_then_the_token_comes_after_approval(
    client_app: ClientApp, app: Starlette
) -> None:
    grant = await client_app.grant(outgoing(), interact={"start": ["redirect"]})
    assert error_code(await client_app.continue_(grant), 400) == "too_fast"
    long_ago = utc_now() - timedelta(seconds=60)
    await set_grant(app, grant_id_of(grant), created_at=long_ago)
    pending = await client_app.continue_(grant)
    assert pending.status_code == 200 and set(pending.json()) == {"continue"}
    assert (
        error_code(await client_app.continue_(grant), 400) == "too_fast"
    )  # counted from that poll
    await approve(app, grant)
    await set_grant(app, grant_id_of(grant), continued_at=long_ago)
    issued = await client_app.continue_(grant)
    assert issued.status_code == 200, issued.text
    token = issued.json()["access_token"]
    assert token["access"][0]["type"] == "outgoing-payment"
    assert await client_app.use(token["value"]) == AUTHENTICATED
    await set_grant(app, grant_id_of(grant), continued_at=long_ago)
    assert error_code(await client_app.continue_(grant), 401) == "request_denied"  # issued once


async def test_a_grant_with_a_finish_redirect_continues_with_its_interact_ref(
    client_app: ClientApp, app: Starlette
) -> None:
    grant = await client_app.grant(outgoing(), interact={"start": ["redirect"], "finish": FINISH})
    assert error_code(await client_app.continue_(grant), 401) == "request_denied"  # no polling
    assert error_code(await client_app.continue_(grant, "not-yet"), 401) == "request_denied"
    interact_ref = await approve(app, grant)
    assert error_code(await client_app.continue_(grant, "wrong-ref"), 401) == "request_denied"
    issued = await client_app.continue_(grant, interact_ref)
    assert issued.status_code == 200, issued.text
    assert issued.json()["access_token"]["value"]
    assert error_code(await client_app.continue_(grant, interact_ref), 401) == "request_denied"


async def test_a_denied_grant_cannot_be_continued(client_app: ClientApp, app: Starlette) -> None:
    grant = await client_app.grant(outgoing(), interact={"start": ["redirect"], "finish": FINISH})
    async with app.state.services.sessions() as session:
        await deny_grant(session, grant_id_of(grant))
        await session.commit()
    assert error_code(await client_app.continue_(grant, "any"), 401) == "request_denied"
    async with app.state.services.sessions() as session:
        with pytest.raises(Exception, match="not waiting for consent"):
            await approve_grant(session, grant_id_of(grant))


async def test_an_expired_interaction_is_denied(client_app: ClientApp, app: Starlette) -> None:
    grant = await client_app.grant(outgoing(), interact={"start": ["redirect"]})
    past = utc_now() - timedelta(seconds=1)
    await set_grant(app, grant_id_of(grant), interaction_expires_at=past,
                    created_at=past - timedelta(seconds=60))  # fmt: skip
    assert error_code(await client_app.continue_(grant), 401) == "request_denied"
    async with app.state.services.sessions() as session:
        stored = await session.get(Grant, grant_id_of(grant))
        assert stored is not None and (stored.state, stored.finalization_reason) == (
            "denied", "expired",
        )  # fmt: skip
        with pytest.raises(Exception, match="not waiting for consent"):
            await approve_grant(session, grant_id_of(grant))


async def test_a_continue_token_works_only_at_its_own_grant(client_app: ClientApp) -> None:
    first = await client_app.grant(outgoing(), interact={"start": ["redirect"], "finish": FINISH})
    second = await client_app.grant(outgoing(), interact={"start": ["redirect"], "finish": FINISH})
    token = first["continue"]["access_token"]["value"]
    response = await client_app.continue_(second, "x", token=token)
    assert error_code(response, 404) == "invalid_continuation"
    response = await client_app.continue_(first, "x", token="never-issued")
    assert error_code(response, 401) == "invalid_continuation"


@pytest.mark.parametrize("body", [{"interact_ref": 5}, {"interact_ref": {}}])
async def test_a_malformed_continuation_is_invalid_request(
    client_app: ClientApp, body: dict[str, Any]
) -> None:
    grant = await client_app.grant(outgoing(), interact={"start": ["redirect"], "finish": FINISH})
    auth = client_app.auth(grant["continue"]["access_token"]["value"])
    response = await client_app.http.post(grant["continue"]["uri"], json=body, auth=auth)
    assert error_code(response, 400) == "invalid_request"  # spec patched to admit it


async def test_racing_continuations_issue_one_token(client_app: ClientApp, app: Starlette) -> None:
    grant = await client_app.grant(outgoing(), interact={"start": ["redirect"], "finish": FINISH})
    interact_ref = await approve(app, grant)
    responses = await asyncio.gather(*(client_app.continue_(grant, interact_ref) for _ in range(8)))
    assert sorted(r.status_code for r in responses) == [200] + [401] * 7
    async with app.state.services.sessions() as session:
        count = (
            await session.execute(sa.select(sa.func.count()).select_from(AccessToken))
        ).scalar()
    assert count == 1


# --- DELETE /continue/{id} ------------------------------------------------------------------


async def test_cancelling_a_grant_revokes_it_and_all_its_tokens(client_app: ClientApp) -> None:
    grant = await client_app.grant(incoming_access())
    token = grant["access_token"]
    rotated = (await client_app.rotate(token)).json()["access_token"]
    assert await client_app.use(rotated["value"]) == AUTHENTICATED
    assert (await client_app.cancel(grant)).status_code == 204
    assert await client_app.use(rotated["value"]) == 401
    assert error_code(await client_app.cancel(grant), 401) == "invalid_continuation"
    assert error_code(await client_app.rotate(rotated), 401) == "invalid_client"


async def test_cancelling_another_grant_is_not_found(client_app: ClientApp) -> None:
    first, second = (
        await client_app.grant(incoming_access()),
        await client_app.grant(incoming_access()),
    )
    auth = client_app.auth(first["continue"]["access_token"]["value"])
    response = await client_app.http.delete(second["continue"]["uri"], auth=auth)
    assert error_code(response, 404) == "invalid_request"
    assert await client_app.use(second["access_token"]["value"]) == AUTHENTICATED


# --- POST and DELETE /token/{id} ------------------------------------------------------------


async def test_rotation_gives_a_new_token_and_stops_the_old_one(client_app: ClientApp) -> None:
    token = (await client_app.grant(incoming_access()))["access_token"]
    response = await client_app.rotate(token)
    assert response.status_code == 200, response.text
    rotated = response.json()["access_token"]
    assert rotated["value"] != token["value"] and rotated["manage"] != token["manage"]
    assert rotated["access"] == token["access"]
    assert await client_app.use(token["value"]) == 401
    assert await client_app.use(rotated["value"]) == AUTHENTICATED
    assert error_code(await client_app.rotate(token), 401) == "invalid_client"


async def test_an_expired_token_can_be_rotated_but_not_used(
    client_app: ClientApp, app: Starlette
) -> None:
    token = (await client_app.grant(incoming_access()))["access_token"]
    async with app.state.services.sessions() as session:
        await session.execute(
            sa.update(AccessToken).values(expires_at=utc_now() - timedelta(seconds=1))
        )
        await session.commit()
    assert await client_app.use(token["value"]) == 401
    response = await client_app.rotate(token)
    assert response.status_code == 200, response.text
    assert await client_app.use(response.json()["access_token"]["value"]) == AUTHENTICATED


async def test_rotating_at_another_tokens_manage_url_is_refused(client_app: ClientApp) -> None:
    first = (await client_app.grant(incoming_access()))["access_token"]
    second = (await client_app.grant(incoming_access()))["access_token"]
    response = await client_app.rotate(second, value=first["value"])
    assert error_code(response, 404) == "invalid_rotation"
    assert await client_app.use(first["value"]) == AUTHENTICATED


async def test_revocation_stops_the_token(client_app: ClientApp) -> None:
    grant = await client_app.grant(incoming_access())
    token = grant["access_token"]
    assert (await client_app.revoke(token)).status_code == 204
    assert await client_app.use(token["value"]) == 401
    assert error_code(await client_app.revoke(token), 401) == "invalid_client"
    # The grant itself lives on: its continuation is still recognised.
    assert error_code(await client_app.continue_(grant), 401) == "request_denied"


# --- the finish hash ------------------------------------------------------------------------


def test_the_finish_hash_is_sha256_over_the_four_lines(tmp_path: Any) -> None:
    settings = Settings(public_url=PUBLIC_URL, data_dir=tmp_path)
    material = f"client-n\nserver-n\nref-1\n{AUTH}".encode()
    expected = base64.b64encode(hashlib.sha256(material).digest()).decode()
    kwargs = {"client_nonce": "client-n", "server_nonce": "server-n", "interact_ref": "ref-1"}
    assert finish_hash(settings, **kwargs) == expected
    rfc = settings.model_copy(update={"finish_hash_encoding": "base64url"})
    assert finish_hash(rfc, **kwargs) == expected.replace("+", "-").replace("/", "_").rstrip("=")
