"""A minimal double-entry ledger of minor-unit integer amounts (no HTTP here)."""
