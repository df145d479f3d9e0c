"""What the ledger refuses. Plain exceptions, no HTTP: callers map them (the admin API maps
LookupError to 404, ValueError to 400, IdempotencyKeyReused and InsufficientFunds to 409).

    LedgerError
    ├── AccountNotFound (LookupError)
    ├── TransferNotFound (LookupError)
    ├── InsufficientFunds
    ├── TransferNotPending
    │   └── PendingExpired
    ├── AssetMismatch (ValueError)
    ├── BalanceOverflow (ValueError)
    └── IdempotencyKeyReused (ValueError)

A refused amount raises the built-in TypeError (not an int) or ValueError (out of range).
Every refusal happens before the ledger writes anything, so the caller's transaction stays
usable and unchanged.
"""

from __future__ import annotations


class LedgerError(Exception):
    """Base of the ledger's refusals."""


class AccountNotFound(LedgerError, LookupError):
    """No ledger account with that id (or for that wallet address)."""


class TransferNotFound(LedgerError, LookupError):
    """No transfer with that id."""


class InsufficientFunds(LedgerError):
    """The debit would take the account's available balance below its credit limit."""


class TransferNotPending(LedgerError):
    """Only a pending transfer that is not yet posted or voided can be posted or voided."""


class PendingExpired(TransferNotPending):
    """The pending transfer's timeout has passed: `void_expired` releases it."""


class AssetMismatch(LedgerError, ValueError):
    """Both accounts of a transfer must hold the same asset: FX happens above the ledger."""


class BalanceOverflow(LedgerError, ValueError):
    """A running sum of an account would exceed the largest BIGINT (2**63-1)."""


class IdempotencyKeyReused(LedgerError, ValueError):
    """The idempotency key already names a different transfer."""
