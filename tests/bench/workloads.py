"""What the benchmark measures: workloads, each one kind of request to one server, run at
one or more concurrencies.

A workload names its `baseline`, the bare Starlette workload its requests/s is divided by
(at the same concurrency, with the same load generator). A signed workload sets `signer`:
every request is built and signed anew (`tests.bench.signer`), so only our own load
generator runs it, never wrk. Paths and bodies may name what the runner creates before the
load starts: `{incoming_payment_id}` (an incoming payment of Alice's, for reads) and
`{receiver}` (an open incoming payment of Bob's, paid by quotes and outgoing payments), and
the wallet addresses `{alice}` and `{bob}`.

`rafiki_rps` holds the reference implementation's figure measured on a 2-core machine
like ours (issue 8), by concurrency: the table shows opase's figure over it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

OPASE = "opase"
BARE = "bare"

WALLET_ADDRESS_PATH = "/alice"
"""The wallet address `seed` funds: the owner of the incoming payments, the payer."""
RECEIVER_PATH = "/bob"
CLIENT_PATH = "/bench-client"

WRK_CONNECTIONS = (32,)
"""As the reference's wallet address figure was measured: wrk, 1 thread, 32 connections."""
SIGNED_CONNECTIONS = (1, 16)


@dataclass(frozen=True)
class Workload:
    name: str
    server: str
    """A key of `servers.SERVERS`."""
    method: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)
    body: str = ""
    baseline: str | None = None
    """Name of the workload this one is compared with; None for a baseline itself."""
    signer: str | None = None
    """A key of `loadgen.SIGNERS` when every request must be built (signed) anew."""
    connections: tuple[int, ...] = SIGNED_CONNECTIONS
    rafiki_rps: dict[int, float] = field(default_factory=dict)
    completes_outgoing_payments: bool = False
    """The runner also reports how long each payment took from created to completed."""

    def __post_init__(self) -> None:
        assert self.method.isupper() and self.path.startswith("/")
        assert set(self.rafiki_rps) <= set(self.connections)

    def render(self, names: dict[str, str]) -> tuple[str, bytes]:
        """The path and body with the runner's names filled in."""
        return self.path.format(**names), self.body.format(**names).encode()


JSON_HEADERS = {"Accept": "application/json"}
POST_HEADERS = {"Accept": "application/json", "Content-Type": "application/json"}

USD_100 = '{{"value": "100", "assetCode": "USD", "assetScale": 2}}'

WORKLOADS: tuple[Workload, ...] = (
    Workload("bare JSON", BARE, "GET", "/", JSON_HEADERS, connections=WRK_CONNECTIONS),
    Workload("bare JSON (loadgen)", BARE, "GET", "/", JSON_HEADERS),
    Workload(
        "GET wallet address",
        OPASE,
        "GET",
        WALLET_ADDRESS_PATH,
        JSON_HEADERS,
        baseline="bare JSON",
        connections=WRK_CONNECTIONS,
        rafiki_rps={32: 5000},
    ),
    Workload(
        "signed GET incoming payment",
        OPASE,
        "GET",
        "/op/incoming-payments/{incoming_payment_id}",
        JSON_HEADERS,
        baseline="bare JSON (loadgen)",
        signer="gnap",
        rafiki_rps={1: 200, 16: 315},
    ),
    Workload(
        "signed create incoming payment",
        OPASE,
        "POST",
        "/op/incoming-payments",
        POST_HEADERS,
        '{{"walletAddress": "{alice}"}}',
        baseline="bare JSON (loadgen)",
        signer="gnap",
        rafiki_rps={1: 115, 16: 255},
    ),
    Workload(
        "signed create quote",
        OPASE,
        "POST",
        "/op/quotes",
        POST_HEADERS,
        '{{"walletAddress": "{alice}", "receiver": "{receiver}", "method": "ilp", '
        '"debitAmount": ' + USD_100 + "}}",
        baseline="bare JSON (loadgen)",
        signer="gnap",
    ),
    Workload(
        "signed create outgoing payment",
        OPASE,
        "POST",
        "/op/outgoing-payments",
        POST_HEADERS,
        '{{"walletAddress": "{alice}", "incomingPayment": "{receiver}", '
        '"debitAmount": ' + USD_100 + "}}",
        baseline="bare JSON (loadgen)",
        signer="gnap",
        completes_outgoing_payments=True,
    ),
)

TARGETS: dict[tuple[str, int], float] = {
    ("GET wallet address", 32): 2.0,
    ("signed GET incoming payment", 16): 5.0,
    ("signed create incoming payment", 16): 5.0,
}
"""Issue 8's targets: opase's requests/s over Rafiki's, by workload and concurrency."""
COMPLETION_P50_MS_MAX = 20.0
"""Issue 8: a local outgoing payment completed within 20 ms of its creation."""
