"""The operations opase implements, per spec, written down once: what the routing table
(`opase_generated.routes.OPERATIONS`) must hold, and what the tests of each server count."""

from __future__ import annotations

IMPLEMENTED_OPERATIONS: dict[str, frozenset[str]] = {
    "wallet-address-server": frozenset({
        "get-wallet-address", "get-wallet-address-keys", "get-wallet-address-did-document",
    }),
    "resource-server": frozenset({
        "create-incoming-payment", "list-incoming-payments", "get-incoming-payment",
        "complete-incoming-payment", "create-quote", "get-quote", "get-outgoing-payment-grant",
        "create-outgoing-payment", "list-outgoing-payments", "get-outgoing-payment",
    }),
    "auth-server": frozenset({
        "post-request", "post-continue", "delete-continue", "post-token", "delete-token",
    }),
    "admin": frozenset({
        "list-assets", "create-asset", "create-wallet-address", "get-wallet-address-admin",
        "update-wallet-address", "deactivate-wallet-address", "add-wallet-address-key",
        "revoke-wallet-address-key", "create-deposit", "create-withdrawal", "get-balance",
        "list-wallet-address-transfers", "list-asset-fees", "set-asset-fee",
        "get-exchange-rates", "set-exchange-rates", "get-webhook", "set-webhook",
        "list-webhook-events", "redrive-webhook-event",
    }),
    "introspection": frozenset({"post-introspect"}),
    "interaction": frozenset({"start-interaction", "finish-interaction"}),
    "idp": frozenset({"get-grant-details", "accept-grant", "reject-grant"}),
}  # fmt: skip
"""Operation ids per spec (`codegen.config.SPECS` names)."""
