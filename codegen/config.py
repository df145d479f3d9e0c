"""What codegen reads and where each operation's handler lives."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
SPECS_DIR = REPO_ROOT / "specs"
# Each folder is its import package: handlers/opase is `opase`, generated/opase_generated is
# `opase_generated`, so a path on disk is the module's import path.
GENERATED_DIR = REPO_ROOT / "generated" / "opase_generated"
HANDLERS_DIR = REPO_ROOT / "handlers" / "opase"
LOCK_FILE = SPECS_DIR / "upstream.lock.json"
PATCH_FILE = SPECS_DIR / "upstream-patches.yaml"

NPM_PACKAGE = "@interledger/open-payments"
NPM_SPEC_DIR = "package/dist/openapi/specs"
IMPORT_PACKAGE = "opase"
GENERATED_PACKAGE = "opase_generated"
OPERATIONS_PACKAGE = "api"
"""Where operation modules live: `opase.api.<server>.<tag>`, one module per spec tag in a
folder per server, so an operationId is one step from its module."""


@dataclass(frozen=True)
class SpecConfig:
    name: str
    """File stem in specs/ and the name of the spec everywhere else."""
    server: str
    """Which opase server serves it: wallet_address, auth, resource, admin, introspection.
    Several specs may share one server (their paths then live under the same base URL)."""
    models_module: str
    """Module in generated/ that receives its pydantic models."""
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
    ),
    SpecConfig(
        name="resource-server",
        server="resource",
        models_module="models_resource",
    ),
    SpecConfig(
        name="auth-server",
        server="auth",
        models_module="models_auth",
    ),
    SpecConfig(
        name="admin",
        server="admin",
        models_module="models_admin",
        upstream=False,
    ),
    SpecConfig(
        name="introspection",
        server="introspection",
        models_module="models_introspection",
        upstream=False,
    ),
    # The owner's browser during an interactive grant, and the identity provider's back
    # channel: both under the authorization server's URL, beside auth-server.yaml.
    SpecConfig(
        name="interaction",
        server="auth",
        models_module="models_interaction",
        upstream=False,
    ),
    SpecConfig(
        name="idp",
        server="auth",
        models_module="models_idp",
        upstream=False,
    ),
)

# Headers the security step checks itself; declared as plain parameters in the upstream specs.
SECURITY_HEADERS = frozenset({"authorization", "signature", "signature-input"})
