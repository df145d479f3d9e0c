"""What codegen reads and where each operation's handler lives."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
SPECS_DIR = REPO_ROOT / "specs"
GENERATED_DIR = REPO_ROOT / "generated"
HANDLERS_DIR = REPO_ROOT / "handlers"
LOCK_FILE = SPECS_DIR / "upstream.lock.json"
PATCH_FILE = SPECS_DIR / "upstream-patches.yaml"

NPM_PACKAGE = "@interledger/open-payments"
NPM_SPEC_DIR = "package/dist/openapi/specs"
# The import package that `handlers/` becomes when installed (see pyproject.toml).
IMPORT_PACKAGE = "opase"


@dataclass(frozen=True)
class SpecConfig:
    name: str
    """File stem in specs/ and the name of the spec everywhere else."""
    server: str
    """Which opase server serves it: wallet_address, auth, resource, admin, introspection.
    Several specs may share one server (their paths then live under the same base URL)."""
    models_module: str
    """Module in generated/ that receives its pydantic models."""
    tag_modules: dict[str, str] = field(default_factory=dict)
    """Operation tag -> handler module in handlers/, dotted for sub-packages
    (`admin.assets` is handlers/admin/assets.py); function = snake_case operationId."""
    upstream: bool = True
    """From the npm package (checked against the lock), or our own document."""

    @property
    def path(self) -> Path:
        return SPECS_DIR / f"{self.name}.yaml"


SPECS: tuple[SpecConfig, ...] = (
    SpecConfig(
        name="wallet-address-server",
        server="wallet_address",
        models_module="models_wallet_address",
        tag_modules={"wallet-address": "wallet_addresses"},
    ),
    SpecConfig(
        name="resource-server",
        server="resource",
        models_module="models_resource",
        tag_modules={
            "incoming-payment": "incoming_payments",
            "outgoing-payment": "outgoing_payments",
            "quote": "quotes",
        },
    ),
    SpecConfig(
        name="auth-server",
        server="auth",
        models_module="models_auth",
        tag_modules={"grant": "grants", "token": "tokens"},
    ),
    SpecConfig(
        name="admin",
        server="admin",
        models_module="models_admin",
        tag_modules={
            "asset": "admin.assets",
            "wallet-address": "admin.wallet_addresses",
            "wallet-address-key": "admin.keys",
            "ledger": "admin.ledger",
            "transfer": "admin.transfers",
            "fee": "admin.fees",
            "exchange-rate": "admin.exchange_rates",
            "webhook": "admin.webhooks",
        },
        upstream=False,
    ),
    SpecConfig(
        name="introspection",
        server="introspection",
        models_module="models_introspection",
        tag_modules={"introspection": "introspection"},
        upstream=False,
    ),
    # The owner's browser during an interactive grant, and the identity provider's back
    # channel: both under the authorization server's URL, beside auth-server.yaml.
    SpecConfig(
        name="interaction",
        server="auth",
        models_module="models_interaction",
        tag_modules={"interaction": "interactions"},
        upstream=False,
    ),
    SpecConfig(
        name="idp",
        server="auth",
        models_module="models_idp",
        tag_modules={"idp": "idp_api"},
        upstream=False,
    ),
)

# Headers the security step checks itself; declared as plain parameters in the upstream specs.
SECURITY_HEADERS = frozenset({"authorization", "signature", "signature-input"})
