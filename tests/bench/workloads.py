"""What the benchmark measures: a list of workloads, each one kind of request to one server.

A workload names its `baseline`, the workload whose requests/s it is divided by in the
`ratio` column. Later releases add signed requests: such a workload sets `signer` to the
name of a signer in `tests.bench.loadgen.SIGNERS`, which builds each request's bytes anew
(fresh `Signature-Input` created time and nonce); only our own load generator can run those,
so the runner never hands a workload with a signer to wrk.
"""

from __future__ import annotations

from dataclasses import dataclass, field

OPASE = "opase"
BARE = "bare"

WALLET_ADDRESS_PATH = "/alice"
"""The wallet address `servers.prepare_opase` seeds."""


@dataclass(frozen=True)
class Workload:
    name: str
    server: str
    """A key of `servers.SERVERS`."""
    method: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    baseline: str | None = None
    """Name of the workload this one is compared with; None for a baseline itself."""
    signer: str | None = None
    """A key of `loadgen.SIGNERS` when every request must be built (signed) anew."""

    def __post_init__(self) -> None:
        assert self.method.isupper() and self.path.startswith("/")


JSON_HEADERS = {"Accept": "application/json"}

WORKLOADS: tuple[Workload, ...] = (
    Workload("bare JSON", BARE, "GET", "/", JSON_HEADERS),
    Workload(
        "GET wallet address", OPASE, "GET", WALLET_ADDRESS_PATH, JSON_HEADERS, baseline="bare JSON"
    ),
    Workload(
        "GET wallet address keys",
        OPASE,
        "GET",
        f"{WALLET_ADDRESS_PATH}/jwks.json",
        JSON_HEADERS,
        baseline="bare JSON",
    ),
)

ACCEPTANCE = ("GET wallet address", 0.7)
"""This release's target: the workload whose ratio must be at least this."""
