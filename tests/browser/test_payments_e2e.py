"""Issue 7's acceptance: the official client (`@interledger/open-payments`, pinned, from node,
validateResponses on) pays from one wallet address to another of a running sandbox, end to
end: wallet addresses; an incoming-payment grant and incoming payments (create, get private
and public, list, complete); a quote grant and quotes of all three kinds; an interactive
outgoing-payment grant with limits, approved by the owner on the built-in consent page in
headless Chromium; outgoing payments from a quote and from an incoming payment with a
`debitAmount`; the money arrives, to the minor unit, and the grant's limit holds.

Every expected amount is computed here by hand from the fees this module sets through the
admin API (`fixed + ceil(amount * basisPoints / 10000)`, rounded up; the sending fee out of
the debit, the receiving fee out of what arrives; one asset, so no rate), never by opase's
own pricing code. Balances are read through the admin API.

The parties are wallet addresses this module creates through the admin API (its spec has no
lookup by URL, and the manifest carries no ids, so the seeded accounts' balances cannot be
read through it)."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Final
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from playwright.async_api import Browser

from tests.browser.consent import CLIENT_NONCE, FINISH_URI, expected_hash, through_consent
from tests.node_oracle import ClientCallFailed, OfficialClient, official_client
from tests.servers import RunningSandbox

pytestmark = pytest.mark.slow

SENDING_FEE: Final = (10, 50)
"""(fixed minor units, basis points) this module sets on the sandbox's USD."""
RECEIVING_FEE: Final = (2, 30)
SENDER_DEPOSIT_MINOR: Final = 100_000
RECEIVER_DEPOSIT_MINOR: Final = 5_000
GRANT_DEBIT_LIMIT_MINOR: Final = 6_000
SMALL_DEBIT_MINOR: Final = 100
"""A debit that covers the sending fee: refused only by a limit."""
PAYMENT_WAIT_S: Final = 10.0
"""The longest an outgoing payment may take to finish on the local ledger."""
POLL_INTERVAL_S: Final = 0.05
ADMIN_TIMEOUT_S: Final = 10.0
SIGNATURE_SECOND_S: Final = 1.1
"""Long enough for a signature's `created` (whole seconds) to change."""


# -- the arithmetic, by hand ---------------------------------------------------------------


def fee_minor(fee: tuple[int, int], amount_minor: int) -> int:
    fixed_minor, basis_points = fee
    return fixed_minor + -(-amount_minor * basis_points // 10_000)


def delivered_minor(debit_minor: int) -> int:
    """What a debit delivers to a receiver in the same asset (rate 1), after both fees."""
    sent_minor = debit_minor - fee_minor(SENDING_FEE, debit_minor)
    return sent_minor - fee_minor(RECEIVING_FEE, sent_minor)


def sent_minor(debit_minor: int) -> int:
    """What leaves the sender after the sending fee: an outgoing payment's final
    `sentAmount`."""
    return debit_minor - fee_minor(SENDING_FEE, debit_minor)


def least_debit_minor(receive_minor: int) -> int:
    """The smallest debit that delivers at least `receive_minor`: a plain search upwards."""
    debit_minor = receive_minor
    while delivered_minor(debit_minor) < receive_minor:
        debit_minor += 1
    return debit_minor


# -- the sandbox and its back office ---------------------------------------------------------


@dataclass(frozen=True)
class Account:
    """A wallet address this module made: its URL, admin id and owner login."""

    url: str
    id: str
    owner: dict[str, str]


@dataclass(frozen=True)
class BackOffice:
    """The admin API of one sandbox ASE, for its one asset."""

    admin: httpx.Client
    asset_id: str

    def balance_minor(self, account: Account) -> int:
        balance = self.admin.get(f"/wallet-addresses/{account.id}/balance")
        assert balance.status_code == 200, balance.text
        body = balance.json()
        # Nothing may stay reserved once the payments have finished.
        assert body["available"] == body["balance"], body
        return int(body["balance"])

    def open_account(self, name: str, deposit_minor: int) -> Account:
        owner = {"username": name, "password": secrets.token_urlsafe(12)}
        created = self.admin.post(
            "/wallet-addresses",
            json={"path": f"/{name}", "assetId": self.asset_id, "publicName": name, "owner": owner},
        )
        assert created.status_code == 201, created.text
        account = Account(created.json()["url"], created.json()["id"], owner)
        if deposit_minor:
            deposited = self.admin.post(
                f"/wallet-addresses/{account.id}/deposits",
                json={"amount": str(deposit_minor)},
                headers={"Idempotency-Key": f"e2e-deposit-{name}"},
            )
            assert deposited.status_code == 201, deposited.text
        assert self.balance_minor(account) == deposit_minor
        return account


@dataclass(frozen=True)
class Alpha:
    """The sandbox's first ASE with the fees set, a sender and a receiver."""

    ase: dict[str, Any]
    office: BackOffice
    asset_code: str
    asset_scale: int
    sender: Account
    receiver: Account

    def balance_minor(self, account: Account) -> int:
        return self.office.balance_minor(account)


@pytest.fixture(scope="module")
def alpha(running: RunningSandbox) -> Iterator[Alpha]:
    ase = running.manifest["ases"][0]
    seeded = ase["walletAddresses"][0]
    headers = {"Authorization": f"Bearer {ase['adminApiKey']}"}
    with httpx.Client(base_url=ase["adminApi"], headers=headers, timeout=ADMIN_TIMEOUT_S) as admin:
        [asset] = [
            a for a in admin.get("/assets").json()["result"]
            if (a["code"], a["scale"]) == (seeded["assetCode"], seeded["assetScale"])
        ]  # fmt: skip
        # The sandbox starts without fees; this module sets its own and reads them back.
        assert admin.get(f"/assets/{asset['id']}/fees").json() == {"result": []}
        for kind, (fixed_minor, basis_points) in (
            ("sending", SENDING_FEE),
            ("receiving", RECEIVING_FEE),
        ):
            put = admin.put(
                f"/assets/{asset['id']}/fees/{kind}",
                json={"fixed": str(fixed_minor), "basisPoints": basis_points},
            )
            assert put.status_code == 200, put.text
        fees = admin.get(f"/assets/{asset['id']}/fees").json()["result"]
        assert [(f["kind"], int(f["fixed"]), f["basisPoints"]) for f in fees] == [
            ("sending", *SENDING_FEE), ("receiving", *RECEIVING_FEE),
        ]  # fmt: skip
        office = BackOffice(admin, str(asset["id"]))
        sender = office.open_account("e2e-sender", SENDER_DEPOSIT_MINOR)
        receiver = office.open_account("e2e-receiver", RECEIVER_DEPOSIT_MINOR)
        yield Alpha(ase, office, asset["code"], asset["scale"], sender, receiver)


# -- the client's steps ------------------------------------------------------------------------


def amount(value_minor: int, wallet: dict[str, Any]) -> dict[str, Any]:
    return {
        "value": str(value_minor),
        "assetCode": wallet["assetCode"],
        "assetScale": wallet["assetScale"],
    }


def in_an_hour() -> str:
    return (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def incoming_grant(op: OfficialClient, receiver: dict[str, Any]) -> str:
    access = [{
        "type": "incoming-payment", "actions": ["create", "read", "list", "complete"],
        "identifier": receiver["id"],
    }]  # fmt: skip
    grant = op.call(
        "grant.request", {"url": receiver["authServer"]}, {"access_token": {"access": access}}
    )
    assert "interact" not in grant  # issued at once
    token: str = grant["access_token"]["value"]
    return token


def quote_grant(op: OfficialClient, sender: dict[str, Any]) -> str:
    access = [{"type": "quote", "actions": ["create", "read"]}]
    grant = op.call(
        "grant.request", {"url": sender["authServer"]}, {"access_token": {"access": access}}
    )
    assert "interact" not in grant
    token: str = grant["access_token"]["value"]
    return token


def create_incoming(
    op: OfficialClient, receiver: dict[str, Any], token: str, incoming_minor: int | None
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "walletAddress": receiver["id"], "expiresAt": in_an_hour(),
        "metadata": {"externalRef": f"e2e-{secrets.token_hex(4)}"},
    }  # fmt: skip
    if incoming_minor is not None:
        body["incomingAmount"] = amount(incoming_minor, receiver)
    created: dict[str, Any] = op.call(
        "incomingPayment.create", {"url": receiver["resourceServer"], "accessToken": token}, body
    )
    assert created["walletAddress"] == receiver["id"]
    assert created["receivedAmount"] == amount(0, receiver)
    assert created["completed"] is False
    assert created["metadata"] == body["metadata"]
    assert [method["type"] for method in created["methods"]] == ["ilp"]
    return created


def create_quote(
    op: OfficialClient, sender: dict[str, Any], token: str, receiver_url: str, **fixed: Any
) -> dict[str, Any]:
    body = {"walletAddress": sender["id"], "receiver": receiver_url, "method": "ilp", **fixed}
    quote: dict[str, Any] = op.call(
        "quote.create", {"url": sender["resourceServer"], "accessToken": token}, body
    )
    assert (quote["walletAddress"], quote["receiver"], quote["method"]) == (
        sender["id"], receiver_url, "ilp",
    )  # fmt: skip
    fetched = op.call("quote.get", {"url": quote["id"], "accessToken": token})
    assert fetched == quote
    return quote


async def outgoing_grant(
    op: OfficialClient,
    browser: Browser,
    sender: dict[str, Any],
    owner: dict[str, str],
    limit_minor: int,
    shot: str,
) -> dict[str, Any]:
    """An interactive outgoing-payment grant with a debit limit per month (from yesterday),
    approved by the owner in Chromium; the continued grant's access token."""
    start = (datetime.now(UTC) - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    body = {
        "access_token": {
            "access": [{
                "type": "outgoing-payment", "actions": ["create", "read", "list"],
                "identifier": sender["id"],
                "limits": {"debitAmount": amount(limit_minor, sender), "interval": f"R/{start}/P1M"},
            }]
        },
        "interact": {
            "start": ["redirect"],
            "finish": {"method": "redirect", "uri": FINISH_URI, "nonce": CLIENT_NONCE},
        },
    }  # fmt: skip
    grant = op.call("grant.request", {"url": sender["authServer"]}, body)
    assert "access_token" not in grant
    finish, consent_text = await through_consent(browser, grant, owner, "Approve", shot)
    query = parse_qs(urlsplit(finish).query)
    interact_ref = query["interact_ref"][0]
    assert query["hash"] == [expected_hash(grant, interact_ref, sender["authServer"])]
    continued = op.call(
        "grant.continue",
        {"url": grant["continue"]["uri"], "accessToken": grant["continue"]["access_token"]["value"]},
        {"interact_ref": interact_ref},
    )  # fmt: skip
    token: dict[str, Any] = continued["access_token"]
    [item] = token["access"]
    assert item["limits"]["debitAmount"] == amount(limit_minor, sender)
    # The owner read the limit they approved: `USD 60.00` for 6000 minor units at scale 2.
    shown = Decimal(limit_minor).scaleb(-sender["assetScale"])
    assert f"{sender['assetCode']} {shown}" in consent_text
    return token


def wait_until_sent(
    op: OfficialClient, payment: dict[str, Any], token: str, sent_value_minor: int
) -> dict[str, Any]:
    """Poll the payment until it has sent (at least) `sent_value_minor` or failed, for a
    bounded time; what it sent must then be exactly that."""
    deadline_s = time.monotonic() + PAYMENT_WAIT_S
    while True:
        fetched: dict[str, Any] = op.call(
            "outgoingPayment.get", {"url": payment["id"], "accessToken": token}
        )
        if fetched["failed"] or int(fetched["sentAmount"]["value"]) >= sent_value_minor:
            assert fetched["failed"] is False, fetched
            assert fetched["sentAmount"] == {
                **fetched["debitAmount"],
                "value": str(sent_value_minor),
            }
            return fetched
        assert time.monotonic() < deadline_s, f"not sent within {PAYMENT_WAIT_S} s: {fetched}"
        time.sleep(POLL_INTERVAL_S)


# -- the tests ---------------------------------------------------------------------------------


def test_wallet_addresses_and_incoming_payments(alpha: Alpha) -> None:
    receiver_before_minor = alpha.balance_minor(alpha.receiver)
    with official_client(alpha.ase) as op:
        receiver = op.call("walletAddress.get", {"url": alpha.receiver.url})
        assert receiver["id"] == alpha.receiver.url
        assert (receiver["assetCode"], receiver["assetScale"]) == (
            alpha.asset_code,
            alpha.asset_scale,
        )
        assert receiver["authServer"] == alpha.ase["authServer"]
        assert receiver["resourceServer"] == alpha.ase["resourceServer"]
        keys = op.call("walletAddress.getKeys", {"url": alpha.ase["clients"][0]["walletAddress"]})
        assert [key["kid"] for key in keys["keys"]] == [alpha.ase["clients"][0]["keyId"]]

        token = incoming_grant(op, receiver)
        capped = create_incoming(op, receiver, token, 1_000)
        open_ended = create_incoming(op, receiver, token, None)
        assert capped["incomingAmount"] == amount(1_000, receiver)
        assert "incomingAmount" not in open_ended

        private = op.call("incomingPayment.get", {"url": capped["id"], "accessToken": token})
        assert private == capped
        public = op.call("incomingPayment.getPublic", {"url": capped["id"]})
        assert public == {
            "authServer": receiver["authServer"],
            "receivedAmount": amount(0, receiver),
        }

        listed = op.call(
            "incomingPayment.list",
            {"url": receiver["resourceServer"], "walletAddress": receiver["id"], "accessToken": token},
            {"first": 10},
        )  # fmt: skip
        ids = [payment["id"] for payment in listed["result"]]
        assert capped["id"] in ids and open_ended["id"] in ids
        assert all("methods" not in payment for payment in listed["result"])

        completed = op.call(
            "incomingPayment.complete", {"url": open_ended["id"], "accessToken": token}
        )
        assert completed["completed"] is True and completed["receivedAmount"] == amount(0, receiver)
        # The official client signs without a nonce and `created` counts whole seconds: the
        # same request within the second is a replay (401), so the repeat waits for the next.
        time.sleep(SIGNATURE_SECOND_S)
        with pytest.raises(ClientCallFailed) as again:
            op.call("incomingPayment.complete", {"url": open_ended["id"], "accessToken": token})
        assert again.value.status == 409, again.value.error
    # Nothing moved.
    assert alpha.balance_minor(alpha.receiver) == receiver_before_minor


def test_quotes_of_all_three_kinds_price_exactly(alpha: Alpha) -> None:
    sender_before_minor = alpha.balance_minor(alpha.sender)
    with official_client(alpha.ase) as op:
        sender = op.call("walletAddress.get", {"url": alpha.sender.url})
        receiver = op.call("walletAddress.get", {"url": alpha.receiver.url})
        incoming_token = incoming_grant(op, receiver)
        capped = create_incoming(op, receiver, incoming_token, 3_000)
        open_ended = create_incoming(op, receiver, incoming_token, None)
        token = quote_grant(op, sender)

        # Neither amount: the incoming payment's incomingAmount is what it receives.
        whole = create_quote(op, sender, token, capped["id"])
        assert whole["receiveAmount"] == amount(3_000, receiver)
        assert whole["debitAmount"] == amount(least_debit_minor(3_000), sender)
        # Fixed send: what 1234 buys after both fees.
        fixed_send = create_quote(
            op, sender, token, open_ended["id"], debitAmount=amount(1_234, sender)
        )
        assert fixed_send["debitAmount"] == amount(1_234, sender)
        assert fixed_send["receiveAmount"] == amount(delivered_minor(1_234), receiver)
        # Fixed receive: the least debit that delivers 777.
        fixed_receive = create_quote(
            op, sender, token, open_ended["id"], receiveAmount=amount(777, receiver)
        )
        assert fixed_receive["receiveAmount"] == amount(777, receiver)
        assert fixed_receive["debitAmount"] == amount(least_debit_minor(777), sender)
    # Quotes move no money.
    assert alpha.balance_minor(alpha.sender) == sender_before_minor


async def test_a_payment_end_to_end(alpha: Alpha, browser: Browser) -> None:
    sender_before_minor = alpha.balance_minor(alpha.sender)
    receiver_before_minor = alpha.balance_minor(alpha.receiver)
    with official_client(alpha.ase) as op:
        sender = op.call("walletAddress.get", {"url": alpha.sender.url})
        receiver = op.call("walletAddress.get", {"url": alpha.receiver.url})
        incoming_token = incoming_grant(op, receiver)
        invoice = create_incoming(op, receiver, incoming_token, 3_000)
        tip_jar = create_incoming(op, receiver, incoming_token, None)
        quote = create_quote(op, sender, quote_grant(op, sender), invoice["id"])
        debit_a_minor = least_debit_minor(3_000)
        assert quote["debitAmount"] == amount(debit_a_minor, sender)

        granted = await outgoing_grant(
            op, browser, sender, alpha.sender.owner, GRANT_DEBIT_LIMIT_MINOR, "consent-e2e.png"
        )
        token = granted["value"]
        at_rs = {"url": sender["resourceServer"], "accessToken": token}
        unspent = op.call("outgoingPayment.getGrantSpentAmounts", at_rs)
        assert unspent["spentDebitAmount"] in (None, amount(0, sender)), unspent
        assert unspent["spentReceiveAmount"] is None  # the grant limits no receive amount

        # 1. From the quote.
        created_a = op.call(
            "outgoingPayment.create", at_rs,
            {"walletAddress": sender["id"], "quoteId": quote["id"],
             "metadata": {"externalRef": "e2e-invoice"}},
        )  # fmt: skip
        assert created_a["failed"] is False
        assert created_a["quoteId"] == quote["id"] and created_a["receiver"] == invoice["id"]
        assert created_a["debitAmount"] == amount(debit_a_minor, sender)
        assert created_a["receiveAmount"] == amount(3_000, receiver)
        assert created_a["sentAmount"] == amount(0, sender)
        assert created_a["grantSpentDebitAmount"] == amount(debit_a_minor, sender)
        assert created_a.get("grantSpentReceiveAmount") is None  # no receiveAmount limit
        assert created_a["metadata"] == {"externalRef": "e2e-invoice"}
        paid_a = wait_until_sent(op, created_a, token, sent_minor(debit_a_minor))
        assert paid_a["sentAmount"] == amount(sent_minor(debit_a_minor), sender)

        with pytest.raises(ClientCallFailed) as reused:
            op.call(
                "outgoingPayment.create", at_rs,
                {"walletAddress": sender["id"], "quoteId": quote["id"]},
            )  # fmt: skip
        assert (reused.value.status, reused.value.code) == (400, "invalid_request")

        paid_invoice = op.call(
            "incomingPayment.get", {"url": invoice["id"], "accessToken": incoming_token}
        )
        assert paid_invoice["receivedAmount"] == amount(3_000, receiver)
        assert paid_invoice["completed"] is True  # its incomingAmount has arrived
        public = op.call("incomingPayment.getPublic", {"url": invoice["id"]})
        assert public["receivedAmount"] == amount(3_000, receiver)

        # 2. From an incoming payment and a debitAmount (no quote).
        debit_b_minor = 1_500
        created_b = op.call(
            "outgoingPayment.create", at_rs,
            {"walletAddress": sender["id"], "incomingPayment": tip_jar["id"],
             "debitAmount": amount(debit_b_minor, sender)},
        )  # fmt: skip
        assert created_b["failed"] is False and "quoteId" not in created_b
        assert created_b["receiver"] == tip_jar["id"]
        assert created_b["debitAmount"] == amount(debit_b_minor, sender)
        assert created_b["receiveAmount"] == amount(delivered_minor(debit_b_minor), receiver)
        assert created_b["grantSpentDebitAmount"] == amount(debit_a_minor + debit_b_minor, sender)
        paid_b = wait_until_sent(op, created_b, token, sent_minor(debit_b_minor))

        spent_minor = debit_a_minor + debit_b_minor
        spent = op.call("outgoingPayment.getGrantSpentAmounts", at_rs)
        assert spent == {
            "spentDebitAmount": amount(spent_minor, sender),
            "spentReceiveAmount": None,
        }

        # 3. Beyond the grant's limit: refused, and nothing moves or counts.
        rest_minor = GRANT_DEBIT_LIMIT_MINOR - spent_minor
        assert rest_minor > 0
        with pytest.raises(ClientCallFailed) as over:
            op.call(
                "outgoingPayment.create", at_rs,
                {"walletAddress": sender["id"], "incomingPayment": tip_jar["id"],
                 "debitAmount": amount(rest_minor + 1, sender)},
            )  # fmt: skip
        assert over.value.status == 403, over.value.error
        assert op.call("outgoingPayment.getGrantSpentAmounts", at_rs) == spent

        # 4. Exactly the rest of the limit is allowed; then nothing more (any debit that
        # covers the sending fee).
        created_c = op.call(
            "outgoingPayment.create", at_rs,
            {"walletAddress": sender["id"], "incomingPayment": tip_jar["id"],
             "debitAmount": amount(rest_minor, sender)},
        )  # fmt: skip
        assert created_c["grantSpentDebitAmount"] == amount(GRANT_DEBIT_LIMIT_MINOR, sender)
        paid_c = wait_until_sent(op, created_c, token, sent_minor(rest_minor))
        with pytest.raises(ClientCallFailed) as one_more:
            op.call(
                "outgoingPayment.create", at_rs,
                {"walletAddress": sender["id"], "incomingPayment": tip_jar["id"],
                 "debitAmount": amount(SMALL_DEBIT_MINOR, sender)},
            )  # fmt: skip
        assert one_more.value.status == 403, one_more.value.error
        spent_all = op.call("outgoingPayment.getGrantSpentAmounts", at_rs)
        assert spent_all["spentDebitAmount"] == amount(GRANT_DEBIT_LIMIT_MINOR, sender)

        # The receiver's side, to the minor unit.
        received_tip_minor = delivered_minor(debit_b_minor) + delivered_minor(rest_minor)
        paid_tip_jar = op.call(
            "incomingPayment.get", {"url": tip_jar["id"], "accessToken": incoming_token}
        )
        assert paid_tip_jar["receivedAmount"] == amount(received_tip_minor, receiver)
        assert paid_tip_jar["completed"] is False
        closed = op.call(
            "incomingPayment.complete", {"url": tip_jar["id"], "accessToken": incoming_token}
        )
        assert closed["completed"] is True
        assert closed["receivedAmount"] == amount(received_tip_minor, receiver)

        # What the client sees of its payments.
        listed = op.call(
            "outgoingPayment.list",
            {"url": sender["resourceServer"], "walletAddress": sender["id"], "accessToken": token},
            {"first": 10},
        )  # fmt: skip
        by_id = {payment["id"]: payment for payment in listed["result"]}
        assert set(by_id) == {created_a["id"], created_b["id"], created_c["id"]}
        assert by_id[created_a["id"]] == paid_a
        assert by_id[created_b["id"]] == paid_b
        assert by_id[created_c["id"]] == paid_c

    # Both balances, exact: the sender pays the debits, the receiver gets what was promised.
    debits_minor = debit_a_minor + debit_b_minor + rest_minor
    assert debits_minor == GRANT_DEBIT_LIMIT_MINOR
    assert alpha.balance_minor(alpha.sender) == sender_before_minor - debits_minor
    assert alpha.balance_minor(alpha.receiver) == receiver_before_minor + 3_000 + received_tip_minor


async def test_a_payment_beyond_the_balance_is_refused(alpha: Alpha, browser: Browser) -> None:
    poor = alpha.office.open_account("e2e-poor-sender", 100)
    receiver_before_minor = alpha.balance_minor(alpha.receiver)
    with official_client(alpha.ase) as op:
        sender = op.call("walletAddress.get", {"url": poor.url})
        receiver = op.call("walletAddress.get", {"url": alpha.receiver.url})
        incoming = create_incoming(op, receiver, incoming_grant(op, receiver), None)
        granted = await outgoing_grant(
            op, browser, sender, poor.owner, 10_000, "consent-e2e-poor.png"
        )
        at_rs = {"url": sender["resourceServer"], "accessToken": granted["value"]}
        with pytest.raises(ClientCallFailed) as refused:
            op.call(
                "outgoingPayment.create", at_rs,
                {"walletAddress": sender["id"], "incomingPayment": incoming["id"],
                 "debitAmount": amount(101, sender)},
            )  # fmt: skip
        assert refused.value.status == 403, refused.value.error
        spent = op.call("outgoingPayment.getGrantSpentAmounts", at_rs)
        assert spent["spentDebitAmount"] in (None, amount(0, sender))
    assert alpha.balance_minor(poor) == 100
    assert alpha.balance_minor(alpha.receiver) == receiver_before_minor
