"""A double-entry ledger of minor-unit integer amounts (no HTTP here). Its public API is this
package: `from opase.ledger import transfer` or `from opase import ledger`; the functions
live in small modules by concept:

- `accounts`: account kinds, creation and look-up, locking, balances;
- `transfers`: single- and two-phase transfers, deposits and withdrawals, idempotency;
- `history`: the audit of the stored running sums, and paging through transfers;
- `refusals`: what the ledger refuses.

Double entry: every transfer debits one account and credits another by the same positive
integer amount in minor units, so per asset the credits and debits of all accounts are
equal. Each account stores four running sums (debits and credits, posted and pending),
updated in the same transaction as the transfer; the transfer history, only ever appended
to, recomputes them (`audit`). Functions flush but never commit: the caller owns the
transaction.
"""

from __future__ import annotations

from opase.ledger.accounts import (
    LOCKED_ACCOUNT_COUNT_MAX,
    Balance,
    account_balance_minor,
    balance,
    balance_minor,
    balance_of,
    create_peer_liquidity_account,
    create_wallet_account,
    fees_account,
    get_account,
    lock_accounts,
    settlement_account,
    wallet_account,
)
from opase.ledger.history import (
    TRANSFER_PAGE_LIMIT_MAX,
    AuditDifference,
    TransferCursor,
    TransferPage,
    audit,
    list_transfers,
)
from opase.ledger.refusals import (
    AccountNotFound,
    AssetMismatch,
    BalanceOverflow,
    IdempotencyKeyReused,
    InsufficientFunds,
    LedgerError,
    PendingExpired,
    TransferNotFound,
    TransferNotPending,
)
from opase.ledger.transfers import (
    IDEMPOTENCY_KEY_LENGTH_MAX,
    PENDING_TIMEOUT_S_MAX,
    VOID_EXPIRED_COUNT_MAX,
    TransferResult,
    check_amount_minor,
    deposit,
    post_pending,
    reserve,
    transfer,
    void_expired,
    void_pending,
    withdraw,
)

__all__ = [
    "IDEMPOTENCY_KEY_LENGTH_MAX",
    "LOCKED_ACCOUNT_COUNT_MAX",
    "PENDING_TIMEOUT_S_MAX",
    "TRANSFER_PAGE_LIMIT_MAX",
    "VOID_EXPIRED_COUNT_MAX",
    "AccountNotFound",
    "AssetMismatch",
    "AuditDifference",
    "Balance",
    "BalanceOverflow",
    "IdempotencyKeyReused",
    "InsufficientFunds",
    "LedgerError",
    "PendingExpired",
    "TransferCursor",
    "TransferNotFound",
    "TransferNotPending",
    "TransferPage",
    "TransferResult",
    "account_balance_minor",
    "audit",
    "balance",
    "balance_minor",
    "balance_of",
    "check_amount_minor",
    "create_peer_liquidity_account",
    "create_wallet_account",
    "deposit",
    "fees_account",
    "get_account",
    "list_transfers",
    "lock_accounts",
    "post_pending",
    "reserve",
    "settlement_account",
    "transfer",
    "void_expired",
    "void_pending",
    "wallet_account",
    "withdraw",
]
